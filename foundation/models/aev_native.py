"""The AEV sums as C kernels (`csrc/aev_terms.c`) with hand-written first and second
derivatives, built on first use with the system's C compiler and called through ctypes: the CPU
path of `aev.AEV`.

Why: force training differentiates the energy twice (forces = -dE/dx, then the force loss
backwards); autograd of the AEV's per-triplet expressions records a dozen (32, triplets)
intermediates per pass, and one CPU thread spends most of a training step on them. Each sum here
is one autograd Function whose backward is a Function with an analytic backward (the double
backward), each pass one loop over pairs or triplets that keeps their terms in registers: the AEV
of a force-training step is ~2.5x faster than with autograd (64 molecules of 10-27 atoms, one
thread: 42 -> 17 ms, of which the kernels are ~11). Why not torch.compile: double backward
does not go through compiled graphs, and compiling each pass alone was slower than eager here
(Inductor recomputed the per-section powers once per output feature and scattered element-wise).

The model's constants (sizes, eta, zeta, cutoffs) are compiled in, so every loop has a fixed trip
count. Built and cached by `foundation.models.native` (~1 s to build); where no compiler works, or
with FOUNDATION_NATIVE_KERNELS=0, `kernels()` returns None and the AEV runs on torch operations.
"""

from __future__ import annotations

import ctypes
from typing import NamedTuple

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from foundation.models import native

_SIGNATURES = {name: "i" + "p" * (n - 1) for name, n in
               {"radial_forward": 5, "radial_backward": 6, "radial_double": 8,
                "angular_forward": 8, "angular_backward": 9, "angular_double": 11}.items()}


class RadialParams(NamedTuple):
    """G_a(d) = 0.25 exp(-eta (d - s_a)^2) f_C(d), eq. (3) (see `aev.ANIRadial`)."""
    shifts: Tensor  # (A,)
    eta: float
    k: float  # pi / cutoff


class AngularParams(NamedTuple):
    """Eq. (4) with TorchANI's 0.95 (see `aev.ANIAngular`)."""
    shifts: Tensor  # (A,)
    sections: Tensor  # (S,)
    eta: float
    zeta: float
    k: float  # pi / cutoff


class NativeAEV(NamedTuple):
    """The two AEV sums of one model, in C. Both differentiable twice in the pair vectors."""
    lib: ctypes.CDLL
    radial_params: NamedTuple
    angular_params: NamedTuple

    def radial(self, vectors: Tensor, slot: Tensor, num_slots: int) -> Tensor:
        """vectors (P, 3) Å, slot (P,) -> (num_slots, radial features)."""
        tables = (self.radial_params.shifts.to(vectors.dtype).reshape(-1).contiguous(),)
        return _Sum.apply(self.lib, "radial", tables, (slot,), num_slots, len(tables[0]), vectors)

    def angular(self, vectors: Tensor, p: Tensor, q: Tensor, slot: Tensor, num_slots: int) -> Tensor:
        """Triplets of pairs p, q (T,) sharing a centre, slot (T,) -> (num_slots, angular features)."""
        a = self.angular_params
        tables = tuple(t.to(vectors.dtype).reshape(-1).contiguous() for t in (a.shifts, a.sections))
        return _Sum.apply(self.lib, "angular", tables, (p, q, slot), num_slots, len(tables[0]) * len(tables[1]),
                          vectors)


def kernels(radial_params: NamedTuple, angular_params: NamedTuple, example: Tensor) -> NativeAEV | None:
    """The C AEV for these params and `example`'s dtype and device; None where it cannot run
    (not the CPU, not float32/64, no working compiler, or disabled)."""
    if example.device.type != "cpu" or example.dtype not in (torch.float32, torch.float64) or not native.enabled():
        return None
    r, a = radial_params, angular_params
    # The shifts and sections are passed at run time; sizes and scalars are compiled in.
    lib = native.library("aev_terms.c", "AEV", _defines(r, a, example.dtype), _SIGNATURES)
    return NativeAEV(lib, r, a) if lib is not None else None


class _Sum(torch.autograd.Function):
    @staticmethod
    def forward(ctx, lib, name, tables, index, num_slots, num_features, vectors):
        out = vectors.new_zeros(num_slots, num_features)
        native.call(lib, f"{name}_forward", len(index[0]), vectors, *index, *tables, out)
        ctx.lib, ctx.name, ctx.tables, ctx.index = lib, name, tables, index
        ctx.save_for_backward(vectors)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        (vectors,) = ctx.saved_tensors
        grad = _SumBackward.apply(ctx.lib, ctx.name, ctx.tables, ctx.index, grad_out.contiguous(), vectors)
        return None, None, None, None, None, None, grad


class _SumBackward(torch.autograd.Function):
    """dL/dvectors from dL/dsums; its backward (the double backward) makes force training work."""

    @staticmethod
    def forward(ctx, lib, name, tables, index, grad_out, vectors):
        grad = torch.zeros_like(vectors)
        native.call(lib, f"{name}_backward", len(index[0]), vectors, *index, *tables, grad_out, grad)
        ctx.lib, ctx.name, ctx.tables, ctx.index = lib, name, tables, index
        ctx.save_for_backward(grad_out, vectors)
        return grad

    @staticmethod
    @once_differentiable
    def backward(ctx, upstream):
        grad_out, vectors = ctx.saved_tensors
        d_grad, d_vectors = torch.zeros_like(grad_out), torch.zeros_like(vectors)
        native.call(ctx.lib, f"{ctx.name}_double", len(ctx.index[0]), vectors, *ctx.index, *ctx.tables, grad_out,
              upstream.contiguous(), d_grad, d_vectors)
        return None, None, None, None, d_grad, d_vectors


def _defines(r: NamedTuple, a: NamedTuple, dtype: torch.dtype) -> dict[str, str]:
    double = dtype == torch.float64
    return {"REAL": "double" if double else "float", "REAL_IS_DOUBLE": str(int(double)),
            "NR": str(len(r.shifts)), "RAD_ETA": repr(float(r.eta)), "RAD_K": repr(float(r.k)),
            "NA": str(len(a.shifts)), "NS": str(len(a.sections)), "ANG_ETA": repr(float(a.eta)),
            "ANG_ZETA": repr(float(a.zeta)), "ANG_K": repr(float(a.k))}
