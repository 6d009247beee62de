"""Per-element reference energies by linear least squares: E ≈ sum_Z n_Z e_Z.

Each fidelity gets its own (DESIGN.md): fine-tuning on a new level of theory without refitting
them starts electron-volts off (fairchem #1486). The model then learns only the residual.
"""

from __future__ import annotations

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
