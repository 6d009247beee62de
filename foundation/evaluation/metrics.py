"""Error metrics on numpy arrays: pure functions, units in the names.

Energies are total energies in eV, one per structure; forces in eV/Å, one row per atom. Force
errors are over Cartesian components (as TorchANI and MACE report them). kcal/mol figures use
1 eV = 23.0605 kcal/mol (`foundation.units`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from foundation.units import EV_TO_KCAL_MOL


def energy_mae_per_atom(pred: np.ndarray, ref: np.ndarray, n_atoms: np.ndarray) -> float:
    """Mean over structures of |E_pred − E_ref| / n_atoms, eV/atom. Shapes (B,)."""
    pred, ref, n_atoms = _energies(pred, ref, n_atoms)
    return float(np.mean(np.abs(pred - ref) / n_atoms))


def energy_mae_kcal_mol(pred: np.ndarray, ref: np.ndarray) -> float:
    """Mean |E_pred − E_ref| per structure, kcal/mol."""
    pred, ref = _energies(pred, ref)
    return float(np.mean(np.abs(pred - ref))) * EV_TO_KCAL_MOL


def energy_rmse_kcal_mol(pred: np.ndarray, ref: np.ndarray) -> float:
    """Root mean square of E_pred − E_ref per structure, kcal/mol."""
    pred, ref = _energies(pred, ref)
    return float(np.sqrt(np.mean((pred - ref) ** 2))) * EV_TO_KCAL_MOL


def relative_energy_rmse_kcal_mol(pred: np.ndarray, ref: np.ndarray, groups: Sequence[str]) -> float:
    """RMSE of energies relative to their group's mean, kcal/mol: within each group (a formula:
    the conformers and isomers of one composition) the group mean is removed from prediction and
    reference alike, so a constant offset per composition does not count; what ANI-1ccx reports
    for conformer and isomer energies. Groups of one structure carry no relative energy and are
    left out; NaN when no group has two structures."""
    pred, ref = _energies(pred, ref)
    groups = np.asarray(groups)
    if groups.shape != pred.shape:
        raise ValueError(f"{groups.shape[0]} group labels for {pred.shape[0]} energies")
    _, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    diff = pred - ref
    mean_diff = np.bincount(inverse, weights=diff) / counts  # mean of (pred − ref) per group
    keep = counts[inverse] > 1
    if not keep.any():
        return float("nan")
    # (pred − mean pred) − (ref − mean ref) = (pred − ref) − mean(pred − ref)
    return float(np.sqrt(np.mean((diff - mean_diff[inverse])[keep] ** 2))) * EV_TO_KCAL_MOL


def forces_mae(pred: np.ndarray, ref: np.ndarray) -> float:
    """Mean |F_pred − F_ref| over components, eV/Å. Shapes (N, 3)."""
    pred, ref = _forces(pred, ref)
    return float(np.mean(np.abs(pred - ref)))


def forces_rmse(pred: np.ndarray, ref: np.ndarray) -> float:
    """Root mean square of F_pred − F_ref over components, eV/Å. Shapes (N, 3)."""
    pred, ref = _forces(pred, ref)
    return float(np.sqrt(np.mean((pred - ref) ** 2)))


def _energies(*arrays: np.ndarray) -> list[np.ndarray]:
    out = [np.asarray(a, dtype=np.float64).reshape(-1) for a in arrays]
    if len({a.shape for a in out}) != 1:
        raise ValueError(f"energy arrays differ in length: {[a.shape[0] for a in out]}")
    if out[0].size == 0:
        raise ValueError("no structures to score")
    return out


def _forces(pred: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, ref = np.asarray(pred, np.float64).reshape(-1, 3), np.asarray(ref, np.float64).reshape(-1, 3)
    if pred.shape != ref.shape:
        raise ValueError(f"force arrays differ in shape: {pred.shape} vs {ref.shape}")
    if pred.size == 0:
        raise ValueError("no forces to score")
    return pred, ref
