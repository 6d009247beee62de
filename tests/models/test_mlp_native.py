"""The ensemble's stacked networks with their hand-written backward (foundation/models/mlp_native.py)."""

import copy

import pytest
import torch

from foundation.models import mlp_native, native
from foundation.models.ani_ensemble import ANIEnsemble
from foundation.models.ensemble import EnsembleModel

from .test_ensemble import small_batch, small_members

ALPHA = 0.1


def _kernels(dtype):
    lib = mlp_native.kernels(ALPHA, dtype)
    if lib is None:
        pytest.skip("no C compiler here")
    return lib


def _exact_celu(x):
    """CELU in torch operations whose autograd derivative is exact (torch.celu's backward is not)."""
    return torch.where(x > 0, x, ALPHA * torch.expm1(torch.clamp(x, max=0) / ALPHA))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_celu_kernels_give_celu_and_its_exact_derivative(dtype):
    lib = _kernels(dtype)
    x = torch.randn(10_001, dtype=torch.float64) * 0.5
    y = x.to(dtype).clone()
    native.call(lib, "celu_bias_forward", 1, 1, y.numel(), y, torch.zeros_like(y))
    tol = dict(rtol=1e-14, atol=1e-16) if dtype == torch.float64 else dict(rtol=2e-6, atol=1e-7)
    torch.testing.assert_close(y, torch.celu(x, ALPHA).to(dtype), **tol)
    g = torch.randn_like(x).to(dtype)
    got = g.clone()
    native.call(lib, "celu_backward", got.numel(), got, y)
    exact = g.double() * torch.where(x > 0, 1.0, torch.exp(x / ALPHA))
    # from the output, y / alpha + 1: exact up to one rounding of 1 (absolute), where exp is tiny
    torch.testing.assert_close(got, exact.to(dtype), **(dict(rtol=1e-14, atol=1e-15) if dtype == torch.float64 else dict(rtol=2e-6, atol=1e-6)))
    if dtype == torch.float64:  # why the ensemble tests allow 1e-7 against torch.celu's backward
        (theirs,) = torch.autograd.grad(torch.celu(x.requires_grad_(), ALPHA), x, g)
        assert 1e-9 < ((theirs - exact).abs() / g.abs()).max() < 1e-7


def _stacked(dtype):
    members = [m.to(dtype).eval() for m in small_members(3)]
    shared = ANIEnsemble.of(members, kind=type(members[0]))
    shared._weights()
    return shared, shared.cache["weights"], shared.cache["firsts"]


def _exact_chain(x, layers):
    (w0, b0), rest = layers[0], layers[1:]
    x = torch.baddbmm(b0, x.expand(w0.shape[0], *x.shape) if x.dim() == 2 else x, w0)
    for w, b in rest:
        x = torch.baddbmm(b, _exact_celu(x), w)
    return x


def _torch_chain(x, layers):
    (w0, b0), rest = layers[0], layers[1:]
    x = torch.baddbmm(b0, x.expand(w0.shape[0], *x.shape) if x.dim() == 2 else x, w0)
    for w, b in rest:
        x = torch.baddbmm(b, torch.celu(x, ALPHA), w)
    return x


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("per_member", [False, True])
def test_stacked_networks_equal_the_autograd_chain_and_its_input_gradient(dtype, per_member):
    lib = _kernels(dtype)
    _, weights, firsts = _stacked(dtype)
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == torch.float64 else dict(rtol=1e-4, atol=1e-5)
    for layers, first in zip(weights, firsts):
        x = torch.randn(7, layers[0][0].shape[1], dtype=dtype)
        if per_member:
            x = x.expand(layers[0][0].shape[0], *x.shape)
        x = x.detach().requires_grad_()
        out = mlp_native.stacked_networks(x, layers, first, lib)
        ref = _exact_chain(x, layers)
        torch.testing.assert_close(out, ref, **tol)
        torch.testing.assert_close(out, _torch_chain(x, layers), **tol)  # torch.celu's forward is exact
        upstream = torch.randn_like(out)  # every head, any weights: the general backward
        (got,) = torch.autograd.grad(out, x, upstream)
        (want,) = torch.autograd.grad(ref, x, upstream)
        assert got.shape == x.shape
        torch.testing.assert_close(got, want, **tol)


