"""SPICE 2 (HDF5, as its downloader writes it) → shards.

Layout, from the dataset's own description (github.com/openmm/spice-dataset, downloader/README.md
and downloader/downloader.py; Eastman et al., Sci. Data 10, 11, 2023): one top-level group per
molecule or cluster (a PubChem id, a peptide sequence or a SMILES), holding
    subset                string (1,)        the data subset
    smiles                string (1,)        canonical, explicit hydrogens, atom-mapped
    atomic_numbers        int16 (N,)         in the SMILES' atom order
    conformations         float32 (M, N, 3)  bohr
    dft_total_energy      float64 (M,)       hartree
    dft_total_gradient    float32 (M, N, 3)  hartree/bohr (the gradient: forces are its negative)
    formation_energy, mbis_charges, scf_dipole, …  (not read)
"All values are in atomic units. Distances are in bohr and energies in hartree."

The level of theory is ωB97M-D3(BJ)/def2-TZVPPD (Psi4), fidelity `wb97md3bj_def2tzvppd`. SPICE
has no charge dataset: the total charge is the sum of the SMILES' formal charges, as the
downloader computes it for its reference energies; the multiplicity is high spin over the
SMILES' radical electrons (SPICE's molecules are closed shells: 1). A group is one molecule for
the split. Read group by group (`grouped`), never whole.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import h5py
import numpy as np

from foundation.data.electrons import check_charge_spin
from foundation.data import Sample
from foundation.errors import DataError
from foundation.pipelines.convert.grouped import convert_groups
from foundation.pipelines.convert.hdf5 import open_hdf5, read, text
from foundation.units import BOHR_TO_ANGSTROM, HARTREE_TO_EV

FIDELITY = "wb97md3bj_def2tzvppd"
LEVEL = {"method": "wB97M-D3(BJ)", "basis": "def2-TZVPPD", "program": "Psi4 (SPICE 2)"}


def scan(path: str | os.PathLike) -> dict[str, int]:
    """{group: conformer count} from dataset shapes only."""
    with open_hdf5(path) as f:
        sizes = {name: int(g["conformations"].shape[0]) for name, g in f.items()
                 if isinstance(g, h5py.Group) and "conformations" in g}
    if not sizes:
        raise DataError(f"{path}: no group with a 'conformations' dataset (not a SPICE HDF5 file)")
    return sizes


def charge_spin(smiles: str, numbers: np.ndarray, where: str) -> tuple[int, int]:
    """(total charge, multiplicity) of a SPICE SMILES, checked against the atoms' electrons."""
    from rdkit import Chem

    mol = Chem.MolFromSmiles(smiles, sanitize=False)  # as the downloader parses it
    if mol is None:
        raise DataError(f"{where}: SMILES {smiles!r} cannot be parsed")
    mol.UpdatePropertyCache(strict=False)
    charge = sum(a.GetFormalCharge() for a in mol.GetAtoms())
    unpaired = sum(a.GetNumRadicalElectrons() for a in mol.GetAtoms())
    return check_charge_spin(numbers, charge, unpaired + 1, where)


def read_group(f: h5py.File, path: str | os.PathLike, name: str) -> list[Sample]:
    """One molecule's conformers in eV, Å, eV/Å; a conformer with a NaN energy is left out."""
    where = f"{path}:{name}"
    group = f[name]
    numbers = read(group, "atomic_numbers", where).astype(np.int64).reshape(-1)
    n = len(numbers)
    positions = read(group, "conformations", where, (-1, n, 3)) * BOHR_TO_ANGSTROM
    m = len(positions)
    energies = read(group, "dft_total_energy", where, (m,)) * HARTREE_TO_EV
    gradient = (read(group, "dft_total_gradient", where, (m, n, 3)) if "dft_total_gradient" in group else None)
    charge, multiplicity = charge_spin(text(group, "smiles", where), numbers, where)
    samples = []
    for i in range(m):
        if not np.isfinite(energies[i]):
            continue
        forces = {} if gradient is None else {FIDELITY: -gradient[i] * (HARTREE_TO_EV / BOHR_TO_ANGSTROM)}
        samples.append(Sample(numbers, positions[i], {FIDELITY: float(energies[i])}, forces, molecule=name,
                              source=f"{where}[{i}]", charge=charge, multiplicity=multiplicity))
    return samples


def convert_spice(path: str | os.PathLike, out_dir: str | os.PathLike, fractions: Mapping[str, float] | None = None,
                  seed: int = 0, max_shard_bytes: int | None = None, command: Sequence[str] | str | None = None,
                  progress: Callable[[int], None] | None = None) -> Path:
    """Convert a SPICE HDF5 file to shards split by molecule; returns the manifest's path."""
    sizes = scan(path)
    with open_hdf5(path) as f:
        return convert_groups(sizes, lambda name: read_group(f, path, name), out_dir, {FIDELITY: LEVEL},
                              {"format": "spice", "path": str(path)}, fractions, seed, max_shard_bytes,
                              command, progress=progress)
