"""Users' structure files (anything ASE reads: extxyz, ASE databases, …) to and from `Sample`s.

The label keys are the user's (`energy_key`, `forces_key`, like MACE's): a key is looked up in
`atoms.info` / `atoms.arrays` first, then in the calculator results, where ASE moves the keys it
knows (`energy`, `forces`, …) when reading extxyz. Units are declared, not guessed: energies are
in `energy_unit` (default eV), positions in `length_unit` (default Å) and forces in their ratio,
converted on read. Energies that look like another unit than the one declared (judged against
free-atom energies, `guess_energy_unit`) are refused when no unit was declared (a hartree file
read as eV would train a model on numbers 27 times too small), and warned about when one was.
A structure's charge and spin multiplicity are its `charge` and `spin` info keys
(`foundation.data.electrons`; a neutral singlet without them).
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import ase
import ase.io
import numpy as np
from ase.calculators.calculator import all_properties
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io.formats import string2index

from foundation.files import replacing
from foundation.data.electrons import from_info
from foundation.data.molecules import molecule_key
from foundation.data.sample import Sample
from foundation.data.xyz_counts import check_xyz_counts
from foundation.errors import DataError, UserError
from foundation.units import energy_to_ev, length_to_angstrom

log = logging.getLogger(__name__)
ON_ERROR = ("raise", "skip")
_DB_SUFFIXES = (".db", ".json", ".aselmdb")  # what ASE reads as a database


class UnitWarning(UserWarning):
    """Labels whose magnitude suggests a unit other than eV."""


def read_atoms(path: str | os.PathLike, index: str = ":") -> list[tuple[int, ase.Atoms]]:
    """(index in the file, structure) for every structure of `path` selected by `index` (ASE
    syntax: ":", "0", "-10:"). ASE database key-value pairs and data are copied to `info` and
    `arrays`, so that label keys are found the same way in every format."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: file is empty")
    if path.suffix not in _DB_SUFFIXES:
        check_xyz_counts(path)  # a count of 1e9 would keep ASE's reader busy for minutes
    try:
        images = _read_db(path) if path.suffix in _DB_SUFFIXES else ase.io.read(path, index=":")
    except Exception as e:  # ASE raises many types for unreadable input; report them as one line
        message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(f"{path}: cannot read structures ({message})") from e
    if not images:
        raise DataError(f"{path}: file holds no structures")
    try:
        selection = string2index(index)
    except ValueError as e:
        raise DataError(f"{path}: bad index {index!r} (use ASE syntax, e.g. ':' or '0:100')") from e
    file_indices = range(len(images))
    if isinstance(selection, int):
        if not -len(images) <= selection < len(images):
            raise DataError(f"{path}: index {selection} out of range (file holds {len(images)} structures)")
        return [(file_indices[selection], images[selection])]
    chosen = list(file_indices[selection])
    if not chosen:
        raise DataError(f"{path}: index {index!r} selects none of its {len(images)} structures")
    return [(i, images[i]) for i in chosen]


def read_samples(path: str | os.PathLike, energy_key: str, forces_key: str | None = None,
                 fidelity: str = "dft", index: str = ":", group_key: str | None = None,
                 on_error: str = "raise", skipped: list[str] | None = None,
                 energy_unit: str | None = None, length_unit: str = "angstrom") -> list[Sample]:
    """Read labelled samples. `source` is `"<path>:<index in file>"`; `molecule` is
    `atoms.info[group_key]` when given, else formula + connectivity (`molecule_key`).
    Raises `DataError` naming file and structure for a missing key, a NaN label or atoms closer
    than 0.5 Å; with `on_error="skip"` such a structure is left out instead, logged, and its
    one-line reason appended to `skipped`. `energy_unit` / `length_unit` are the file's units
    (converted to eV, Å, eV/Å); without `energy_unit`, energies that do not look like eV are
    refused (`check_energy_unit`). A file that cannot be read at all is always an error."""
    if on_error not in ON_ERROR:
        raise UserError(f"on_error={on_error!r}: use one of {', '.join(ON_ERROR)}")
    samples, problems = [], []
    for i, atoms in read_atoms(path, index):
        try:
            samples.append(atoms_to_sample(atoms, energy_key, forces_key, fidelity, f"{path}:{i}", group_key,
                                           energy_unit, length_unit))
        except DataError as e:
            if on_error != "skip":
                raise
            problems.append(str(e))
            log.warning("skipping structure (%d so far): %s", len(problems), e)
    if skipped is not None:
        skipped.extend(problems)
    if not samples:
        raise DataError(f"{path}: none of its structures can be used (the first: {problems[0]})")
    check_energy_unit(samples, fidelity, where=str(path), key=energy_key, declared=energy_unit)
    return samples


