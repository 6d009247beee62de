"""Per-element reference energies by linear least squares: E ≈ sum_Z n_Z e_Z.

Each fidelity gets its own (DESIGN.md): fine-tuning on a new level of theory without refitting
them starts electron-volts off (fairchem #1486). The model then learns only the residual.

A head that already has references (a pretrained head, or the head a new one is copied from)
is refit by `refit_change`: only the *change* is fitted, to what the model still misses, and it
is kept small. A user's few dozen conformers of a dozen molecules hold few distinct formulas, so
the least-squares problem for 4+ element energies is ill-conditioned: its exact solution swings
the references by electron-volts in directions the formulas barely see, which fits the training
energies and spoils every other composition. Ridge regression toward no change damps exactly
those directions, and leaves the directions no formula sees (fewer formulas than elements)
unchanged. When the formulas cannot separate the elements at all (one formula, or multiples of
one: conformers of one molecule), only one shift per atom, the same for every element present,
is fitted. `ReferenceFit` says which was done and the condition number of the composition
matrix, for the user to read.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import numpy as np

from foundation.data.elements import symbol
from foundation.errors import UserError


def composition_matrix(numbers_list: Sequence[np.ndarray], elements: Sequence[int]) -> np.ndarray:
    """(structures, elements) count of each element in each structure; `UserError` for an atom of
    an element not in `elements`."""
    column = {z: k for k, z in enumerate(elements)}
    counts = np.zeros((len(numbers_list), len(elements)))
    for row, numbers in enumerate(numbers_list):
        z, n = np.unique(np.asarray(numbers, dtype=np.int64), return_counts=True)
        missing = [int(v) for v in z if int(v) not in column]
        if missing:
            raise UserError(f"structure {row} contains {symbol(missing[0])}, which is not among the "
                            f"elements {[symbol(e) for e in elements]}")
        counts[row, [column[int(v)] for v in z]] = n
    return counts


def fit_reference_energies(numbers_list: Sequence[np.ndarray], energies: Sequence[float],
                           elements: Sequence[int], prior: Mapping[int, float] | None = None
                           ) -> dict[int, float]:
    """Least-squares reference energies {Z: eV} from structures' atomic numbers and energies (eV).

    Without `prior`, the compositions must determine every element's energy (enough structures of
    varied composition). With `prior` (e.g. the head being fine-tuned from), the fit is the
    smallest change to the prior that fits best, so a data set of one molecule still works.
    """
    energies = np.asarray(energies, dtype=np.float64).reshape(-1)
    if len(energies) != len(numbers_list):
        raise UserError(f"{len(numbers_list)} structures but {len(energies)} energies")
    if not np.isfinite(energies).all():
        raise UserError("reference energy fit: energies contain NaN or inf")
    counts = composition_matrix(numbers_list, elements)
    absent = [symbol(z) for z, c in zip(elements, counts.sum(0)) if c == 0]
    if absent and prior is None:
        raise UserError(f"cannot fit reference energies: no structure contains {', '.join(absent)} "
                        "(remove the element or add data for it)")
    start = np.array([float(prior.get(z, 0.0)) for z in elements]) if prior is not None else None
    if start is None:
        rank = np.linalg.matrix_rank(counts) if len(counts) else 0
        if rank < len(elements):
            raise UserError(f"cannot fit reference energies for {len(elements)} elements from "
                            f"{len(energies)} structures whose compositions determine only {rank}: "
                            "add structures of other compositions, or give a prior")
        solution, *_ = np.linalg.lstsq(counts, energies, rcond=None)
    else:
        # Minimum-norm correction: directions the data cannot see keep the prior's values.
        correction, *_ = np.linalg.lstsq(counts, energies - counts @ start, rcond=None)
        solution = start + correction
    return {int(z): float(e) for z, e in zip(elements, solution)}


RIDGE = 1e-4  # `refit_change`'s default (trainer.reference_ridge)


@dataclasses.dataclass
class ReferenceFit:
    energies: dict[int, float]  # the references now {Z: eV}
    change: dict[int, float]  # from the prior's, {Z: eV}
    method: str  # "ridge" | "global shift" | "none" (no structures)
    condition: float  # of the composition matrix over the elements present (inf: they cannot be separated)
    n_structures: int
    n_formulas: int
    n_elements: int = 0  # present in the structures
    rank: int = 0  # of the composition matrix: how many element energies the formulas determine

    def describe(self) -> str:
        """E.g. "ridge; 4 elements in 12 formulas of 48 structures; composition matrix condition
        number 37"."""
        cond = "∞" if not math.isfinite(self.condition) else f"{self.condition:.3g}"
        what = {"ridge": "ridge", "least squares": "least squares", "none": "unchanged",
                "global shift": "one shift per atom for every element: the formulas cannot separate them"}[self.method]
        seen = (f"{self.n_elements} element{'s' if self.n_elements != 1 else ''} in {self.n_formulas} "
                f"formula{'s' if self.n_formulas != 1 else ''} of {self.n_structures} structures")
        if self.rank < self.n_elements and self.method == "ridge":
            seen += f", which determine {self.rank} directions of {self.n_elements} (the others unchanged)"
        return f"{what}; {seen}; composition matrix condition number {cond}"


