"""Our flat-batch AEV against TorchANI 2.9's (`AEVComputer.like_1x()` / `like_2x()`), run for real."""

import numpy as np
import pytest
import torch
import torchani

from foundation.data.batch import collate
from foundation.models.aev import AEV
from foundation.models.neighbors import neighbor_pairs
from foundation.models.testing import random_molecule


def _compare(preset: str, elements: list[int], dtype: torch.dtype, seed: int):
    rng = np.random.default_rng(seed)
    samples = [random_molecule(rng, elements, n) for n in (1, 3, 8, 15, 24)]
    index = {z: k for k, z in enumerate(elements)}
    batch = collate(samples, fidelities=[], dtype=dtype)
    species = torch.tensor([index[int(z)] for z in batch.numbers])
    aev = getattr(AEV, preset)(elements).to(dtype)
    i, j, shifts = neighbor_pairs(batch, aev.cutoff)
    ours = aev(species, batch.positions, i, j, shifts)

    # TorchANI: padded (molecules, max atoms), species -1 for padding
    width = max(s.n_atoms for s in samples)
    padded_species = torch.full((len(samples), width), -1)
    padded_coords = torch.zeros(len(samples), width, 3, dtype=dtype)
    for k, s in enumerate(samples):
        padded_species[k, : s.n_atoms] = torch.tensor([index[int(z)] for z in s.numbers])
        padded_coords[k, : s.n_atoms] = torch.tensor(s.positions, dtype=dtype)
    reference = getattr(torchani.aev.AEVComputer, preset)(num_species=len(elements)).to(dtype)
    theirs = reference(padded_species, padded_coords)
    theirs = torch.cat([theirs[k, : s.n_atoms] for k, s in enumerate(samples)])
    assert ours.shape == theirs.shape == (batch.n_atoms, reference.out_dim)
    return ours, theirs


@pytest.mark.parametrize("seed", [0, 1])
def test_matches_torchani_like_1x_float64(seed):
    ours, theirs = _compare("like_1x", [1, 6, 7, 8], torch.float64, seed)
    assert ours.shape[1] == 384
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-12)


def test_matches_torchani_like_1x_float32():
    ours, theirs = _compare("like_1x", [1, 6, 7, 8], torch.float32, 2)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)


def test_matches_torchani_like_2x_with_seven_elements():
    # ANI-2x order is H, C, N, O, S, F, Cl; TorchANI rounds eta = 19.7 and zeta = 14.1 to
    # float32, hence agreement to ~1e-6, not 1e-12.
    ours, theirs = _compare("like_2x", [1, 6, 7, 8, 16, 9, 17], torch.float64, 3)
    assert ours.shape[1] == 1008
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-7)


def test_ani1x_preset_with_more_elements_matches_torchani():
    ours, theirs = _compare("like_1x", [1, 6, 7, 8, 16, 9, 17], torch.float64, 4)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-12)
