"""The stacked element networks of an ANI ensemble at inference, with a hand-written backward to
their inputs: `stacked_networks`.

An 8-member ensemble's energies and forces are mostly its members' networks: measured on one CPU
thread (2 x 128 molecules), the matmuls are half the time, and autograd's bookkeeping around them
a third: CELU forward and again backward (recomputing exp), the first layer's gradient as
(members, atoms, features) summed over members afterwards, copies between layouts. At inference
(no gradient to the weights, the forces not differentiated again) the backward is a short,
fixed chain, written out here:
- each hidden layer's bias and CELU in one pass over its matmul's output, in place (`baddbmm`
  first copies the bias into every row), and the derivative from the output
  (`csrc/celu_terms.c`, no exp);
- the first layer's gradient of all members as one matmul, with the members' gradients side by
  side per atom, written so by the derivative kernel itself (no copy, no sum afterwards);
- the output layer's backward (a few heads wide) fused with the derivative before it, for the
  upstream gradient as it comes (any heads).

Once differentiable: the forces it gives cannot be differentiated again (training uses autograd,
`ani_ensemble._chain`). Where the kernels cannot be built it is not used.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from foundation.models import native

_SIGNATURES = {"celu_bias_forward": "iiipp", "celu_backward": "ipp",
               "celu_backward_by_row": "iiippp", "celu_backward_from_heads": "iiiipppp"}


def kernels(alpha: float, dtype: torch.dtype):
    """The CELU kernels for `alpha` and `dtype` (float32/64), or None where they cannot be built."""
    if dtype not in (torch.float32, torch.float64):
        return None
    double = dtype == torch.float64
    defines = {"REAL": "double" if double else "float", "REAL_IS_DOUBLE": str(int(double)), "ALPHA": repr(float(alpha))}
    return native.library("celu_terms.c", "ensemble activation", defines, _SIGNATURES)


def stacked_networks(x: Tensor, layers: list[tuple[Tensor, Tensor]], first: Tensor, lib) -> Tensor:
    """One element's networks of all members: x (n, F) shared, or (M, n, F) one per member ->
    (M, n, heads); `layers` as `ani_ensemble._weights` stacks them (M, in, out), `first` the first
    layer's weights as (M * h0, F) for its one-matmul backward. CELU after every layer but the
    output. Differentiable once, in `x` only."""
    return _StackedNetworks.apply(x, first, lib, *[t for layer in layers for t in layer])


def grouped_networks(features: Tensor, groups: list[Tensor], networks: list, lib) -> Tensor:
    """Every atom's learned energies by all members, (M, N, heads) in atom order, less each
    element's NN(0): `features` (N, F) shared by the members, `groups` the atoms of each element
    (index tensors), `networks` per element (layers, first, NN(0) as (M, 1, heads)) as
    `ani_ensemble` caches them. Each element's rows are gathered straight from the features and
    their gradients written straight back (no grouped copy with zero rows, no scatter of zeros).
    Differentiable once, in `features` only."""
    return _GroupedNetworks.apply(features, groups, networks, lib)


def _forward(x: Tensor, layers, lib) -> tuple[Tensor, list[Tensor]]:
    members = layers[0][0].shape[0]
    a = x.expand(members, *x.shape) if x.dim() == 2 else x
    activations = []
    for w, b in layers[:-1]:
        a = torch.bmm(a, w)
        native.call(lib, "celu_bias_forward", *a.shape, a, b.contiguous())
        activations.append(a)
    w, b = layers[-1]
    return torch.baddbmm(b, a, w), activations  # the output layer: a few heads wide


def _backward(grad_out: Tensor, weights, activations, first: Tensor, shared: bool, lib) -> Tensor:
    """d(sum grad_out * out)/dx: (n, F) summed over the members if `shared`, else (M, n, F)."""
    k = len(weights)
    g = grad_out.contiguous()
    for j in range(k - 1, 0, -1):  # g: the gradient with respect to layer j's output
        y = activations[j - 1]
        if j == k - 1 and not (j == 1 and shared):  # the output layer's backward + CELU's
            w = weights[j].contiguous()  # (M, width, heads)
            t = y.new_empty(y.shape)
            native.call(lib, "celu_backward_from_heads", *y.shape, w.shape[2], g, w, y, t)
            g = t
            continue
        t = torch.bmm(g, weights[j].transpose(1, 2))
        if j == 1 and shared:  # by row: (n, M, h0), for the first layer's one matmul
            members, rows, width = t.shape
            g = t.new_empty(rows, members, width)
            native.call(lib, "celu_backward_by_row", members, rows, width, t, y, g)
        else:
            native.call(lib, "celu_backward", t.numel(), t, y)
            g = t
    if shared and k > 1:
        return g.view(g.shape[0], -1) @ first
    grad_x = torch.bmm(g, weights[0].transpose(1, 2))
    return grad_x.sum(0) if shared else grad_x


class _StackedNetworks(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, first, lib, *flat):
        layers = list(zip(flat[0::2], flat[1::2]))
        out, activations = _forward(x, layers, lib)
        ctx.lib, ctx.shared, ctx.k = lib, x.dim() == 2, len(layers)
        ctx.save_for_backward(first, *[w for w, _ in layers], *activations)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        saved, k = ctx.saved_tensors, ctx.k
        grad_x = _backward(grad_out, saved[1:1 + k], saved[1 + k:], saved[0], ctx.shared, ctx.lib)
        return (grad_x, None, None) + (None,) * (2 * k)


class _GroupedNetworks(torch.autograd.Function):
    @staticmethod
    def forward(ctx, features, groups, networks, lib):
        members, heads = networks[0][2].shape[0], networks[0][2].shape[2]
        out = features.new_empty(members, features.shape[0], heads)
        ctx.saved = []
        for atoms, (layers, first, at_zero) in zip(groups, networks):
            if len(atoms) == 0:
                continue
            energies, activations = _forward(features.index_select(0, atoms), layers, lib)
            out.index_copy_(1, atoms, energies.sub_(at_zero))
            ctx.saved.append((atoms, [w for w, _ in layers], activations, first))
        ctx.lib, ctx.shape = lib, features.shape
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        grad = grad_out.new_empty(ctx.shape)  # every atom is in exactly one group
        for atoms, weights, activations, first in ctx.saved:
            g = _backward(grad_out.index_select(1, atoms), weights, activations, first, True, ctx.lib)
            grad.index_copy_(0, atoms, g)
        return grad, None, None, None