def test_grouped_networks_give_each_atom_its_elements_networks_less_nn0_and_the_feature_gradient():
    lib = _kernels(torch.float64)
    members = [m.eval() for m in small_members(3)]
    shared = ANIEnsemble.of(members, kind=type(members[0]))
    species = torch.tensor([2, 0, 0, 2, 1, 0])  # element 3 absent: its networks never run
    features = torch.randn(len(species), shared._weights()[0][0][0].shape[1], dtype=torch.float64, requires_grad=True)
    groups = list(torch.argsort(species, stable=True).split(torch.bincount(species, minlength=4).tolist()))
    out = mlp_native.grouped_networks(features, groups, shared._networks(lib), lib)
    weights = shared._weights()
    zero = features.new_zeros(1, features.shape[1])
    want = torch.stack([(_exact_chain(features[a:a + 1], weights[z]) - _exact_chain(zero, weights[z]))[:, 0]
                        for a, z in enumerate(species.tolist())], dim=1)
    torch.testing.assert_close(out, want, rtol=1e-12, atol=1e-12)
    upstream = torch.randn_like(out)
    (got,) = torch.autograd.grad(out, features, upstream)
    (expected,) = torch.autograd.grad(want, features, upstream)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


def test_the_forces_it_gives_cannot_be_differentiated_again():
    lib = _kernels(torch.float64)
    _, weights, firsts = _stacked(torch.float64)
    x = torch.randn(5, weights[0][0][0].shape[1], dtype=torch.float64, requires_grad=True)
    out = mlp_native.stacked_networks(x, weights[0], firsts[0], lib)
    (g,) = torch.autograd.grad(out.sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable|does not require grad"):
        torch.autograd.grad(g.sum(), x)


def test_eval_forces_use_it_train_mode_does_not_and_without_kernels_the_ensemble_still_runs(monkeypatch):
    _kernels(torch.float64)
    ensemble = EnsembleModel.from_members(small_members()).eval()
    batch = small_batch()
    calls = []
    real = mlp_native.grouped_networks
    monkeypatch.setattr("foundation.models.ani_ensemble.grouped_networks",
                        lambda *a: calls.append(1) or real(*a))
    fast = ensemble(batch, head="ccsdt_ccpvdz")
    assert calls, "eval-mode forces did not use the hand-written backward"
    calls.clear()
    trained = copy.deepcopy(ensemble).train()
    trained(batch, head="ccsdt_ccpvdz")
    assert not calls, "train mode must keep autograd (its forces are differentiated again)"
    monkeypatch.setenv("FOUNDATION_NATIVE_KERNELS", "0")
    slow = copy.deepcopy(ensemble)(batch, head="ccsdt_ccpvdz")
    assert not calls
    torch.testing.assert_close(fast["forces"], slow["forces"], rtol=1e-7, atol=1e-7)
    torch.testing.assert_close(fast["energy"], slow["energy"], rtol=1e-12, atol=1e-10)


def test_with_more_threads_a_large_batch_keeps_torchs_threaded_passes(monkeypatch):
    from foundation.threads import ATOMS_PER_THREAD

    _kernels(torch.float64)
    members = [m.eval() for m in small_members(3)]
    shared = ANIEnsemble.of(members, kind=type(members[0]))
    small = torch.zeros(10, 8, dtype=torch.float64)
    large = torch.zeros(ATOMS_PER_THREAD + 1, 8, dtype=torch.float64)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 4)
    assert shared._kernels(small) is not None and shared._kernels(large) is None
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    assert shared._kernels(large) is not None
