"""What to label: a plan of molecules (SMILES, how many conformers, which levels for how many of
them, which split) expanded into concrete structures. The expansion is deterministic for the
plan's seed, so a resumed run rebuilds exactly the same structures and tasks.

Plan file (JSON):
    {"seed": 0,
     "molecules": [{"name": "methanol", "smiles": "CO", "conformers": 30,
                    "levels": {"wb97x_631gs": 30, "ccsdt_ccpvdz": 12}, "split": "train"}, ...]}
`levels` maps a fidelity to how many of the molecule's conformers get it (the first k).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np

from foundation.errors import UserError
from foundation.pipelines.label.conformers import sample_conformers
from foundation.pipelines.label.levels import get_level


@dataclasses.dataclass
class Structure:
    id: str
    molecule: str
    numbers: np.ndarray
    positions: np.ndarray
    sampling: str
    split: str
    levels: list[str]


def load_plan(path: str | Path) -> dict:
    try:
        plan = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: cannot read the labelling plan ({e})") from None
    for k, mol in enumerate(plan.get("molecules", [])):
        for key in ("name", "smiles", "conformers"):
            if key not in mol:
                raise UserError(f"{path}: molecule {k} has no {key!r}")
        for fid in mol.get("levels", {}):
            get_level(fid)
    if not plan.get("molecules"):
        raise UserError(f"{path}: the plan lists no molecules")
    return plan


def plan_from_smiles(smiles: list[tuple[str, str]], conformers: int, levels: dict[str, int], seed: int) -> dict:
    return {"seed": seed, "molecules": [
        {"name": name, "smiles": smi, "conformers": conformers, "levels": levels, "split": "train"}
        for smi, name in smiles]}


def expand(plan: dict) -> list[Structure]:
    """Structures in round-robin order (conformer 0 of every molecule, then conformer 1, …), so a
    run stopped early still holds a balanced dataset."""
    per_molecule = []
    for mol in plan["molecules"]:
        seed = _stable_seed(plan.get("seed", 0), mol["smiles"])
        confs = sample_conformers(mol["smiles"], int(mol["conformers"]), seed=seed)
        levels = mol.get("levels", {"wb97x_631gs": mol["conformers"]})
        per_molecule.append([
            Structure(id=f"{mol['name']}/{k:04d}", molecule=mol["name"], numbers=c.numbers, positions=c.positions,
                      sampling=c.method, split=mol.get("split", "train"),
                      levels=[fid for fid, n in levels.items() if k < int(n)])
            for k, c in enumerate(confs)])
    out = []
    for k in range(max(len(m) for m in per_molecule)):
        out.extend(m[k] for m in per_molecule if k < len(m))
    return out


def _stable_seed(seed: int, text: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{text}".encode()).digest()[:4], "little") & 0x7FFFFFFF  # RDKit takes int32
