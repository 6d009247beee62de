"""Transition1x (HDF5, `transition1x.h5`) → shards.

Layout, from the dataset's description (Schreiner et al., "Transition1x - a dataset for building
generalizable reactive machine learning potentials", Sci. Data 9, 779, 2022) and its official
loader (gitlab.com/matschreiner/Transition1x, `transition1x/dataloader.py`): top-level groups
`train`, `val` and `test` (the published split; `data` holds the same reactions unsplit), each
holding one group per chemical formula, each holding one group per reaction (NEB run) with
    atomic_numbers           (N,)        atomic numbers
    positions                (M, N, 3)   Å, every image of every NEB iteration
    wB97x_6-31G(d).energy    (M,)        eV, total energy
    wB97x_6-31G(d).forces    (M, N, 3)   eV/Å
and subgroups `reactant`, `product` and `transition_state` of the same layout (M = 1). The
official loader yields a reaction's reactant, its product and then every path image; so does this
reader (the transition state is one of the path images). Units are eV and Å: nothing to convert.

The level of theory is ωB97x/6-31G(d) (ORCA), the ANI-1x level: fidelity `wb97x_631gs`. Reactions
are of neutral closed-shell GDB7 molecules: charge 0, multiplicity 1. The published split is kept
(formula by formula: a formula's reactions are all in one split, so no molecule leaks); a file with
only `data` is split by formula with the given fractions. Read formula by formula, never whole.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import h5py
import numpy as np

from foundation.data import Sample
from foundation.errors import DataError
from foundation.pipelines.convert.ani_h5 import assign_groups
from foundation.pipelines.convert.common import check_fractions
from foundation.pipelines.convert.grouped import convert_groups
from foundation.pipelines.convert.hdf5 import open_hdf5, read

FIDELITY = "wb97x_631gs"
LEVEL = {"method": "wB97x", "basis": "6-31G(d)", "program": "ORCA (Transition1x)"}
ENERGY, FORCES = "wB97x_6-31G(d).energy", "wB97x_6-31G(d).forces"
SPLITS = ("train", "val", "test")
ENDPOINTS = ("reactant", "product")


def scan(path: str | os.PathLike) -> tuple[dict[str, int], bool]:
    """({"<split>/<formula>": structure count}, whether the file comes split), from shapes only."""
    with open_hdf5(path) as f:
        published = [s for s in SPLITS if s in f]
        tops = published or (["data"] if "data" in f else [])
        if not tops:
            raise DataError(f"{path}: no 'train', 'val', 'test' or 'data' group (not a Transition1x HDF5 file)")
        sizes = {}
        for top in tops:
            for formula, reactions in f[top].items():
                sizes[f"{top}/{formula}"] = sum(
                    int(r["positions"].shape[0]) + sum(1 for e in ENDPOINTS if e in r)
                    for r in reactions.values() if isinstance(r, h5py.Group) and "positions" in r)
    return {k: n for k, n in sizes.items() if n}, bool(published)


def read_group(f: h5py.File, path: str | os.PathLike, name: str) -> list[Sample]:
    """A formula's reactions: each reaction's reactant, product and path images."""
    samples = []
    for rxn, group in f[name].items():
        if not isinstance(group, h5py.Group) or "positions" not in group:
            continue
        parts = [(f"{rxn}/{e}", group[e]) for e in ENDPOINTS if e in group] + [(rxn, group)]
        for label, g in parts:
            samples.extend(_images(g, f"{path}:{name}/{label}", name))
    return samples


def _images(g: h5py.Group, where: str, molecule: str) -> list[Sample]:
    numbers = read(g, "atomic_numbers", where).astype(np.int64).reshape(-1)
    n = len(numbers)
    positions = read(g, "positions", where, (-1, n, 3))
    m = len(positions)
    energies = read(g, ENERGY, where, (m,))
    forces = read(g, FORCES, where, (m, n, 3))
    return [Sample(numbers, positions[i], {FIDELITY: float(energies[i])}, {FIDELITY: forces[i]},
                   molecule=molecule, source=f"{where}[{i}]")
            for i in range(m) if np.isfinite(energies[i])]


def convert_t1x(path: str | os.PathLike, out_dir: str | os.PathLike, fractions: Mapping[str, float] | None = None,
                seed: int = 0, max_shard_bytes: int | None = None, command: Sequence[str] | str | None = None,
                progress: Callable[[int], None] | None = None) -> Path:
    """Convert a Transition1x file to shards: its published train/val/test split when it has one
    (`fractions` unused), else split by formula; returns the manifest's path."""
    sizes, published = scan(path)
    assignment = ({name: name.split("/", 1)[0] for name in sizes} if published
                  else assign_groups(sizes, check_fractions(fractions), seed))
    with open_hdf5(path) as f:
        return convert_groups(sizes, lambda name: read_group(f, path, name), out_dir, {FIDELITY: LEVEL},
                              {"format": "t1x", "path": str(path), "split": "published" if published else "by formula"},
                              fractions, seed, max_shard_bytes, command, progress=progress, assignment=assignment)
