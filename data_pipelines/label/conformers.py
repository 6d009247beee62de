"""Conformer sampling as ANI did it: start from force-field minima (RDKit ETKDG + MMFF, several
torsional minima per molecule), then displace along MMFF normal modes with Boltzmann-distributed
amplitudes at a random temperature (normal-mode sampling), or by small random displacements.
Samples that clash or break/form a bond are rejected.

Positions are in Å. Everything is deterministic for a given seed.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from foundation.data.molecules import bonds as bond_pairs
from foundation.errors import UserError

KB_KCAL = 0.0019872041  # Boltzmann constant, kcal/(mol K): MMFF energies are kcal/mol
COVALENT_SCALE = 1.25  # a pair closer than this x (r_i + r_j) is bonded


@dataclasses.dataclass
class Conformer:
    numbers: np.ndarray
    positions: np.ndarray
    method: str  # how it was made, kept in the record


def embed(smiles: str, n_minima: int, seed: int):
    """RDKit molecule with hydrogens and up to `n_minima` MMFF-optimised distinct conformers."""
    from rdkit import Chem
    from rdkit.Chem import AllChem

    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        raise UserError(f"SMILES {smiles!r} could not be parsed")
    mol = Chem.AddHs(mol)
    params = AllChem.ETKDGv3()
    params.randomSeed = seed
    params.pruneRmsThresh = 0.3
    ids = list(AllChem.EmbedMultipleConfs(mol, numConfs=max(n_minima, 1) * 3, params=params))
    if not ids:
        raise UserError(f"SMILES {smiles!r}: RDKit could not embed a 3-D structure")
    AllChem.MMFFOptimizeMoleculeConfs(mol, maxIters=2000)
    return mol, ids[:n_minima]


def mmff_gradient(ff, x: np.ndarray) -> np.ndarray:
    """MMFF gradient (kcal/(mol Å), flat) at positions `x`. RDKit's `CalcGrad(pos)` alone returns
    the gradient of terms cached by the *previous* energy evaluation (checked against a fresh force
    field: off by up to 200 kcal/(mol Å) from the second call on), so the energy is evaluated first."""
    pos = np.asarray(x, dtype=float).reshape(-1).tolist()
    ff.CalcEnergy(pos)
    return np.array(ff.CalcGrad(pos))


def mmff_hessian(mol, conf_id: int, step: float = 1e-3) -> np.ndarray:
    """(3n, 3n) MMFF Hessian in kcal/(mol Å²) by central differences of analytic gradients."""
    from rdkit.Chem import AllChem

    props = AllChem.MMFFGetMoleculeProperties(mol)
    ff = AllChem.MMFFGetMoleculeForceField(mol, props, confId=conf_id)
    x0 = np.array(ff.Positions(), dtype=float)
    hess = np.empty((x0.size, x0.size))
    for k in range(x0.size):
        xp, xm = x0.copy(), x0.copy()
        xp[k] += step
        xm[k] -= step
        hess[k] = (mmff_gradient(ff, xp) - mmff_gradient(ff, xm)) / (2 * step)
    return 0.5 * (hess + hess.T)


def normal_mode_sample(x0: np.ndarray, hessian: np.ndarray, masses: np.ndarray, temperature: float,
                       rng: np.random.Generator) -> np.ndarray:
    """Displace along each vibrational mode by a Gaussian amplitude with the classical harmonic
    variance kT/k_i (k_i the mode's force constant), skipping the six rigid-body modes."""
    m = np.repeat(masses, 3)
    mw = hessian / np.sqrt(np.outer(m, m))
    eigval, eigvec = np.linalg.eigh(mw)
    modes = eigvec[:, 6:] / np.sqrt(m)[:, None]  # Cartesian displacement per unit normal coordinate
    freqs2 = np.clip(eigval[6:], 1e-2, None)  # soft modes get capped amplitudes, not infinite ones
    q = rng.normal(size=freqs2.shape) * np.sqrt(KB_KCAL * temperature / freqs2)
    return (x0.reshape(-1) + modes @ q).reshape(-1, 3)


def bonds(numbers: np.ndarray, positions: np.ndarray) -> set[tuple[int, int]]:
    """The bond graph (pairs i < j) by the covalent-radius rule, as a set to compare."""
    return set(map(tuple, bond_pairs(numbers, positions, COVALENT_SCALE).tolist()))


def acceptable(numbers: np.ndarray, positions: np.ndarray, reference_bonds: set) -> bool:
    """No two atoms closer than 0.7 Å and the bond graph of the minimum is unchanged."""
    d = np.linalg.norm(positions[:, None] - positions[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    return d.min() > 0.7 and bonds(numbers, positions) == reference_bonds


def sample_conformers(smiles: str, n: int, seed: int = 0, n_minima: int = 4,
                      temperatures: tuple[float, float] = (100.0, 1000.0),
                      displacement: float = 0.06, displaced_fraction: float = 0.2) -> list[Conformer]:
    """`n` conformers of `smiles`: the first of each force-field minimum as is, then normal-mode
    samples at temperatures drawn uniformly from `temperatures` (K), with `displaced_fraction`
    of them random Gaussian displacements of `displacement` Å instead."""
    mol, conf_ids = embed(smiles, n_minima, seed)
    rng = np.random.default_rng(seed)
    numbers = np.array([a.GetAtomicNum() for a in mol.GetAtoms()])
    masses = np.array([a.GetMass() for a in mol.GetAtoms()])
    minima = [np.array(mol.GetConformer(c).GetPositions()) for c in conf_ids]
    hessians = [mmff_hessian(mol, c) for c in conf_ids]
    ref_bonds = bonds(numbers, minima[0])
    out = [Conformer(numbers, x, "mmff_minimum") for x in minima[: max(1, n // 10)]]
    attempts = 0
    while len(out) < n:
        attempts += 1
        if attempts > 50 * n:
            raise UserError(f"SMILES {smiles!r}: could not sample {n} acceptable conformers")
        k = rng.integers(len(minima))
        if rng.random() < displaced_fraction:
            x = minima[k] + rng.normal(scale=displacement, size=minima[k].shape)
            how = f"random_displacement({displacement})"
        else:
            t = rng.uniform(*temperatures)
            x = normal_mode_sample(minima[k].reshape(-1), hessians[k], masses, t, rng)
            how = f"normal_mode({t:.0f}K)"
        if acceptable(numbers, x, ref_bonds):
            out.append(Conformer(numbers, x, how))
    return out[:n]


# MMFF works in kcal/mol, Å and amu; MD here in Å and fs.
ACCEL = 4.184e-4  # (kcal/mol/Å)/amu in Å/fs²
VELOCITY = 2.0455e-2  # sqrt((kcal/mol)/amu) in Å/fs


def langevin_md(mol, conf_id: int, temperature: float, rng: np.random.Generator, steps: int,
                dt: float = 0.5, friction: float = 0.02) -> np.ndarray:
    """Positions (Å) after `steps` of Langevin dynamics (BAOAB, `dt` fs, `friction` 1/fs) on the
    MMFF surface at `temperature` K, from minimum `conf_id` with Maxwell-Boltzmann velocities.
    Thermal samples that normal-mode sampling cannot give a flexible molecule: a torsion followed
    along a straight line stretches bonds, so its samples of 5+ heavy atoms fail the bond check."""
    from rdkit.Chem import AllChem

    ff = AllChem.MMFFGetMoleculeForceField(mol, AllChem.MMFFGetMoleculeProperties(mol), confId=conf_id)
    masses = np.array([a.GetMass() for a in mol.GetAtoms()])[:, None]
    sigma = np.sqrt(KB_KCAL * temperature / masses) * VELOCITY
    x = np.array(mol.GetConformer(conf_id).GetPositions(), dtype=float)
    v = rng.normal(size=x.shape) * sigma
    decay = np.exp(-friction * dt)

    def accel(pos):
        return -mmff_gradient(ff, pos).reshape(-1, 3) / masses * ACCEL

    a = accel(x)
    for _ in range(steps):
        v += 0.5 * dt * a
        x += 0.5 * dt * v
        v = decay * v + np.sqrt(1 - decay**2) * sigma * rng.normal(size=x.shape)
        x += 0.5 * dt * v
        a = accel(x)
        v += 0.5 * dt * a
    return x


def md_conformers(smiles: str, n: int, seed: int = 0, temperatures: tuple[float, float] = (300.0, 600.0),
                  steps: int = 2000, n_minima: int = 4) -> list[Conformer]:
    """`n` thermal conformers of `smiles`: each the end of an independent MMFF Langevin run (1 ps by
    default) at a temperature drawn uniformly from `temperatures` (K), from a random force-field
    minimum; runs that break or form a bond are dropped."""
    mol, conf_ids = embed(smiles, n_minima, seed)
    rng = np.random.default_rng(seed)
    numbers = np.array([a.GetAtomicNum() for a in mol.GetAtoms()])
    ref_bonds = bonds(numbers, np.array(mol.GetConformer(conf_ids[0]).GetPositions()))
    out: list[Conformer] = []
    for _ in range(5 * n):
        if len(out) == n:
            return out
        t = rng.uniform(*temperatures)
        x = langevin_md(mol, conf_ids[rng.integers(len(conf_ids))], t, rng, steps)
        if acceptable(numbers, x, ref_bonds):
            out.append(Conformer(numbers, x, f"mmff_langevin({t:.0f}K,{steps * 0.5:.0f}fs)"))
    raise UserError(f"SMILES {smiles!r}: could not sample {n} acceptable thermal conformers")