def atoms_to_sample(atoms: ase.Atoms, energy_key: str, forces_key: str | None, fidelity: str,
                    source: str, group_key: str | None = None, energy_unit: str | None = None,
                    length_unit: str = "angstrom") -> Sample:
    """One structure's labels as a validated `Sample` in eV, Å and eV/Å (see `read_samples`)."""
    to_ev = energy_to_ev(energy_unit or "eV")
    to_angstrom = length_to_angstrom(length_unit)
    energy = _label(atoms, energy_key, "energy", source, per_atom=False)
    try:
        energy = float(energy)
    except (TypeError, ValueError):
        raise DataError(f"{source}: energy key {energy_key!r} holds {energy!r}, not a number") from None
    forces = {}
    if forces_key is not None:
        given = np.asarray(_label(atoms, forces_key, "forces", source, per_atom=True), float)
        forces[fidelity] = given * (to_ev / to_angstrom)
    group = str(_label(atoms, group_key, "group", source, per_atom=False)) if group_key is not None else ""
    charge, multiplicity = from_info(atoms.info, atoms.numbers, source)
    sample = Sample(numbers=atoms.numbers, positions=atoms.positions * to_angstrom,
                    energies={fidelity: energy * to_ev}, forces=forces,
                    cell=np.asarray(atoms.cell) * to_angstrom, pbc=atoms.pbc, molecule=group, source=source,
                    charge=charge, multiplicity=multiplicity).validate()
    # Only now: the key's k-d tree must never see a position that validation refuses (NaN, 1e10 Å)
    sample.molecule = group or molecule_key(sample.numbers, sample.positions)
    return sample


def _label(atoms: ase.Atoms, key: str, what: str, source: str, per_atom: bool):
    store = atoms.arrays if per_atom else atoms.info
    if key in store:
        return store[key]
    results = atoms.calc.results if atoms.calc is not None else {}
    if key in results:
        return results[key]
    present = sorted(set(atoms.info) | (set(atoms.arrays) - {"numbers", "positions"}) | set(results))
    raise DataError(f"{source}: structure has no {what} key {key!r} (keys present: "
                    f"{', '.join(present) or 'none'}); choose one with --{what}-key")


def _read_db(path: Path) -> list[ase.Atoms]:
    import ase.db

    images = []
    with ase.db.connect(path) as db:
        for row in db.select():
            atoms = row.toatoms()
            atoms.info.update(row.key_value_pairs)
            for key, value in row.data.items():
                value = np.asarray(value)
                if value.ndim >= 1 and len(value) == len(atoms):
                    atoms.arrays[key] = value
                else:
                    atoms.info[key] = value.item() if value.ndim == 0 else value
            images.append(atoms)
    return images


# --- writing (tests, examples, converted data) -------------------------------------------------


def samples_to_atoms(samples: Sequence[Sample], energy_key: str = "energy", forces_key: str = "forces",
                     fidelity: str | None = None) -> list[ase.Atoms]:
    """ASE structures carrying one fidelity's labels under the given keys. The keys ASE reserves
    for calculator results (`energy`, `forces`) are stored on a `SinglePointCalculator`."""
    images = []
    for s in samples:
        fid = fidelity if fidelity is not None else _only_fidelity(s)
        atoms = ase.Atoms(numbers=s.numbers, positions=s.positions, cell=s.cell, pbc=s.pbc)
        results = {}
        if fid in s.energies:
            _put(atoms, results, energy_key, s.energies[fid], per_atom=False)
        if fid in s.forces:
            _put(atoms, results, forces_key, s.forces[fid], per_atom=True)
        if results:
            atoms.calc = SinglePointCalculator(atoms, **results)
        images.append(atoms)
    return images


