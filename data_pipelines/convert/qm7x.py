"""QM7-X (HDF5, as released on Zenodo, record 4288677: files 1000.hdf5 … 8000.hdf5) → shards.

Layout, from the dataset's description (Hoja et al., "QM7-X, a comprehensive dataset of
quantum-mechanical properties spanning the chemical space of small organic molecules", Sci. Data
8, 43, 2021, Table 2 and its README) and the readers built on it (e.g. schnetpack's
`datasets/qm7x.py`): one top-level group per molecule (its id, "1", "2", …), holding one group
per structure, "Geom-m<mol>-i<isomer>-c<conformer>-opt" for an equilibrium structure and
"…-d<n>" for its non-equilibrium displacements, each with
    atNUM       (N,)     atomic numbers
    atXYZ       (N, 3)   Å
    ePBE0+MBD   (1,)     eV, total energy (PBE0 + many-body dispersion)
    totFOR      (N, 3)   eV/Å, total PBE0+MBD forces
    eAT, ePBE0, eMBD, pbe0FOR, vdwFOR, hCHG, …  (not read)
Units are eV and Å throughout: nothing to convert. The level of theory is PBE0+MBD with FHI-aims'
"tight" numeric atom-centred basis, fidelity `pbe0mbd_fhiaims`. QM7-X holds neutral closed-shell
molecules (from GDB13, up to 7 heavy atoms C, N, O, S, Cl): charge 0, multiplicity 1. The
top-level group (all isomers and conformers of one molecular formula id) is the molecule for the
split. One file per call; read group by group (`grouped`), never whole.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import h5py
import numpy as np

from foundation.data import Sample
from foundation.errors import DataError
from foundation.pipelines.convert.grouped import convert_groups
from foundation.pipelines.convert.hdf5 import open_hdf5, read

FIDELITY = "pbe0mbd_fhiaims"
LEVEL = {"method": "PBE0+MBD", "basis": "FHI-aims tight (numeric atom-centred orbitals)", "program": "FHI-aims (QM7-X)"}
ENERGY, FORCES = "ePBE0+MBD", "totFOR"


def scan(path: str | os.PathLike) -> dict[str, int]:
    """{molecule group: structure count}, from the groups' member lists only."""
    with open_hdf5(path) as f:
        sizes = {name: sum(1 for s in g.values() if isinstance(s, h5py.Group) and "atXYZ" in s)
                 for name, g in f.items() if isinstance(g, h5py.Group)}
    sizes = {k: n for k, n in sizes.items() if n}
    if not sizes:
        raise DataError(f"{path}: no molecule group with structures holding 'atXYZ' (not a QM7-X HDF5 file)")
    return sizes


def read_group(f: h5py.File, path: str | os.PathLike, name: str) -> list[Sample]:
    samples = []
    for conf, g in f[name].items():
        if not isinstance(g, h5py.Group) or "atXYZ" not in g:
            continue
        where = f"{path}:{name}/{conf}"
        numbers = read(g, "atNUM", where).astype(np.int64).reshape(-1)
        n = len(numbers)
        energy = read(g, ENERGY, where).reshape(-1)
        if energy.size != 1:
            raise DataError(f"{where}: dataset {ENERGY!r} holds {energy.size} values, expected 1")
        forces = read(g, FORCES, where, (n, 3)) if FORCES in g else None
        samples.append(Sample(numbers, read(g, "atXYZ", where, (n, 3)), {FIDELITY: float(energy[0])},
                              {} if forces is None else {FIDELITY: forces}, molecule=name, source=where))
    return samples


def convert_qm7x(path: str | os.PathLike, out_dir: str | os.PathLike, fractions: Mapping[str, float] | None = None,
                 seed: int = 0, max_shard_bytes: int | None = None, command: Sequence[str] | str | None = None,
                 progress: Callable[[int], None] | None = None) -> Path:
    """Convert one QM7-X HDF5 file to shards split by molecule; returns the manifest's path."""
    sizes = scan(path)
    with open_hdf5(path) as f:
        return convert_groups(sizes, lambda name: read_group(f, path, name), out_dir, {FIDELITY: LEVEL},
                              {"format": "qm7x", "path": str(path)}, fractions, seed, max_shard_bytes,
                              command, progress=progress)
