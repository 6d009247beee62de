"""The C AEV kernels (`aev_native`), built for real with the system compiler: derivatives equal
autograd's to second order, the whole AEV and a force-training step equal the torch path's,
and the model falls back to torch operations when the kernels cannot be built."""

import copy

import numpy as np
import pytest
import torch

from foundation.data.batch import collate
from foundation.models import ANIConfig, aev_native, native
from foundation.models.aev import AEV
from foundation.models.neighbors import neighbor_pairs, triplets_from_pairs
from foundation.models.prediction import predict
from foundation.models.testing import random_crystal, random_molecule
from foundation.train.loss import LossConfig, energy_force_loss

ELEMENTS = [1, 6, 7, 8]


def _native(dtype=torch.float64):
    aev = AEV.like_1x(ELEMENTS).to(dtype)
    native = aev_native.kernels(aev.radial.params(), aev.angular.params(), torch.zeros(1, dtype=dtype))
    if native is None:
        pytest.skip("no C compiler: the native AEV kernels cannot be built here")
    return native


def _vectors(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(n, 3, generator=g, dtype=torch.float64)
    length = 0.9 + 2.5 * torch.rand(n, 1, generator=g, dtype=torch.float64)
    return (v / v.norm(dim=1, keepdim=True) * length).requires_grad_()


def test_radial_kernel_derivatives_match_autograd():
    native = _native()
    v = _vectors(25, 0)
    slot = torch.randint(0, 6, (25,), generator=torch.Generator().manual_seed(0))
    assert torch.autograd.gradcheck(lambda x: native.radial(x, slot, 6), (v,))
    assert torch.autograd.gradgradcheck(lambda x: native.radial(x, slot, 6), (v,))


def test_angular_kernel_derivatives_match_autograd():
    native = _native()
    v = _vectors(24, 1)
    center = torch.sort(torch.randint(0, 4, (24,), generator=torch.Generator().manual_seed(1))).values
    p, q = triplets_from_pairs(center)
    slot = torch.randint(0, 7, (len(p),), generator=torch.Generator().manual_seed(2))
    assert torch.autograd.gradcheck(lambda x: native.angular(x, p, q, slot, 7), (v,))
    assert torch.autograd.gradgradcheck(lambda x: native.angular(x, p, q, slot, 7), (v,))


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 2e-6)])
def test_native_aev_equals_the_torch_path(dtype, tol):
    _native(dtype)
    rng = np.random.default_rng(3)
    samples = [random_molecule(rng, ELEMENTS, n) for n in (2, 9, 20)] + [random_crystal(rng, ELEMENTS)]
    batch = collate(samples, fidelities=[], dtype=dtype)
    species = torch.tensor([ELEMENTS.index(int(z)) for z in batch.numbers])
    aev = AEV.like_1x(ELEMENTS).to(dtype)
    i, j, shifts = neighbor_pairs(batch, aev.cutoff)
    native = aev(species, batch.positions, i, j, shifts)
    aev.native = False
    reference = aev(species, batch.positions, i, j, shifts)
    scale = float(reference.abs().max())
    torch.testing.assert_close(native, reference, rtol=0, atol=tol * scale)


def test_ani2x_constants_seven_elements_and_a_non_integer_zeta():
    elements = [1, 6, 7, 8, 16, 9, 17]
    rng = np.random.default_rng(7)
    batch = collate([random_molecule(rng, elements, n) for n in (6, 15)], fidelities=[], dtype=torch.float64)
    species = torch.tensor([elements.index(int(z)) for z in batch.numbers])
    aev = AEV.like_2x(elements).double()
    if aev_native.kernels(aev.radial.params(), aev.angular.params(), batch.positions) is None:
        pytest.skip("no C compiler: the native AEV kernels cannot be built here")
    i, j, shifts = neighbor_pairs(batch, aev.cutoff)
    x = batch.positions.clone().requires_grad_()
    native = aev(species, x, i, j, shifts)
    (g_native,) = torch.autograd.grad(native.square().sum(), x)
    aev.native = False
    reference = aev(species, x, i, j, shifts)
    (g_reference,) = torch.autograd.grad(reference.square().sum(), x)
    torch.testing.assert_close(native, reference, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(g_native, g_reference, rtol=1e-10, atol=1e-10)


def test_force_training_gradients_equal_the_torch_path():
    _native()
    rng = np.random.default_rng(4)
    samples = [random_molecule(rng, ELEMENTS, n) for n in (5, 12)]
    for s in samples:
        s.energies["wb97x_631gs"] = -10.0 * s.n_atoms
        s.forces["wb97x_631gs"] = rng.normal(size=(s.n_atoms, 3))
    batch = collate(samples, dtype=torch.float64)
    torch.manual_seed(0)
    model = ANIConfig().build().double().train()
    grads = []
    for native in (True, False):
        copy_ = copy.deepcopy(model)
        copy_.aev.native = native
        pred = predict(copy_, batch, ["wb97x_631gs"], ["wb97x_631gs"], create_graph=True)
        loss, _ = energy_force_loss(pred, batch, LossConfig())
        loss.backward()
        grads.append(torch.cat([p.grad.reshape(-1) for p in copy_.parameters()]))
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-9, atol=1e-12)


def test_falls_back_to_torch_without_a_compiler(monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("FOUNDATION_CACHE", str(tmp_path))
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    monkeypatch.setattr(native, "_libraries", {})
    aev = AEV.like_1x(ELEMENTS)
    assert aev_native.kernels(aev.radial.params(), aev.angular.params(), torch.zeros(1)) is None
    assert "could not build the native AEV kernels" in caplog.text
    # and the model still runs, on torch operations
    model = ANIConfig().build()
    out = model(collate([random_molecule(np.random.default_rng(5), ELEMENTS, 6)], fidelities=[]))
    assert torch.isfinite(out["forces"]).all()


def test_can_be_switched_off(monkeypatch):
    monkeypatch.setenv("FOUNDATION_NATIVE_KERNELS", "0")
    aev = AEV.like_1x(ELEMENTS)
    assert aev_native.kernels(aev.radial.params(), aev.angular.params(), torch.zeros(1)) is None


def test_a_model_that_ran_native_kernels_can_be_deep_copied():
    model = ANIConfig().build()
    batch = collate([random_molecule(np.random.default_rng(6), ELEMENTS, 6)], fidelities=[])
    energy = model(batch)["energy"]
    torch.testing.assert_close(copy.deepcopy(model)(batch)["energy"], energy)


def test_loading_the_kernels_leaves_subnormal_numbers_on():
    """A library linked with -ffast-math would switch flush-to-zero on for the whole process."""
    import numpy as np

    from foundation.models.aev import AEV
    from foundation.models import aev_native

    aev = AEV.like_1x([1, 6, 7, 8])
    example = torch.zeros(1, 3)
    if aev_native.kernels(aev.radial.params(), aev.angular.params(), example) is None:
        pytest.skip("no C compiler: the kernels are not built")
    tiny = np.float32(1e-39)  # subnormal in float32
    assert tiny * np.float32(1.0) != 0 and (torch.tensor(1e-39) * 1.0).item() != 0
