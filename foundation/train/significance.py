"""How far a validation number can move by chance: its sampling error, by a bootstrap.

Early stopping keeps a step only when it beats the start on the selection metric. Compared as two
numbers, a fine-tune on labels that carry no signal was kept about half the time, because the
metric of a small, noisy validation set moves by chance: a user fine-tuning ANI-1x on CC energies
plus 2 eV of noise got a model at 11.4 kcal/mol on the true labels of held-out conformers where
the start was at 3.0 (issue 27). So the trainer counts a step as better than the start only when
it is lower than the start's value by more than `trainer.significance` times that value's own
standard error (`standard_error`): the floor is the start's value minus that margin. Every step
kept then beats the start by more than the margin, since later steps must also beat it.

Why the start's own error and not the error of the difference (a paired bootstrap): with labels
of no signal, a candidate that learnt the training noise errs differently from the start on
every validation structure, and on a dozen structures some such difference lines up with the
validation noise by chance often enough to pass a paired test at two standard errors (measured:
2 of 4 seeds); the metric's own error is what a noisy validation set can and cannot tell apart.

A resample draws molecules with replacement, then, within each drawn molecule, its structures
with replacement (a hierarchical bootstrap: with few molecules the conformers still vary, with
many the molecules do). Structures without a molecule name are molecules of their own. The
draws are seeded. The rows come from `foundation.train.validate.validate(..., rows=[])`: one per
structure and fidelity with the energy error and the force-error sums; a draw's weighted sums go
through the same `finish` as the whole set's, so any selection metric (relative-energy RMSE,
energy RMSE, forces, the loss, a weighted sum of them) is bootstrapped as it is computed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from foundation.errors import UserError

# One row: (structure index in the validation pass, molecule name or "", fidelity, energy error
# eV or nan when the structure has no energy at that fidelity, atoms, force |error| sum,
# force squared-error sum, force components).
Row = tuple[int, str, str, float, int, float, float, int]


class Bootstrap:
    """Resample weights for the structures of one validation set: `draws` × structures counts."""

    def __init__(self, rows: Sequence[Row], draws: int = 200, seed: int = 0):
        if draws < 2:
            raise UserError(f"trainer.bootstrap_draws={draws}: needs 2 or more")
        structures = sorted({r[0] for r in rows})  # a structure with no label in the run's heads has no row
        self.n = (structures[-1] + 1) if structures else 0
        molecule_of = {r[0]: (r[1] or f"#{r[0]}") for r in rows}
        groups: dict[str, list[int]] = {}
        for s in structures:
            groups.setdefault(molecule_of[s], []).append(s)
        members = list(groups.values())
        rng = np.random.default_rng(seed)
        weights = np.zeros((draws, self.n))
        for b in range(draws):
            for m in rng.integers(len(members), size=len(members)):
                chosen = members[m]
                np.add.at(weights[b], np.asarray(chosen)[rng.integers(len(chosen), size=len(chosen))], 1.0)
        self.weights = weights

    def values(self, rows: Sequence[Row], finish: Callable[[dict], float | None]) -> np.ndarray:
        """(draws,) the metric `finish(sums)` of each resample of `rows`."""
        sums = weighted_sums(rows, self.weights)
        return np.array([_value(finish, {k: float(v[b]) for k, v in sums.items()})
                         for b in range(len(self.weights))])


def standard_error(rows: Sequence[Row], finish: Callable[[dict], float | None], draws: int = 200,
                   seed: int = 0) -> float:
    """The bootstrap standard error of the metric `finish(sums)` of `rows` (0 for one structure)."""
    if not rows:
        return 0.0
    values = Bootstrap(rows, draws, seed).values(rows, finish)
    finite = values[np.isfinite(values)]
    return float(finite.std(ddof=1)) if len(finite) > 1 else 0.0


def _value(finish: Callable[[dict], float | None], sums: dict) -> float:
    value = finish(sums)
    return math.nan if value is None else float(value)


def weighted_sums(rows: Sequence[Row], weights: np.ndarray) -> dict[str, np.ndarray]:
    """The sums `validate` accumulates (per fidelity), for each row of `weights`, as (draws,)."""
    out: dict[str, np.ndarray] = {}
    by_fid: dict[str, list[Row]] = {}
    for r in rows:
        by_fid.setdefault(r[2], []).append(r)
    for fid, mine in by_fid.items():
        index = np.array([r[0] for r in mine])
        err = np.array([r[3] for r in mine], dtype=np.float64)
        w = weights[:, index]
        has_e = np.isfinite(err)
        if has_e.any():
            we, e, atoms = w[:, has_e], err[has_e], np.array([r[4] for r in mine], np.float64)[has_e]
            out[f"{fid}/e_abs"] = we @ np.abs(e)
            out[f"{fid}/e_sq"] = we @ e**2
            out[f"{fid}/e_sq_per_atom"] = we @ (e / atoms) ** 2
            out[f"{fid}/e_n"] = we.sum(1)
            out[f"{fid}/rel_sq"], out[f"{fid}/rel_n"] = _relative(we, e, [r[1] for r, h in zip(mine, has_e) if h])
        f_n = np.array([r[7] for r in mine], np.float64)
        if f_n.any():
            out[f"{fid}/f_abs"] = w @ np.array([r[5] for r in mine])
            out[f"{fid}/f_sq"] = w @ np.array([r[6] for r in mine])
            out[f"{fid}/f_n"] = w @ f_n
    return out


def _relative(w: np.ndarray, e: np.ndarray, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per draw: Σ over named molecules with more than one (weighted) structure of Σ w e² − (Σ w e)² / Σ w,
    and Σ of their weights, as `validate` sums them."""
    labels = sorted({n for n in names if n})
    if not labels:
        zero = np.zeros(len(w))
        return zero, zero
    onehot = np.zeros((len(e), len(labels)))
    for i, n in enumerate(names):
        if n:
            onehot[i, labels.index(n)] = 1.0
    total, square, count = w @ (onehot * e[:, None]), w @ (onehot * e[:, None] ** 2), w @ onehot
    several = count > 1
    safe = np.where(several, count, 1.0)
    rel_sq = np.where(several, square - total**2 / safe, 0.0).sum(1)
    return rel_sq, np.where(several, count, 0.0).sum(1)

