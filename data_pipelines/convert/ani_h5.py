"""ANI-1x / ANI-1ccx HDF5 (the released layout) → shards.

The file holds one group per chemical formula; in a group of Nc conformers of Na atoms:
`atomic_numbers` uint8 (Na), `coordinates` float32 (Nc, Na, 3) Å, energies such as
`wb97x_dz.energy` or `ccsd(t)_cbs.energy` float64 (Nc) Hartree, forces such as `wb97x_dz.forces`
(Nc, Na, 3) Hartree/Å. A NaN label means "not computed": that conformer simply lacks the label
(the ANI-1ccx CC subset is the conformers whose `ccsd(t)_cbs.energy` is finite).

A key map says which HDF5 datasets become which fidelity (`wb97x_dz.energy → wb97x_631gs`); the
part after the last dot says whether it is an energy or forces. Labels are converted to eV and
eV/Å on read. The file is read group by group, never whole: groups are visited in a seeded random
order and up to `interleave` of them are drawn from at once, so that every shard mixes many
molecules rather than holding the conformers of a few. The group (formula) is the molecule that
the train/val/test split keeps together.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import h5py
import numpy as np

from foundation.data import Sample
from foundation.errors import DataError, UserError
from foundation.pipelines.convert.common import SplitWriters, check_out_dir, check_fractions
from foundation.units import HARTREE_TO_EV

DEFAULT_KEY_MAP = {
    "wb97x_dz.energy": "wb97x_631gs",  # ANI-1x "dz" is ωB97X/6-31G(d)
    "wb97x_dz.forces": "wb97x_631gs",
    "ccsd(t)_cbs.energy": "ccsdt_cbs",  # CCSD(T)*/CBS: not our CCSD(T)/cc-pVDZ, so its own name
}
# Level of theory of the released datasets, by HDF5 key prefix (Smith et al., Sci. Data 7, 134, 2020).
KNOWN_LEVELS = {
    "wb97x_dz": {"method": "wB97X", "basis": "6-31G(d)", "program": "Gaussian 09"},
    "ccsd(t)_cbs": {"method": "CCSD(T)*/CBS (DLPNO-CCSD(T) extrapolation)", "basis": "CBS", "program": "ORCA"},
}
QUANTITIES = ("energy", "forces")


def parse_key_map(items: Sequence[str]) -> dict[str, str]:
    """`["wb97x_dz.energy=wb97x_631gs", …]` → {hdf5 key: fidelity}."""
    key_map = {}
    for item in items:
        key, sep, fid = item.partition("=")
        if not sep or not key or not fid:
            raise UserError(f"--key-map {item!r}: use HDF5_KEY=FIDELITY, e.g. wb97x_dz.energy=wb97x_631gs")
        key_map[key] = fid
    check_key_map(key_map)
    return key_map


def check_key_map(key_map: Mapping[str, str]) -> None:
    for key in key_map:
        if key.rsplit(".", 1)[-1] not in QUANTITIES:
            raise UserError(f"key map entry {key!r}: an HDF5 label key must end in .energy or .forces")


def levels_of_theory(key_map: Mapping[str, str]) -> dict[str, dict]:
    """What is known about each fidelity's level of theory from the HDF5 keys it comes from."""
    levels: dict[str, dict] = {}
    for key, fid in key_map.items():
        prefix = key.rsplit(".", 1)[0]
        level = levels.setdefault(fid, dict(KNOWN_LEVELS.get(prefix, {})))
        level.setdefault("hdf5_keys", []).append(key)
    return levels


def scan(path: str | os.PathLike, key_map: Mapping[str, str]) -> dict[str, int]:
    """{group: conformer count}, read from dataset shapes only; checks the layout and that every
    key of the map occurs somewhere in the file."""
    sizes, seen = {}, set()
    with _open(path) as f:
        for name, group in f.items():
            if not isinstance(group, h5py.Group) or "coordinates" not in group:
                continue
            sizes[name] = int(group["coordinates"].shape[0])
            seen.update(group.keys())
    if not sizes:
        raise DataError(f"{path}: no group with a 'coordinates' dataset (not an ANI-layout HDF5 file)")
    missing = sorted(set(key_map) - seen)
    if missing:
        raise UserError(f"{path}: no dataset {', '.join(map(repr, missing))} in any group "
                        f"(datasets: {', '.join(sorted(seen))}); fix --key-map")
    return sizes


