"""Which molecule each of a user's structures is: what the split keeps together and what relative
energies are measured within (`data.group_key`, `--molecule-key`).

- `auto` (the default): an info key that names molecules, when the file has one in every
  structure (`NAME_KEYS`, first found) and it does name molecules: some name repeats, and one
  name never covers two formulas. A key that is unique per structure (a conformer id) or
  shared by different formulas (a batch label) is not taken for one.
- `bonds`: formula plus bond graph, read for all structures together
  (`foundation.data.molecules.molecule_keys`), so that distorted conformers of one molecule
  keep one name.
- any other value: that info key, which every structure must have.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from foundation.errors import DataError

AUTO, BONDS = "auto", "bonds"
NAME_KEYS = ("molecule", "mol_id", "molecule_id", "molecule_name", "mol_name", "mol", "smiles",
             "inchikey", "inchi", "name")


def choose_key(images: Sequence[tuple[str, object]], group_key: str) -> str | None:
    """The info key naming molecules in `images` ((source, ase.Atoms) pairs), or None: by bonds."""
    if group_key == BONDS:
        return None
    if group_key != AUTO:
        for source, atoms in images:
            if not _usable(atoms.info.get(group_key)):
                present = ", ".join(sorted(atoms.info)) or "none"
                raise DataError(f"{source}: structure has no info key {group_key!r} naming its molecule "
                                f"(info keys present: {present}); choose one with --molecule-key, or "
                                "leave it out to name molecules by their bonds")
        return group_key
    for key in NAME_KEYS:
        values = [atoms.info.get(key) for _, atoms in images]
        if all(_usable(v) for v in values) and _names_molecules(images, [str(v) for v in values]):
            return key
    return None


def describe(key: str | None, group_key: str) -> str:
    """How the molecules were named, for the split line: "named by the file's 'molecule' key"."""
    if key is None:
        return "told apart by formula and bonds"
    return f"named by the file's {key!r} key" if group_key == AUTO else f"named by the given key {key!r}"


def name_by_bonds(samples: list) -> list:
    """The samples with `molecule` = formula + bond graph, read over all of them together."""
    import dataclasses

    from foundation.data.molecules import molecule_keys

    keys = molecule_keys((s.numbers, s.positions) for s in samples)
    return [dataclasses.replace(s, molecule=k) for s, k in zip(samples, keys)]


def _usable(value) -> bool:
    import numpy as np

    if isinstance(value, (bool, np.bool_)):
        return False
    return isinstance(value, (str, int, np.integer)) and str(value) != ""


def _names_molecules(images, names: list[str]) -> bool:
    from foundation.data.molecules import hill_formula

    formulas: dict[str, set[str]] = defaultdict(set)
    for (_, atoms), name in zip(images, names):
        formulas[name].add(hill_formula(atoms.numbers))
    return len(formulas) < len(names) and all(len(f) == 1 for f in formulas.values())
