"""`structures.jsonl`, the structures a labelling folder holds, and the SMILES files they start from:
the one module that reads and writes them (the labeller, `data label --structures`, active
learning's oracle and frozen pools, and the CC, MP2 and frontier sets all go through it).

One JSON object per line, in the order the structures are labelled:
    {"id": "methanol/0003", "molecule": "methanol", "numbers": [6, 8, 1, ...],
     "positions": [[x, y, z], ...], "sampling": "rdkit_etkdg", "split": "train",
     "levels": ["wb97x_631gs", ...], "charge": 1, "multiplicity": 2}
Positions in Å, rounded to 1e-8 Å, so that a rebuilt file is identical byte for byte; `charge`
and `multiplicity` (2S+1) are written only when not a neutral singlet (older folders have
neither). Labels live beside it in `labels.jsonl` (`foundation.pipelines.label.store`), by `id`.

A SMILES file has one `SMILES [name]` per line; `#` starts a comment line.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from foundation.errors import DataError, UserError
from foundation.files import write_text_atomic

FILE = "structures.jsonl"


@dataclasses.dataclass
class Structure:
    id: str
    molecule: str
    numbers: np.ndarray
    positions: np.ndarray  # Å
    sampling: str  # how it was made: a conformer generator, "given", "active_learning", ...
    split: str
    levels: list[str]  # the fidelities to compute for it
    charge: int = 0
    multiplicity: int = 1  # 2S + 1


def structures_path(folder: str | os.PathLike) -> Path:
    return Path(folder) / FILE


def has_structures(folder: str | os.PathLike) -> bool:
    return structures_path(folder).is_file()


def refuse_if_labelled(folder: str | os.PathLike, hint: str = "") -> None:
    """A selection writing `folder/structures.jsonl` again must not pull the geometries from under
    labels already computed for them: `UserError` (one line, `hint` appended) once labelling began."""
    labels = Path(folder) / "labels.jsonl"
    if labels.exists():
        raise UserError(f"{labels} exists: labelling has started on these structures" + (f"; {hint}" if hint else ""))


def record(s: Structure) -> dict:
    """One line of the file, as a dict."""
    out = {"id": s.id, "molecule": s.molecule, "numbers": np.asarray(s.numbers).tolist(),
           "positions": np.round(np.asarray(s.positions, dtype=np.float64), 8).tolist(), "sampling": s.sampling,
           "split": s.split, "levels": list(s.levels)}
    if (s.charge, s.multiplicity) != (0, 1):  # absent means a neutral singlet, as in every older folder
        out.update(charge=int(s.charge), multiplicity=int(s.multiplicity))
    return out


def write_structures(folder: str | os.PathLike, structures: Iterable[Structure], replace: bool = False) -> Path:
    """Write `folder/structures.jsonl` atomically. Without `replace` a file already there is kept:
    a resumed run must label exactly the structures it began with."""
    path = structures_path(folder)
    if path.exists() and not replace:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_text_atomic(path, "".join(json.dumps(record(s)) + "\n" for s in structures))


def read_structures(folder: str | os.PathLike) -> list[Structure]:
    """The structures of `folder/structures.jsonl`, in file order; `DataError` naming the line of
    one that is not valid."""
    path = structures_path(folder)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file (a labelling folder holds structures.jsonl)") from None
    out = []
    for n, line in enumerate(lines):
        try:
            r = json.loads(line)
            out.append(Structure(id=r["id"], molecule=r["molecule"], numbers=np.array(r["numbers"]),
                                 positions=np.array(r["positions"], dtype=np.float64), sampling=r["sampling"],
                                 split=r["split"], levels=list(r["levels"]), charge=int(r.get("charge", 0)),
                                 multiplicity=int(r.get("multiplicity", 1))))
        except (ValueError, KeyError, TypeError) as e:
            what = f"no key {e}" if isinstance(e, KeyError) else "not a valid structure record"
            raise DataError(f"{path}: line {n + 1}: {what}") from None
    return out


def read_smiles(path: str | os.PathLike) -> list[tuple[str, str]]:
    """[(SMILES, name)] of a SMILES file; a line without a name is named mol<k>."""
    try:
        lines = [ln.split() for ln in Path(path).read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    except OSError as e:
        raise UserError(f"{path}: cannot read SMILES file ({e.strerror})") from None
    return [(parts[0], parts[1] if len(parts) > 1 else f"mol{k:04d}") for k, parts in enumerate(lines)]


def structures_from_file(path: str | os.PathLike, levels: list[str]) -> list[Structure]:
    """Every frame of an ASE-readable file, to be labelled at `levels` as it is (sampling "given",
    split "train"), with the charge and multiplicity of its info keys `charge` and `spin`."""
    import ase.io

    from foundation.data.electrons import check_charge_spin, from_info

    try:
        frames = ase.io.read(path, index=":")
    except Exception as e:  # noqa: BLE001 - ASE raises many types for unreadable files
        raise UserError(f"{path}: cannot read structures ({e})") from None
    structures = []
    for k, a in enumerate(frames):
        try:  # the electrons must make the charge and multiplicity, declared or not
            charge, multiplicity = from_info(a.info, a.numbers, f"{path}:{k}")
            check_charge_spin(a.numbers, charge, multiplicity, f"{path}:{k}")
        except DataError as e:
            raise UserError(f"{e}; give its charge and spin multiplicity as info keys 'charge' and 'spin'") from None
        structures.append(Structure(id=f"{Path(path).stem}/{k:05d}", molecule=a.get_chemical_formula(),
                                    numbers=a.numbers, positions=a.positions, sampling="given", split="train",
                                    levels=levels, charge=charge, multiplicity=multiplicity))
    return structures
