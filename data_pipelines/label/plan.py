"""What to label: a plan of molecules (SMILES, how many conformers, which levels for how many of
them, which split) expanded into concrete structures. The expansion is deterministic for the
plan's seed, so a resumed run rebuilds exactly the same structures and tasks.

Plan file (JSON):
    {"seed": 0,
     "molecules": [{"name": "methanol", "smiles": "CO", "conformers": 30,
                    "levels": {"wb97x_631gs": 30, "ccsdt_ccpvdz": 12}, "split": "train"}, ...]}
`levels` maps a fidelity to how many of the molecule's conformers get it (the first k).

Each structure is labelled as the molecule its SMILES says: the total charge is the sum of RDKit's
formal charges and the multiplicity is high-spin over RDKit's radical electrons (n unpaired → n+1:
`[CH2]` is the triplet carbene, its ground state; `C[CH2]` the ethyl doublet). Every structure is
checked before any calculation (`check_structure`): a charge and multiplicity the electrons cannot
make, or a level that cannot compute anything but a neutral singlet, is refused in one line.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from foundation.data.electrons import check_charge_spin, describe
from foundation.errors import DataError, UserError
from foundation.pipelines.label.conformers import sample_conformers
from foundation.pipelines.label.levels import get_level
from foundation.pipelines.label.structures import Structure


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
        seed = stable_seed(plan.get("seed", 0), mol["smiles"])
        charge, multiplicity = smiles_charge_spin(mol["smiles"])
        levels = mol.get("levels", {"wb97x_631gs": mol["conformers"]})
        for fid in levels:  # before the conformers are sampled: a refusal costs nothing
            check_level(get_level(fid), charge, multiplicity, f"SMILES {mol['smiles']!r}")
        confs = sample_conformers(mol["smiles"], int(mol["conformers"]), seed=seed)
        per_molecule.append([
            Structure(id=f"{mol['name']}/{k:04d}", molecule=mol["name"], numbers=c.numbers, positions=c.positions,
                      sampling=c.method, split=mol.get("split", "train"),
                      levels=[fid for fid, n in levels.items() if k < int(n)], charge=charge,
                      multiplicity=multiplicity)
            for k, c in enumerate(confs)])
    out = []
    for k in range(max(len(m) for m in per_molecule)):
        out.extend(m[k] for m in per_molecule if k < len(m))
    return out


def smiles_charge_spin(smiles: str) -> tuple[int, int]:
    """(total charge, multiplicity) of a SMILES: RDKit's formal charges summed, and high spin over
    its radical electrons."""
    from rdkit import Chem

    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        raise UserError(f"SMILES {smiles!r} could not be parsed")
    mol = Chem.AddHs(mol)
    charge = sum(a.GetFormalCharge() for a in mol.GetAtoms())
    unpaired = sum(a.GetNumRadicalElectrons() for a in mol.GetAtoms())
    numbers = [a.GetAtomicNum() for a in mol.GetAtoms()]
    return check_charge_spin(numbers, charge, unpaired + 1, f"SMILES {smiles!r}")


def check_level(level, charge: int, multiplicity: int, where: str) -> None:
    """Refuse, before any calculation, a level that computes only neutral singlets (an older
    plugin whose `compute` takes no charge or multiplicity) for anything else."""
    if (charge, multiplicity) != (0, 1) and not getattr(level, "takes_charge_spin", False):
        raise UserError(f"{where}: {describe(charge, multiplicity)}, but level {level.fidelity!r} computes "
                        "neutral singlets only (its compute() takes no charge= or multiplicity=); "
                        "label it with a level that does, or leave it out")


def check_structure(s: Structure) -> None:
    """A structure can be labelled as asked: its charge and multiplicity fit its electrons and
    every one of its levels can compute them. `UserError` naming it otherwise."""
    try:
        check_charge_spin(s.numbers, s.charge, s.multiplicity, f"structure {s.id}")
    except DataError as e:
        raise UserError(f"{e}; give its charge and spin (multiplicity) with info keys 'charge' and 'spin'") from None
    for fid in s.levels:
        check_level(get_level(fid), s.charge, s.multiplicity, f"structure {s.id}")


def stable_seed(seed: int, text: str) -> int:
    """A seed for `text` (a SMILES, a name) that is the same in every process and Python run."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{text}".encode()).digest()[:4], "little") & 0x7FFFFFFF  # RDKit takes int32