def write_extxyz(path: str | os.PathLike, samples: Sequence[Sample], energy_key: str = "energy",
                 forces_key: str = "forces", fidelity: str | None = None) -> None:
    """Write atomically: a crash leaves the old file or none, never half of one."""
    images = samples_to_atoms(samples, energy_key, forces_key, fidelity)
    with replacing(path) as tmp, open(tmp, "w") as f:
        ase.io.write(f, images, format="extxyz")


def _put(atoms, results, key, value, per_atom):
    if key in all_properties:  # ASE's extxyz writer takes these from the calculator only
        results[key] = value
    elif per_atom:
        atoms.arrays[key] = np.asarray(value)
    else:
        atoms.info[key] = value


def _only_fidelity(sample: Sample) -> str:
    if len(sample.fidelities) != 1:
        raise ValueError(f"{sample.source or 'sample'} has fidelities {sorted(sample.fidelities)}; pass fidelity=")
    return next(iter(sample.fidelities))


# --- unit sanity check ---------------------------------------------------------------------------

# Total energies of the free atoms H–Ar in Hartree (non-relativistic limit). A molecule's total
# energy is within a few per cent of the sum over its atoms whatever the method, so the ratio of
# a label to this sum reveals the unit: ~1 in Hartree, ~27 in eV, ~628 in kcal/mol.
_FREE_ATOM_HARTREE = np.array([np.nan, -0.500, -2.904, -7.478, -14.667, -24.654, -37.845, -54.589,
                               -75.067, -99.734, -128.938, -162.255, -200.053, -242.346, -289.359,
                               -341.259, -398.110, -460.148, -527.540])
_UNIT_PER_HARTREE = {"hartree": 1.0, "eV": 27.211386, "kcal/mol": 627.5095, "kJ/mol": 2625.4996}
_TOLERANCE = 1.3  # a factor; the units above are ≥ 20× apart


def guess_energy_unit(numbers: Sequence[np.ndarray], energies: Sequence[float]) -> str | None:
    """The unit total energies seem to be in ("eV", "hartree", "kcal/mol", "kJ/mol"), or None
    when it cannot tell: energies relative to atoms (atomisation energies, or a model's
    reference-subtracted energies), semi-empirical valence-only energies, heavier elements."""
    ratios = []
    for z, e in zip(numbers, energies):
        z = np.asarray(z)
        if len(z) and z.max() < len(_FREE_ATOM_HARTREE) and np.isfinite(e):
            ratios.append(e / _FREE_ATOM_HARTREE[z].sum())
    if not ratios or np.median(ratios) <= 0:
        return None
    ratio = float(np.median(ratios))
    for unit, factor in _UNIT_PER_HARTREE.items():
        if abs(np.log(ratio / factor)) < np.log(_TOLERANCE):
            return unit
    return None


def check_energy_unit(samples: Sequence[Sample], fidelity: str, where: str, key: str | None = None,
                      declared: str | None = None) -> str | None:
    """The unit the `fidelity` energies of `samples` (already converted to eV) seem to be in.

    When they do not look like eV: with no unit `declared`, `DataError` (one line naming the file
    and the energy `key` the user gave, and the flag that declares the unit), so such numbers are
    never trained on or scored; with a unit declared, a `UnitWarning` (the user said so)."""
    labelled = [s for s in samples if fidelity in s.energies]
    unit = guess_energy_unit([s.numbers for s in labelled], [s.energies[fidelity] for s in labelled])
    if unit in (None, "eV"):
        return unit
    named = f"energies under key {key!r}" if key else f"{fidelity!r} energies"
    if declared is None:
        raise DataError(f"{where}: {named} look like {unit}, not eV (judged against free-atom energies); "
                        f"declare their unit with --energy-unit {unit} (data.energy_unit={unit} for foundation train; "
                        "eV if they are eV)")
    warnings.warn(f"{where}: {named}, declared {declared}, do not look like it: converted to eV they look "
                  f"like {unit} (judged against free-atom energies); check --energy-unit", UnitWarning, stacklevel=3)
    return unit

