"""`avg_num_neighbors: auto` and `energy_scale: auto`: the two MACE settings that `mace_run_train`
computes from the training data, computed here by mace-torch's own functions on our training
structures (fed to them as the batches they read: `edge_index`, `node_attrs`, `ptr`, ...).

- `avg_num_neighbors`: `mace.modules.compute_avg_num_neighbors`, the mean number of neighbours
  within r_max of each atom that has any (MACE counts receivers; an isolated atom is not counted).
- `energy_scale`: mace_run_train's default `--scaling rms_forces_scaling`, the RMS of the training
  force components (`compute_mean_rms_energy_forces`). Our model has one scale for all heads, so
  every fidelity's force labels are pooled (data with one set of forces get exactly MACE's value).
  Data without forces get MACE's `std_scaling` instead (`compute_mean_std_atomic_inter_energy`): the
  spread of the per-atom energy that each fidelity's least-squares reference energies leave,
  averaged over fidelities.

Both are written into the model's config, so the exported file rebuilds the same model.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Sequence
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F

from foundation.data.batch import collate
from foundation.data.sample import Sample
from foundation.models.neighbors import neighbor_pairs
from foundation.models.reference import fit_reference_energies

CHUNK = 256  # structures per batch handed to mace-torch's functions


def avg_num_neighbors(samples: Sequence[Sample], r_max: float, elements: Sequence[int]) -> float:
    modules = _modules()
    batches = _batches([(s, None, 0) for s in samples], elements, r_max)
    with _float64():
        value = float(modules.compute_avg_num_neighbors(batches))
    return _usable(value)  # no atom with a neighbour: any value will do


def energy_scale(samples: Sequence[Sample], elements: Sequence[int]) -> float:
    modules = _modules()
    forced = [(s, fid, 0) for s in samples for fid in sorted(s.forces)]
    if forced:
        with _float64():
            _, rms = modules.compute_mean_rms_energy_forces(_batches(forced, elements), np.zeros(len(elements)))
        return _usable(float(np.asarray(rms).reshape(-1)[0]))
    fids = sorted({fid for s in samples for fid in s.energies})
    labelled = [(s, fid, k) for k, fid in enumerate(fids) for s in samples if fid in s.energies]
    if not labelled:
        return 1.0
    e0s = np.array([_references([s for s, f, _ in labelled if f == fid], fid, elements) for fid in fids])
    with _float64():
        _, std = modules.compute_mean_std_atomic_inter_energy(_batches(labelled, elements), e0s)
    return _usable(float(np.mean(np.asarray(std).reshape(-1))))  # one structure per fidelity: no spread


def _usable(value: float) -> float:
    """1.0 (no scaling, as mace-torch falls back to) where the data give no positive number."""
    return value if math.isfinite(value) and value > 0 else 1.0


def _modules():
    from foundation.models.mace_torch import mace_modules

    return mace_modules()[0]


@contextlib.contextmanager
def _float64():
    """mace_run_train's `--default_dtype float64`: its statistics then hold E0s of ~1e3 eV to
    float64 precision (they make buffers in the default dtype)."""
    saved = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(saved)


def _references(samples: list[Sample], fid: str, elements: Sequence[int]) -> list[float]:
    """Least-squares E0s (minimum-norm where the compositions leave some undetermined), as
    mace_run_train's `--E0s average` fits them."""
    refs = fit_reference_energies([s.numbers for s in samples], [s.energies[fid] for s in samples],
                                  elements, prior={})
    return [refs[int(z)] for z in elements]


def _batches(entries: list[tuple[Sample, str | None, int]], elements: Sequence[int],
             r_max: float | None = None) -> Iterable[SimpleNamespace]:
    """(sample, fidelity of its labels or None, head index) triples as the torch_geometric batches
    mace-torch's statistics iterate over (float64, so total energies keep their digits)."""
    index = {int(z): k for k, z in enumerate(elements)}
    for start in range(0, len(entries), CHUNK):
        chunk = entries[start:start + CHUNK]
        samples = [s for s, _, _ in chunk]
        batch = collate(samples, fidelities=[], dtype=torch.float64)
        species = torch.tensor([index[int(z)] for s in samples for z in s.numbers], dtype=torch.long)
        counts = torch.tensor([s.n_atoms for s in samples])
        out = SimpleNamespace(
            node_attrs=F.one_hot(species, len(elements)).to(torch.float64), batch=batch.batch,
            ptr=torch.cat([counts.new_zeros(1), counts.cumsum(0)]), num_graphs=len(samples),
            head=torch.tensor([h for _, _, h in chunk], dtype=torch.long),
            energy=torch.tensor([s.energies.get(f, 0.0) if f else 0.0 for s, f, _ in chunk], dtype=torch.float64),
            forces=torch.from_numpy(np.concatenate([s.forces.get(f, np.zeros((s.n_atoms, 3))) if f
                                                    else np.zeros((s.n_atoms, 3)) for s, f, _ in chunk])))
        if r_max is not None:
            i, j, _ = neighbor_pairs(batch, r_max)
            out.edge_index = torch.stack([i, j])  # sender i, receiver j, as `mace_input` gives MACE
        yield out
