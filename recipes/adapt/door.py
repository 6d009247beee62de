"""The molecules a run adapts to, read and checked at the door: SMILES (strings, or files of
"SMILES [name]" lines) and structures (any file ASE reads; one molecule per formula and bond
graph, or per `molecule` info key). What the labeller and the start model cannot do right is
refused in one line before anything runs: charged or open-shell molecules (RDKit's formal
charges and radical electrons of a SMILES; a structure's `charge`/`spin` info keys or an odd
electron count), and elements the start model has no network for.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from foundation.errors import UserError


@dataclasses.dataclass
class Molecule:
    name: str  # safe in file names and ids
    smiles: str | None  # None for a molecule given only as structures
    numbers: np.ndarray  # with hydrogens, in the order of `starts`
    starts: list[np.ndarray]  # starting geometries (Å); filled by sampling for a SMILES

    @property
    def label(self) -> str:
        return self.smiles or self.name


def read_molecules(smiles: Sequence[str], structures: str | None, elements: Sequence[int],
                   model_name: str) -> list[Molecule]:
    """The molecules of the arguments, each checked (`UserError` on the first refusal)."""
    entries = _smiles_entries(smiles)
    molecules = [_from_smiles(smi, name, elements, model_name) for smi, name in entries]
    if structures is not None:
        molecules += _from_structures(structures, elements, model_name, start=len(molecules))
    if not molecules:
        raise UserError("adapt: no molecules given: pass --smiles SMILES... (or a file of them) or --structures FILE")
    names = [m.name for m in molecules]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise UserError(f"adapt: molecule name {duplicated[0]!r} is given twice; names must be unique")
    return molecules


def _smiles_entries(arguments: Sequence[str]) -> list[tuple[str, str]]:
    """(SMILES, name) pairs: an argument that is a file is a SMILES file
    (`foundation.pipelines.label.structures.read_smiles`); a SMILES given as it is is named mol<k>."""
    from foundation.pipelines.label.structures import read_smiles

    out: list[tuple[str, str]] = []
    for arg in arguments:
        if Path(arg).is_file():
            out += [(smi, _safe(name)) for smi, name in read_smiles(arg)]
        else:
            out.append((arg, f"mol{len(out):02d}"))
    return out


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:40]


def _from_smiles(smiles: str, name: str, elements: Sequence[int], model_name: str) -> Molecule:
    from rdkit import Chem

    from foundation.pipelines.label.plan import smiles_charge_spin

    where = f"SMILES {smiles!r}"
    charge, multiplicity = _state(lambda: smiles_charge_spin(smiles), where)
    _refuse_state(charge, multiplicity, where)
    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    numbers = np.array([a.GetAtomicNum() for a in mol.GetAtoms()])
    _refuse_elements(numbers, elements, model_name, where)
    return Molecule(name, smiles, numbers, [])


def _from_structures(path: str, elements: Sequence[int], model_name: str, start: int) -> list[Molecule]:
    from foundation.data.ase_io import read_atoms
    from foundation.data.electrons import from_info
    from foundation.data.molecules import molecule_keys

    frames = [(f"{path}:{i}", atoms) for i, atoms in read_atoms(path, ":")]
    for where, atoms in frames:
        charge, multiplicity = _state(lambda: from_info(atoms.info, atoms.numbers, where), where)
        if (charge, multiplicity) == (0, 1) and int(atoms.numbers.sum()) % 2:
            multiplicity = 2  # an odd electron count cannot be a closed shell, whatever the file says
        _refuse_state(charge, multiplicity, where)
        _refuse_elements(atoms.numbers, elements, model_name, where)
    named = [str(a.info["molecule"]) if "molecule" in a.info else None for _, a in frames]
    keys = molecule_keys((a.numbers, a.positions) for _, a in frames) if None in named else named
    groups: dict[str, list] = {}
    for key, (_, atoms) in zip(keys, frames):
        groups.setdefault(key, []).append(atoms)
    return [Molecule(_safe(f"s{start + k:02d}-{atoms[0].get_chemical_formula()}"), None,
                     np.array(atoms[0].numbers), [np.array(a.positions) for a in atoms])
            for k, (_, atoms) in enumerate(groups.items())]


def _state(read, where: str) -> tuple[int, int]:
    from foundation.errors import DataError

    try:
        return read()
    except DataError as e:
        raise UserError(str(e)) from None


def _refuse_state(charge: int, multiplicity: int, where: str) -> None:
    from foundation.data.electrons import describe

    if (charge, multiplicity) != (0, 1):
        raise UserError(f"{where}: {describe(charge, multiplicity)}; adapt labels neutral closed-shell molecules "
                        "only (the start models were trained on nothing else); leave it out")


def _refuse_elements(numbers, elements: Sequence[int], model_name: str, where: str) -> None:
    from foundation.data.elements import symbol

    unknown = sorted({int(z) for z in numbers} - {int(z) for z in elements})
    if unknown:
        raise UserError(f"{where}: element {symbol(unknown[0])} is unknown to the start model {model_name} (it "
                        f"knows {', '.join(symbol(z) for z in sorted(elements))}); leave the molecule out or "
                        "start from a model that covers it (--model)")