def refit_change(numbers_list: Sequence[np.ndarray], residuals: Sequence[float], elements: Sequence[int],
                 prior: Mapping[int, float], ridge: float = RIDGE) -> ReferenceFit:
    """References = `prior` + a change δ fitted to `residuals` (eV: the labels less what the model
    predicts with the `prior` references). Ridge: minimising mean((r − C δ)²) + λ |δ|² (C the
    element counts of each structure) with λ = `ridge` × the largest eigenvalue of CᵀC/n, so a
    direction of element energies that the formulas see √(1/ridge) times less sharply than the
    best-seen one (condition number 100 for the default) is halved, well-seen ones are fitted all
    but exactly, and unseen ones stay unchanged. When the formulas are multiples of one (rank 1:
    conformers of one molecule), δ is the same for every element present (one shift per atom).
    Elements no structure has keep the prior's value."""
    residuals = np.asarray(residuals, dtype=np.float64).reshape(-1)
    if len(residuals) != len(numbers_list):
        raise UserError(f"{len(numbers_list)} structures but {len(residuals)} energies")
    if not np.isfinite(residuals).all():
        raise UserError("reference energy fit: energies contain NaN or inf")
    start = {int(z): float(prior.get(z, 0.0)) for z in elements}
    counts = composition_matrix(numbers_list, elements)
    present = np.flatnonzero(counts.sum(0) > 0)
    n_formulas = len({tuple(row) for row in counts.tolist()})
    change = np.zeros(len(elements))
    if len(residuals) == 0 or len(present) == 0:
        return ReferenceFit(start, dict.fromkeys(start, 0.0), "none", math.inf, 0, 0)
    c = counts[:, present]
    rank = np.linalg.matrix_rank(c)
    condition = float(np.linalg.cond(c)) if rank == len(present) else math.inf
    if rank > 1 or len(present) == 1:
        gram = c.T @ c / len(residuals)
        penalty = ridge * float(np.linalg.eigvalsh(gram)[-1])  # relative: no units, no scale
        change[present] = np.linalg.solve(gram + penalty * np.eye(len(present)), c.T @ residuals / len(residuals))
        method = "ridge"
    else:
        atoms = c.sum(1)
        change[present] = float(atoms @ residuals / (atoms @ atoms))
        method = "global shift"
    energies = {int(z): start[int(z)] + float(d) for z, d in zip(elements, change)}
    return ReferenceFit(energies, {int(z): float(d) for z, d in zip(elements, change)}, method,
                        condition, len(residuals), n_formulas, len(present), int(rank))
