"""Validation: one pass over the validation split with per-fidelity energy and force errors.

Errors are accumulated as sums and counts, then combined across ranks before dividing, so the
result does not depend on how batches or ranks split the structures. Keys:
`val/<fid>/energy_mae`, `val/<fid>/energy_rmse` (eV per structure), `val/<fid>/forces_mae`,
`val/<fid>/forces_rmse` (eV/Å per component), and `val/loss` (the training loss on the whole
split: the metric early stopping and the plateau schedule watch by default)."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable

import torch

from foundation.data.batch import AtomsBatch
from foundation.train.loss import LossConfig


def validate(predict_fn: Callable, batches: Iterable[AtomsBatch], heads: list[str],
             loss_config: LossConfig, device: torch.device, dtype: torch.dtype,
             all_reduce: Callable[[dict, str], dict] | None = None) -> dict[str, float]:
    """`predict_fn(batch, heads, force_heads)` returns the `predict` dict for `batch`."""
    sums: dict[str, float] = defaultdict(float)
    for batch in batches:
        batch = batch.to(device, dtype)
        force_heads = loss_config.force_heads(batch, heads)
        pred = predict_fn(batch, heads, force_heads)
        _accumulate(sums, pred, batch, heads)
    if all_reduce is not None:
        sums = all_reduce(dict(sums), "sum")
    return _finish(sums, heads, loss_config)


@torch.no_grad()
def _accumulate(sums: dict, pred: dict, batch: AtomsBatch, heads: list[str]) -> None:
    n_atoms = batch.n_atoms_per_structure.to(torch.float64)
    for fid in heads:
        mask = batch.energy_mask[fid]
        if mask.any():
            err = (pred["energy"][fid].detach().to(torch.float64) - batch.energy[fid])[mask]
            sums[f"{fid}/e_abs"] += float(err.abs().sum())
            sums[f"{fid}/e_sq"] += float(err.square().sum())
            sums[f"{fid}/e_sq_per_atom"] += float((err / n_atoms[mask]).square().sum())
            sums[f"{fid}/e_n"] += int(mask.sum())
        if fid in pred.get("forces", {}):
            atom_mask = batch.forces_mask[fid][batch.batch]
            err = (pred["forces"][fid].detach() - batch.forces[fid])[atom_mask].to(torch.float64)
            sums[f"{fid}/f_abs"] += float(err.abs().sum())
            sums[f"{fid}/f_sq"] += float(err.square().sum())
            sums[f"{fid}/f_n"] += err.numel()


def _finish(sums: dict, heads: list[str], loss_config: LossConfig) -> dict[str, float]:
    metrics: dict[str, float] = {}
    loss = 0.0
    for fid in heads:
        part = 0.0
        if sums.get(f"{fid}/e_n", 0) > 0:
            n = sums[f"{fid}/e_n"]
            metrics[f"val/{fid}/energy_mae"] = sums[f"{fid}/e_abs"] / n
            metrics[f"val/{fid}/energy_rmse"] = math.sqrt(sums[f"{fid}/e_sq"] / n)
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
