"""Per-element reference energies of the heads a run trains, fitted before the first step so the
network learns only what they do not explain (`foundation.models.reference` has the maths).

- A fresh model: least squares on the training energies (the smallest fit where the
  compositions cannot determine every element).
- A head with references already (`trainer.init_from`: a head copied from another, or one the
  model has and `trainer.refit_reference_energies` refits): the change from them, fitted to what
  the model with them still misses on the training structures (label − prediction), ridge-
  regularised toward no change (`trainer.reference_ridge`), or one shift per atom when the
  formulas cannot separate the elements at all (one formula). Without the structures' positions (a data module that
  offers only compositions) the prediction is taken as the references' sum alone.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import torch

from foundation.models.reference import (RIDGE, ReferenceFit, composition_matrix, fit_reference_energies,
                                         refit_change)

MAX_STRUCTURES = 20_000  # predicted for a refit: plenty for ~10 element energies, bounded on big data
BATCH_ATOMS = 2048


def fit_references(model, data, heads: list[str], from_prior: bool = False,
                   ridge: float = RIDGE) -> dict[str, ReferenceFit]:
    """Fit and set the references of `heads` on `model`; return what was done per head."""
    fitted = {}
    for fid in heads:
        numbers, energies = data.reference_data(fid)
        if len(energies) == 0:
            warnings.warn(f"no training energies at fidelity {fid!r}: its reference energies are kept",
                          stacklevel=2)
            continue
        if from_prior:
            fit = _refit(model, data, fid, numbers, energies, ridge)
        else:
            fit = _fresh(model, fid, numbers, energies)
        model.set_reference_energies(fid, fit.energies)
        fitted[fid] = fit
    return fitted


def _fresh(model, fid: str, numbers, energies) -> ReferenceFit:
    elements = list(model.elements)
    counts = composition_matrix(numbers, elements)
    prior = None
    if np.linalg.matrix_rank(counts) < len(elements):
        warnings.warn(f"fidelity {fid!r}: the training compositions do not determine every element's "
                      "reference energy; using the smallest (minimum-norm) fit", stacklevel=3)
        prior = {}
    refs = fit_reference_energies(numbers, energies, elements, prior=prior)
    present = counts[:, counts.sum(0) > 0]
    rank = int(np.linalg.matrix_rank(present)) if len(present) else 0
    condition = float(np.linalg.cond(present)) if rank and rank == present.shape[1] else float("inf")
    return ReferenceFit(refs, dict(refs), "least squares", condition, len(energies),
                        len({tuple(r) for r in counts.tolist()}), present.shape[1], rank)


def _refit(model, data, fid: str, numbers, energies, ridge: float) -> ReferenceFit:
    prior = model.reference_energies_dict()[fid]
    samples = training_samples(data, fid)
    if samples is not None:
        numbers = [s.numbers for s in samples]
        residuals = np.array([s.energies[fid] for s in samples]) - predict_energies(model, samples, fid)
    else:
        counts = composition_matrix(numbers, list(model.elements))
        residuals = np.asarray(energies) - counts @ np.array([prior[int(z)] for z in model.elements])
    return refit_change(numbers, residuals, list(model.elements), prior, ridge)


def training_samples(data, fid: str | None, limit: int = MAX_STRUCTURES) -> list | None:
    """Up to `limit` training samples labelled at `fid` (at any fidelity: None): the in-memory
    split, or the shards' (None for a data module that offers neither)."""
    if isinstance(getattr(data, "train", None), list):
        source = iter(data.train)
    elif getattr(data, "manifest", None) is not None:
        from foundation.data.shards.reader import iter_samples

        source = iter_samples(data.manifest, data.config.train_split, data.config.on_error)
    else:
        return None
    out = []
    for sample in source:
        if fid is None or fid in sample.energies:
            out.append(sample)
            if len(out) >= limit:
                break
    return out


@torch.no_grad()
def predict_energies(model, samples: Sequence, head: str) -> np.ndarray:
    """(len(samples),) eV: `model`'s energies at `head`, in eval mode, batch by batch."""
    from foundation.data.batch import collate
    from foundation.data.batching import group_by_atoms

    was_training = model.training
    model.eval()
    parameter = next(model.parameters(), None)
    dtype = parameter.dtype if parameter is not None else torch.float32
    device = parameter.device if parameter is not None else torch.device("cpu")
    out = []
    try:
        for group in group_by_atoms(samples, BATCH_ATOMS):
            batch = collate(group, fidelities=[], dtype=dtype).to(device)
            out.append(model(batch, head=head, forces=False)["energy"].to(torch.float64).cpu().numpy())
    finally:
        model.train(was_training)
    return np.concatenate(out) if out else np.zeros(0)
