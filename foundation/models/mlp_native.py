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
- the output layer's backward a batched matmul with the upstream gradient as it comes (any head).

Once differentiable: the forces it gives cannot be differentiated again (training uses autograd,
`ani_ensemble._chain`). Where the kernels cannot be built it is not used.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from foundation.models import native

_SIGNATURES = {"celu_forward": "ip", "celu_bias_forward": "iiipp", "celu_backward": "ipp",
               "celu_backward_by_row": "iiippp"}


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


class _StackedNetworks(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, first, lib, *flat):
        layers = list(zip(flat[0::2], flat[1::2]))
        members = layers[0][0].shape[0]
        a = x.expand(members, *x.shape) if x.dim() == 2 else x
        activations = []
        for w, b in layers[:-1]:
            a = torch.bmm(a, w)
            native.call(lib, "celu_bias_forward", *a.shape, a, b.contiguous())
            activations.append(a)
        w, b = layers[-1]
        a = torch.baddbmm(b, a, w)  # the output layer: a few heads wide
        ctx.lib, ctx.shared = lib, x.dim() == 2
        ctx.save_for_backward(first, *[w for w, _ in layers], *activations)
        return a

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        saved = ctx.saved_tensors
        k = len(saved) // 2  # layers; saved = first, their weights, the k - 1 activations
        first, weights, activations = saved[0], saved[1:1 + k], saved[1 + k:]
        g = grad_out.contiguous()
        for j in range(k - 1, 0, -1):  # g: the gradient with respect to layer j's output
            t = torch.bmm(g, weights[j].transpose(1, 2))
            y = activations[j - 1]
            if j == 1 and ctx.shared:  # by row: (n, M, h0), for the first layer's one matmul
                members, rows, width = t.shape
                g = t.new_empty(rows, members, width)
                native.call(ctx.lib, "celu_backward_by_row", members, rows, width, t, y, g)
            else:
                native.call(ctx.lib, "celu_backward", t.numel(), t, y)
                g = t
        if ctx.shared and k > 1:
            grad_x = g.view(g.shape[0], -1) @ first
        else:
            grad_x = torch.bmm(g, weights[0].transpose(1, 2))
            grad_x = grad_x.sum(0) if ctx.shared else grad_x
        return (grad_x, None, None) + (None,) * (2 * k)