def read_group(path: str | os.PathLike, group: h5py.Group, key_map: Mapping[str, str]) -> list[Sample]:
    """The group's conformers as samples (eV, eV/Å); conformers without any finite label are
    left out. Raises `DataError` naming the group for a malformed layout."""
    name = group.name.lstrip("/")
    where = f"{path}:{name}"
    if "atomic_numbers" not in group:
        raise DataError(f"{where}: group has no 'atomic_numbers' dataset")
    numbers = np.asarray(group["atomic_numbers"][()], np.int64).reshape(-1)
    coords = np.asarray(group["coordinates"][()], np.float64)
    n_conf, n_atoms = coords.shape[0], len(numbers)
    if coords.shape != (n_conf, n_atoms, 3):
        raise DataError(f"{where}: coordinates have shape {coords.shape}, expected ({n_conf}, {n_atoms}, 3)")
    labels = {key: _read_label(group, key, where, (n_conf,) if key.endswith(".energy") else (n_conf, n_atoms, 3))
              for key in key_map if key in group}
    samples = []
    for i in range(n_conf):
        energies, forces = {}, {}
        for key, values in labels.items():
            value = values[i]
            if np.isfinite(value).all():  # NaN: this conformer was not computed at that level
                (energies if key.endswith(".energy") else forces)[key_map[key]] = value * HARTREE_TO_EV
        if energies or forces:
            samples.append(Sample(numbers=numbers, positions=coords[i], energies=energies, forces=forces,
                                  molecule=name, source=f"{where}[{i}]"))
    return samples


def iter_interleaved(path: str | os.PathLike, key_map: Mapping[str, str], groups: Sequence[str],
                     seed: int, interleave: int) -> Iterator[Sample]:
    """Samples of `groups`, drawn at random from up to `interleave` groups held at once."""
    order = sorted(groups)
    rng = random.Random(seed)
    rng.shuffle(order)
    pending = iter(order)
    active: list[list[Sample]] = []
    with _open(path) as f:
        while True:
            while len(active) < interleave and (name := next(pending, None)) is not None:
                samples = read_group(path, f[name], key_map)
                rng.shuffle(samples)
                if samples:
                    active.append(samples)
            if not active:
                return
            k = rng.choices(range(len(active)), weights=[len(a) for a in active])[0]
            yield active[k].pop()
            if not active[k]:
                active.pop(k)


def convert_ani_h5(path: str | os.PathLike, out_dir: str | os.PathLike, key_map: Mapping[str, str] | None = None,
                   fractions: Mapping[str, float] | None = None, seed: int = 0,
                   max_shard_bytes: int | None = None, levels: Mapping[str, Mapping] | None = None,
                   command: Sequence[str] | str | None = None, interleave: int = 64,
                   progress: Callable[[int], None] | None = None) -> Path:
    """Convert an ANI-layout HDF5 file to shards in `out_dir`, split by group (formula) with
    `fractions` of the conformers (default train 0.8, val 0.1, test 0.1). Returns the manifest's
    path. `levels` adds to or overrides `levels_of_theory(key_map)`."""
    key_map = dict(key_map or DEFAULT_KEY_MAP)
    check_key_map(key_map)
    fractions = check_fractions(fractions)
    check_out_dir(out_dir)
    sizes = scan(path, key_map)
    assignment = assign_groups(sizes, fractions, seed)
    meta = levels_of_theory(key_map)
    for fid, extra in (levels or {}).items():
        meta.setdefault(fid, {}).update(extra)
    with SplitWriters(out_dir, fractions, max_shard_bytes) as writers:
        for sample in iter_interleaved(path, key_map, list(sizes), seed, interleave):
            writers.write(assignment[sample.molecule], sample)
            if progress is not None:
                progress(1)
        return writers.finish(meta, command, {"source": {"format": "ani-h5", "path": str(path),
                                                         "key_map": key_map, "seed": seed}})


def assign_groups(sizes: Mapping[str, int], fractions: Mapping[str, float], seed: int) -> dict[str, str]:
    """{group: split}: groups in a seeded random order; first one to each split (smallest first,
    so a small test split does not take the largest group), then each to the split furthest below
    its share, so splits match `fractions` by conformer count, not group count."""
    wanted = sorted(fractions, key=lambda s: (fractions[s], s))
    if len(sizes) < len(wanted):
        raise DataError(f"{len(sizes)} groups (molecules) cannot fill the {len(wanted)} splits "
                        f"{', '.join(wanted)}; drop a split with --split")
    order = sorted(sizes)
    random.Random(seed).shuffle(order)
    total = sum(sizes.values())
    filled = dict.fromkeys(fractions, 0)
    assignment = {}
    for i, name in enumerate(order):
        split = wanted[i] if i < len(wanted) else max(
            fractions, key=lambda s: (fractions[s] * total - filled[s], fractions[s]))
        assignment[name] = split
        filled[split] += sizes[name]
    return assignment


def _read_label(group: h5py.Group, key: str, where: str, shape: tuple) -> np.ndarray:
    values = np.asarray(group[key][()], np.float64)
    if values.shape != shape:
        raise DataError(f"{where}: dataset {key!r} has shape {values.shape}, expected {shape}")
    return values


def _open(path: str | os.PathLike) -> h5py.File:
    try:
        return h5py.File(path, "r")
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except OSError as e:
        raise DataError(f"{path}: not a readable HDF5 file ({e})") from None
