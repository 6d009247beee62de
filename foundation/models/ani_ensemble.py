"""The work an ensemble of ANI members shares, done once: `ANIEnsemble`.

Members of a published ANI ensemble (ANI-1x, ANI-1ccx: 8 each) differ only in their element
networks; their AEVs are the same function of the same pair list. Run whole, member after
member, an ensemble builds the neighbour list and the AEVs eight times, and calls eight times as
many small matmuls: for one small molecule (MD, a calculator) that is ~6x one member's time,
mostly per-call overhead. Here, for members whose featurizers are equal (`ANI.featurizer_key`):
- one neighbour list and one AEV per batch;
- each element's networks of all members as one chain of batched matmuls (`baddbmm`) over
  stacked weights, the shared features expanded over the members without a copy. Measured on
  one CPU thread against `torch.func.functional_call` + `vmap` over stacked parameters, which
  lowers to the same batched matmuls with more dispatch per call (see benchmarks/ensemble.py);
- one backward pass through it all for the ensemble's forces.

Every member's output equals what the member computes alone up to float rounding (the sums of
a batched matmul may be ordered otherwise; tested). Members whose hidden widths differ share
the AEV but run their networks one by one.

Stacked weights: in train mode they are stacked on every call (gradients reach each member's
parameters); in eval mode they are cached and rebuilt when any member parameter changes (its
version counter, storage, dtype or device), and carry no gradient to the parameters.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from foundation.data.batch import AtomsBatch
from foundation.models import mlp_native
from foundation.models.element_groups import ElementGrouping
from foundation.models.mlp_native import grouped_networks, stacked_networks
from foundation.threads import ATOMS_PER_THREAD  # the size the calculator gives one thread


class ANIEnsemble:
    """M `ANI` members with equal featurizers, evaluated together. `cache`: a dict the owner
    keeps between calls (the stacked weights of eval mode)."""

    def __init__(self, members: Sequence[nn.Module], cache: dict):
        self.members = list(members)
        self.first = self.members[0]
        self.cache = cache
        hidden = [m.config.hidden for m in self.members]
        alphas = {m.config.celu_alpha for m in self.members}
        self.stacked = all(h == hidden[0] for h in hidden) and len(alphas) == 1
        self.params = [p for m in self.members for p in m.networks.parameters()]  # (walking modules is slow)

    @classmethod
    def of(cls, members: Sequence[nn.Module], cache: dict | None = None, kind: type | None = None
           ) -> "ANIEnsemble | None":
        """The shared evaluation of `members`, or None when one is not of `kind` (`ANI`, which
        calls this) or their AEVs, elements or heads differ (the ensemble then runs each whole)."""
        if not members or kind is None or any(type(m) is not kind for m in members):
            return None
        cache = {} if cache is None else cache
        # The members as they are now: a new member, head or featurizer setting makes a new one.
        key = tuple((id(m), m.featurizer_key(), tuple(m.heads)) for m in members)
        if cache.get("members") != key:
            first = key[0][1:]
            shared = cls(members, cache) if all(k[1:] == first for k in key) else None
            cache.clear()
            cache.update(members=key, shared=shared)
        return cache["shared"]

    def features(self, batch: AtomsBatch, positions: Tensor, species: Tensor) -> Tensor:
        """(N, F) AEVs, computed once for all members."""
        return self.first.features(batch, positions, species)

    def learned(self, features: Tensor, species: Tensor, counts: list[int],
                per_member: bool = False, inference: bool = False) -> tuple[Tensor, list[Tensor]]:
        """(M, N, heads) learned per-atom energies of every member (module dtype, no references),
        and the per-element input blocks. With `per_member`, each block is the features expanded
        to (M, n, F), so that the gradient with respect to it is each member's own (member forces).
        With `inference` (the caller will not differentiate the forces again), eval mode runs the
        networks with their hand-written backward (`mlp_native`) where its kernels build."""
        lib = self._kernels(features) if inference and self.stacked else None
        if lib is not None and not per_member:
            groups = torch.argsort(species, stable=True).split(counts)  # each element's atoms
            return grouped_networks(features, list(groups), self._networks(lib), lib), []
        grouping = ElementGrouping(species, counts)
        blocks = list(grouping.split(features))
        if per_member:
            blocks = [b.expand(len(self.members), *b.shape) for b in blocks]
        if lib is not None:
            weights, firsts = self._weights(), self.cache["firsts"]
            out = [stacked_networks(block, layers, first, lib) for block, layers, first in zip(blocks, weights, firsts)]
        elif self.stacked:
            weights = self._weights()
            out = [_chain(block, layers, self.first.config.celu_alpha) for block, layers in zip(blocks, weights)]
        else:  # same features, networks of different shapes: one member at a time
            out = [torch.stack([net(block[k] if per_member else block) for k, net in
                                enumerate(m.networks[name] for m in self.members)])
                   for block, name in zip(blocks, self.first.networks)]
        return grouping.minus_zero_rows(torch.cat(out, dim=1), dim=1), blocks

    def block_gradients(self, grads: Sequence[Tensor], species: Tensor, counts: list[int]) -> Tensor:
        """Per-element block gradients (M, n + 1, F) back in atom order: (M, N, F)."""
        grouping = ElementGrouping(species, counts)
        return torch.cat(list(grads), dim=1).index_select(1, grouping.row)

    def _kernels(self, features: Tensor):
        """The activation kernels of `mlp_native`, in eval mode on the CPU; else None. Their C
        passes run on one thread: beside torch's threaded ones they would set the pace of a large
        batch on many threads (measured only on one thread), so with more, small systems only."""
        if (self.first.training and torch.is_grad_enabled()) or features.device.type != "cpu":
            return None
        if torch.get_num_threads() > 1 and features.shape[0] > ATOMS_PER_THREAD:
            return None
        return mlp_native.kernels(self.first.config.celu_alpha, features.dtype)

    def _networks(self, lib) -> list[tuple]:
        """Per element (stacked layers, first layer as (M * h0, F), NN(0) as (M, 1, heads)) for
        `mlp_native.grouped_networks`; NN(0) computed once per weights, by the same kernels."""
        weights, firsts, key = self._weights(), self.cache["firsts"], self.cache["key"]
        at_zero = self.cache.get("at_zero")
        if at_zero is None or at_zero[0] != key:  # kept with the weights' key it was computed for
            with torch.no_grad():
                at_zero = (key, [stacked_networks(layers[0][0].new_zeros(1, layers[0][0].shape[1]), layers, first, lib)
                                 for layers, first in zip(weights, firsts)])
            self.cache["at_zero"] = at_zero
        return list(zip(weights, firsts, at_zero[1]))

    # ---- stacked weights --------------------------------------------------------------------
    def _weights(self) -> list[list[tuple[Tensor, Tensor]]]:
        """Per element, per layer, (weight, bias) of all members as (M, in, out) and (M, 1, out)
        for `baddbmm`; the output layer holds every head (M, h, heads)."""
        if self.first.training and torch.is_grad_enabled():
            return self._stack()
        # A changed weight: in place (its version counter) or a new storage (.to(), a new dtype).
        key = tuple((p.data_ptr(), p._version) for p in self.params)
        if self.cache.get("key") != key:
            with torch.no_grad():
                weights = self._stack()
                # the first layer as (M * h0, F), for the one-matmul backward of mlp_native
                firsts = [layers[0][0].transpose(1, 2).reshape(-1, layers[0][0].shape[1]) for layers in weights]
                self.cache.update(key=key, weights=weights, firsts=firsts, at_zero=None)
        return self.cache["weights"]

    def _stack(self) -> list[list[tuple[Tensor, Tensor]]]:
        out = []
        for name in self.first.networks:
            nets = [m.networks[name] for m in self.members]
            linears = [[layer for layer in net.layers if isinstance(layer, nn.Linear)] for net in nets]
            layers = []
            for k in range(len(linears[0])):
                w = torch.stack([ls[k].weight for ls in linears])  # (M, out, in)
                b = torch.stack([ls[k].bias for ls in linears])  # (M, out)
                layers.append((w.transpose(1, 2).contiguous(), b.unsqueeze(1)))
            heads = [list(net.heads.values()) for net in nets]
            w = torch.stack([torch.cat([h.weight for h in hs]) for hs in heads])  # (M, heads, h)
            b = torch.stack([torch.cat([h.bias for h in hs]) for hs in heads])  # (M, heads)
            layers.append((w.transpose(1, 2), b.unsqueeze(1)))
            out.append(layers)
        return out


def _chain(x: Tensor, layers: list[tuple[Tensor, Tensor]], alpha: float) -> Tensor:
    """One element's networks of all members: x (n, F) shared, or (M, n, F) per member ->
    (M, n, heads). CELU after every layer but the output. The shared input is expanded (no copy)
    into a batched matmul with the weights stored (M, in, out): for the few rows of one molecule
    that ran ~1.5x faster on one CPU thread than one matmul with the members' weights side by
    side (M out, in), and as fast for batches."""
    (w0, b0), rest = layers[0], layers[1:]
    if x.dim() == 2:
        x = x.expand(w0.shape[0], *x.shape)
    x = torch.baddbmm(b0, x, w0)
    for w, b in rest:
        x = torch.baddbmm(b, F.celu(x, alpha), w)
    return x
