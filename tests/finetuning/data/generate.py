"""Make the fine-tuning test files (run once; the files are committed):

    OMP_NUM_THREADS=1 python tests/finetuning/data/generate.py

A user's file like the one of issue 20: conformers of 12 small molecules (isomers among them)
from the labelling pipeline's sampler (MMFF normal modes at 300-1000 K and random displacements,
data_pipelines/label/conformers.py), labelled with RHF/STO-3G energies by PySCF, in eV under the
info key `E_hf`, each named by the info key `molecule`:

- `conformers.xyz`: 8 conformers per molecule, what the user fine-tunes on;
- `heldout.xyz`: 4 other conformers of each molecule, never shown to a fine-tune.

About a minute on one core.
"""

from __future__ import annotations

from pathlib import Path

import ase
import ase.io
import numpy as np

HERE = Path(__file__).resolve().parent
MOLECULES = {  # name: SMILES
    "ethanol": "CCO", "dimethyl_ether": "COC", "acetaldehyde": "CC=O", "ethylene_oxide": "C1CO1",
    "acetic_acid": "CC(=O)O", "methyl_formate": "COC=O", "acetone": "CC(C)=O", "propanal": "CCC=O",
    "methylamine": "CN", "acetamide": "CC(N)=O", "formamide": "NC=O", "glycine": "NCC(=O)O",
}
N_TRAIN, N_HELDOUT = 8, 4
HARTREE_TO_EV = 27.211386245988


def hf_sto3g(numbers: np.ndarray, positions: np.ndarray) -> float:
    from pyscf import gto, scf

    mol = gto.M(atom=[(int(z), tuple(p)) for z, p in zip(numbers, positions)], basis="sto-3g",
                unit="Angstrom", verbose=0)
    mf = scf.RHF(mol)
    energy = mf.kernel()
    if not mf.converged:
        raise RuntimeError("SCF did not converge")
    return float(energy) * HARTREE_TO_EV


def main() -> None:
    from foundation.pipelines.label.conformers import sample_conformers

    train, heldout = [], []
    for k, (name, smiles) in enumerate(MOLECULES.items()):
        conformers = sample_conformers(smiles, N_TRAIN + N_HELDOUT, seed=k, n_minima=2,
                                       temperatures=(300.0, 1000.0))
        rng = np.random.default_rng(k)
        order = rng.permutation(len(conformers))
        for j, c in enumerate(conformers[i] for i in order):
            atoms = ase.Atoms(numbers=c.numbers, positions=c.positions)
            atoms.info["molecule"] = name
            atoms.info["E_hf"] = hf_sto3g(c.numbers, c.positions)
            atoms.info["sampling"] = c.method
            (train if j < N_TRAIN else heldout).append(atoms)
        print(name, flush=True)
    ase.io.write(HERE / "conformers.xyz", train, format="extxyz")
    ase.io.write(HERE / "heldout.xyz", heldout, format="extxyz")


if __name__ == "__main__":
    main()
