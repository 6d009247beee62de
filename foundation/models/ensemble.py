"""`EnsembleModel`: N models of one architecture whose mean is the prediction and whose spread
says how far to trust it (query by committee, Smith et al., J. Chem. Phys. 148, 241733, 2018;
ANI-1x and ANI-1ccx are ensembles of 8).

Each member keeps its own weights *and* its own reference energies (a TorchANI ensemble converted
to our format needs that: our ANI subtracts NN(0) per member, which is folded into each member's
reference energies). The ensemble's `reference_energies` is the members' mean, read-only;
`set_reference_energies` sets every member's.

Members that compute alike share the work (`PotentialModel.shared_ensemble`; for ANI members
with equal AEVs, `foundation.models.ani_ensemble`: one neighbour list and one AEV per batch, the
element networks of all members as batched matmuls, one backward for the forces), with every
member's output what it computes alone up to float rounding; other members run whole. Routed
members (the shipped ani-1x-ccsdt) share it too: the parts that answer the asked head form an
ensemble of their own.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from foundation.data.batch import AtomsBatch
from foundation.errors import UserError
from foundation.models.base import ModelConfig, PotentialModel, leaf_positions
from foundation.models.registry import build_model, register_model


@register_model("ensemble")
@dataclasses.dataclass
class EnsembleConfig(ModelConfig):
    """`size` members built from `member` (a model config dict, as for `build_model`; its
    elements and heads are always the ensemble's)."""

    name: str = "ensemble"
    member: dict[str, Any] = dataclasses.field(default_factory=lambda: {"name": "ani"})
    size: int = 8

    def __post_init__(self):
        super().__post_init__()
        member = {k: v for k, v in dict(self.member).items() if not str(k).startswith("_")}
        if member.get("name") in (None, "ensemble"):
            raise UserError(f"ensemble config: member needs a model name (not 'ensemble'), got {member.get('name')!r}")
        if int(self.size) < 1:
            raise UserError(f"ensemble config: size must be at least 1, got {self.size}")
        self.size = int(self.size)
        self.member = {**member, "elements": list(self.elements), "heads": list(self.heads)}

    def build(self) -> "EnsembleModel":
        return EnsembleModel(self)


class EnsembleModel(PotentialModel):
    """Mean energy, forces and per-atom energies of its members; `energy_std` (B,) eV, the
    members' sample standard deviation (0 for one member)."""

    def __init__(self, config: EnsembleConfig, members: Sequence[PotentialModel] | None = None):
        members = list(members) if members is not None else [build_model(config.member) for _ in range(config.size)]
        if len(members) != config.size or any(m.elements != config.elements or m.heads != config.heads
                                               for m in members):
            raise UserError("ensemble members must match the ensemble config (size, elements, heads)")
        super().__init__(config, cutoff=max(m.cutoff for m in members))
        # The members own the reference energies; the base class's buffer would be a stale copy.
        del self._buffers["reference_energies"]
        self.members = nn.ModuleList(members)
        self.share = True  # members evaluated together where they can be (False: each whole)
        self._shared_cache = _Cache()  # the shared evaluation, its stacked weights (eval mode)

    @classmethod
    def from_members(cls, members: Sequence[PotentialModel]) -> "EnsembleModel":
        """Wrap trained models of one architecture (same config up to the weights)."""
        first = members[0]
        config = EnsembleConfig(elements=list(first.elements), heads=list(first.heads),
                                member=dataclasses.asdict(first.config), size=len(members))
        return cls(config, members)

    @property
    def reference_energies(self) -> Tensor:  # (heads, elements) float64 eV, the members' mean
        return torch.stack([m.reference_energies for m in self.members]).mean(0)

    def set_reference_energies(self, head: str, energies: Mapping[int | str, float]) -> None:
        for member in self.members:
            member.set_reference_energies(head, energies)

    def add_head(self, name: str, copy_from: str | None = None) -> None:
        if name in self.heads:
            raise UserError(f"model already has a head {name!r}")
        for member in self.members:
            member.add_head(name, copy_from)
        self.config.heads.append(name)
        self.config.member["heads"] = list(self.config.heads)

    def member_atomic_energies(self, batch: AtomsBatch, head: str | None = None,
                               positions: Tensor | None = None) -> Tensor:
        """(members, N) float64 per-atom energies in eV of one head."""
        name = self.heads[self.head_index(head)]
        return self._member_energies(batch, [name], positions)[..., 0]

    def atomic_energies(self, batch: AtomsBatch, heads: Sequence[str] | None = None,
                        positions: Tensor | None = None) -> Tensor:
        heads = list(heads) if heads is not None else self.heads
        return self._member_energies(batch, heads, positions).mean(0)

    def forward(self, batch: AtomsBatch, head: str | None = None, forces: bool = True,
                member_forces: bool = False) -> dict[str, Tensor]:
        """As `PotentialModel.forward`, plus `energy_std` (B,) eV and `member_energy` (members, B),
        the members' per-structure energies and their sample standard deviation;
        `atomic_energy_std` (N,) eV, the spread of each atom's energy (TorchANI's atomic QBC);
        with `member_forces`, `member_forces` (members, N, 3) eV/Å, each member's forces."""
        name = self.heads[self.head_index(head)]
        positions = leaf_positions(batch) if forces or member_forces else batch.positions
        with torch.enable_grad() if forces or member_forces else contextlib.nullcontext():
            if member_forces:
                members, each = self._member_energies_and_forces(batch, name, positions)
            else:  # in eval mode the forces below are not differentiated again (nor, without them, an
                # energy computed with gradients off)
                inference = not self.training and (forces or not torch.is_grad_enabled())
                members = self._member_energies(batch, [name], positions, inference=inference)[..., 0]
            per_member = members.new_zeros(len(self.members), batch.n_structures).index_add_(1, batch.batch, members)
            energy = per_member.mean(0)
            correction = 1 if len(self.members) > 1 else 0
            out = {"energy": energy, "atomic_energies": members.mean(0), "member_energy": per_member.detach(),
                   "energy_std": per_member.detach().std(0, correction=correction),
                   "atomic_energy_std": members.detach().std(0, correction=correction)}
            if member_forces:
                out["member_forces"] = each
            if forces and member_forces and not self.training:
                out["forces"] = each.mean(0)  # the mean's gradient: no second backward
            elif forces:
                (grad,) = torch.autograd.grad(energy.sum(), positions, create_graph=self.training)
                out["forces"] = -grad
        return out

    # ---- members evaluated together where they share work (ani_ensemble) ----------------------
    def _shared(self):
        """The members' shared evaluation, or None: each member runs whole (`share = False`
        forces that, e.g. to compare the two)."""
        if not self.share or len({type(m) for m in self.members}) != 1:
            return None
        return type(self.members[0]).shared_ensemble(list(self.members), self._shared_cache)

    def _routed_parts(self, heads: list[str]) -> "EnsembleModel | None":
        """When every member routes all of `heads` to one part (`RoutedModel.part_for`), those
        parts as an ensemble that shares their work; None otherwise. Built once and kept in the
        cache (its members are the parts themselves, not copies)."""
        parts = [getattr(m, "part_for", lambda _: None)(heads) for m in self.members] if self.share else [None]
        if any(p is None for p in parts):
            return None
        key = ("parts", *map(id, parts))
        if key not in self._shared_cache:
            try:
                sub = EnsembleModel.from_members(parts)
            except UserError:  # parts of different architectures: each member runs whole
                sub = None
            self._shared_cache[key] = sub if sub is not None and sub._shared() is not None else None
        sub = self._shared_cache[key]
        if sub is not None:
            sub.training = self.training  # the parts' own flags are the members' already
        return sub

    def _member_energies(self, batch: AtomsBatch, heads: list[str], positions: Tensor | None,
                         inference: bool = False) -> Tensor:
        """(members, N, len(heads)) float64 per-atom energies in eV, reference energies included.
        `inference`: their gradient is taken once, never differentiated again (`forward` in eval
        mode), so the shared networks may use their hand-written backward."""
        for h in heads:
            self.head_index(h)  # a clear error for an unknown head
        routed = self._routed_parts(heads)
        if routed is not None:
            return routed._member_energies(batch, heads, positions, inference)
        shared = self._shared()
        if shared is None:
            return torch.stack([m.atomic_energies(batch, heads, positions) for m in self.members])
        species, counts = self._species(batch)
        positions = batch.positions if positions is None else positions
        features = shared.features(batch, positions.to(self.dtype), species)
        learned, _ = shared.learned(features, species, counts, inference=inference)
        return self._with_references(learned, heads, species)

    def _member_energies_and_forces(self, batch: AtomsBatch, head: str, positions: Tensor) -> tuple[Tensor, Tensor]:
        """(members, N) per-atom energies and (members, N, 3) forces, eV and eV/Å. Shared: one
        backward through the stacked networks gives every member's gradient of its energy with
        respect to the AEVs (each member's networks read their own copy of them), then one
        backward through the AEV per member. Otherwise one backward per member."""
        routed = self._routed_parts([head])
        if routed is not None:
            return routed._member_energies_and_forces(batch, head, positions)
        shared = self._shared()
        if shared is None or self.training:
            members = self._member_energies(batch, [head], positions)[..., 0]
            grads = [torch.autograd.grad(e.sum(), positions, retain_graph=True, create_graph=self.training)[0]
                     for e in members]
            return members, -torch.stack(grads)
        species, counts = self._species(batch)
        features = shared.features(batch, positions.to(self.dtype), species)
        learned, blocks = shared.learned(features, species, counts, per_member=True, inference=True)
        members = self._with_references(learned, [head], species)[..., 0]
        by_block = torch.autograd.grad(members.sum(), blocks, retain_graph=True)
        by_features = shared.block_gradients(by_block, species, counts)  # (M, N, F)
        grads = [torch.autograd.grad(features, positions, g, retain_graph=True)[0] for g in by_features]
        return members, -torch.stack(grads)

    def _species(self, batch: AtomsBatch) -> tuple[Tensor, list[int]]:
        species = self.element_indices(batch)
        counts = torch.bincount(species, minlength=len(self.elements)).tolist()
        return species.to(batch.positions.device), counts

    def _with_references(self, learned: Tensor, heads: list[str], species: Tensor) -> Tensor:
        """(M, N, all heads) learned energies -> (M, N, len(heads)) float64 with each member's
        reference energies, as `PotentialModel.atomic_energies` adds them."""
        index = torch.tensor([self.head_index(h) for h in heads], device=species.device)
        reference = torch.stack([m.reference_energies for m in self.members])  # (M, heads, elements)
        reference = reference.index_select(1, index).index_select(2, species).transpose(1, 2)
        return learned.index_select(2, index).to(torch.float64) + reference


class _Cache(dict):
    """What the shared evaluation keeps between calls; rebuilt, never copied or pickled (a copy
    of the model has other parameters)."""

    def __deepcopy__(self, memo):
        return _Cache()

    def __reduce__(self):
        return _Cache, ()
