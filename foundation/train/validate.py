"""Validation: one pass over the validation split with per-fidelity energy and force errors.

Errors are accumulated as sums and counts, then combined across ranks before dividing, so the
result does not depend on how batches or ranks split the structures. Keys:
`val/<fid>/energy_mae`, `val/<fid>/energy_rmse` (eV per structure),
`val/<fid>/relative_energy_rmse` (eV: energies relative to their molecule's mean, over the
molecules with two validation structures or more; what conformer rankings and dynamics depend
on, and no per-element reference energy can fix), `val/<fid>/forces_mae`, `val/<fid>/forces_rmse`
(eV/Å per component), and `val/loss` (the training loss on the whole split). Which of them
chooses the kept weights is `foundation.train.selection`'s business; whether one value beats
another by more than the validation set's sampling error is `foundation.train.significance`'s,
from the per-structure `rows` that `validate` can also return (`metrics_from_sums` turns their
resampled sums into metrics the same way)."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable

import torch

from foundation.data.batch import AtomsBatch
from foundation.train.loss import LossConfig


def validate(predict_fn: Callable, batches: Iterable[AtomsBatch], heads: list[str],
             loss_config: LossConfig, device: torch.device, dtype: torch.dtype,
             all_reduce: Callable[[dict, str], dict] | None = None,
             rows: list | None = None) -> dict[str, float]:
    """`predict_fn(batch, heads, force_heads)` returns the `predict` dict for `batch`. A list
    given as `rows` gets one `foundation.train.significance.Row` per structure and fidelity."""
    sums: dict[str, float] = defaultdict(float)
    molecules: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0.0, 0])
    offset = 0
    for batch in batches:
        batch = batch.to(device, dtype)
        force_heads = loss_config.force_heads(batch, heads)
        pred = predict_fn(batch, heads, force_heads)
        _accumulate(sums, pred, batch, heads, molecules)
        if rows is not None:
            rows.extend(_rows(pred, batch, heads, offset))
        offset += batch.n_structures
    # Each rank validates the whole split (every data module's val_batches), so each molecule's
    # sums are complete here and only the per-fidelity totals need combining.
    for (fid, _), (total, square, n) in molecules.items():
        if n > 1:
            sums[f"{fid}/rel_sq"] += square - total * total / n
            sums[f"{fid}/rel_n"] += n
    if all_reduce is not None:
        sums = all_reduce(dict(sums), "sum")
    return metrics_from_sums(sums, heads, loss_config)


@torch.no_grad()
def _accumulate(sums: dict, pred: dict, batch: AtomsBatch, heads: list[str],
                molecules: dict[tuple[str, str], list[float]]) -> None:
    n_atoms = batch.n_atoms_per_structure.to(torch.float64)
    for fid in heads:
        mask = batch.energy_mask[fid]
        if mask.any():
            err = (pred["energy"][fid].detach().to(torch.float64) - batch.energy[fid])[mask]
            sums[f"{fid}/e_abs"] += float(err.abs().sum())
            sums[f"{fid}/e_sq"] += float(err.square().sum())
            sums[f"{fid}/e_sq_per_atom"] += float((err / n_atoms[mask]).square().sum())
            sums[f"{fid}/e_n"] += int(mask.sum())
            if len(batch.molecule) == batch.n_structures:  # batches without names have no groups
                _group(molecules, fid, batch.molecule, mask.nonzero().flatten().tolist(), err.tolist())
        if fid in pred.get("forces", {}):
            atom_mask = batch.forces_mask[fid][batch.batch]
            err = (pred["forces"][fid].detach() - batch.forces[fid])[atom_mask].to(torch.float64)
            sums[f"{fid}/f_abs"] += float(err.abs().sum())
            sums[f"{fid}/f_sq"] += float(err.square().sum())
            sums[f"{fid}/f_n"] += err.numel()


def _group(molecules: dict, fid: str, names: list[str], rows: list[int], errors: list[float]) -> None:
    """Per molecule: sum of errors, sum of squares, count (for the relative-energy RMSE)."""
    for i, e in zip(rows, errors):
        if names[i]:
            group = molecules[(fid, names[i])]
            group[0] += e
            group[1] += e * e
            group[2] += 1


@torch.no_grad()
def _rows(pred: dict, batch: AtomsBatch, heads: list[str], offset: int) -> list[tuple]:
    """Per structure and fidelity with a label: (offset + index, molecule, fidelity, energy
    error eV or nan, atoms, force |error| sum, squared-error sum, components)."""
    out = []
    n_atoms = batch.n_atoms_per_structure.tolist()
    names = batch.molecule if len(batch.molecule) == batch.n_structures else [""] * batch.n_structures
    for fid in heads:
        e_mask = batch.energy_mask[fid].tolist()
        err = (pred["energy"][fid].detach().to(torch.float64) - batch.energy[fid]).tolist()
        f_abs = f_sq = f_n = [0] * batch.n_structures
        if fid in pred.get("forces", {}):
            atom_mask = batch.forces_mask[fid][batch.batch]
            diff = (pred["forces"][fid].detach() - batch.forces[fid]).to(torch.float64)
            diff = diff * atom_mask[:, None]

            def per(x):  # per-atom values summed per structure
                return torch.zeros(batch.n_structures, dtype=torch.float64).index_add_(
                    0, batch.batch.cpu(), x.cpu().to(torch.float64)).tolist()

            f_abs, f_sq = per(diff.abs().sum(1)), per(diff.square().sum(1))
            f_n = per(3.0 * atom_mask.to(torch.float64))
        for i in range(batch.n_structures):
            if e_mask[i] or f_n[i]:
                out.append((offset + i, names[i] or "", fid, err[i] if e_mask[i] else float("nan"),
                            int(n_atoms[i]), float(f_abs[i]), float(f_sq[i]), int(f_n[i])))
    return out


def metrics_from_sums(sums: dict, heads: list[str], loss_config: LossConfig) -> dict[str, float]:
    """The metrics of accumulated sums (those of a whole validation pass, or of a resample)."""
    metrics: dict[str, float] = {}
    loss = 0.0
    for fid in heads:
        part = 0.0
        if sums.get(f"{fid}/e_n", 0) > 0:
            n = sums[f"{fid}/e_n"]
            metrics[f"val/{fid}/energy_mae"] = sums[f"{fid}/e_abs"] / n
            metrics[f"val/{fid}/energy_rmse"] = math.sqrt(sums[f"{fid}/e_sq"] / n)
            if sums.get(f"{fid}/rel_n", 0) > 0:
                relative = max(sums[f"{fid}/rel_sq"], 0.0) / sums[f"{fid}/rel_n"]  # ≥ 0 up to rounding
                metrics[f"val/{fid}/relative_energy_rmse"] = math.sqrt(relative)
            part += loss_config.energy_weight * sums[f"{fid}/e_sq_per_atom"] / n
        if sums.get(f"{fid}/f_n", 0) > 0:
            n = sums[f"{fid}/f_n"]
            metrics[f"val/{fid}/forces_mae"] = sums[f"{fid}/f_abs"] / n
            metrics[f"val/{fid}/forces_rmse"] = math.sqrt(sums[f"{fid}/f_sq"] / n)
            part += loss_config.forces_weight * sums[f"{fid}/f_sq"] / n
        loss += loss_config.weight(fid) * part
    if metrics:
        metrics["val/loss"] = loss
    return metrics
