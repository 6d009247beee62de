"""`EnsembleModel`: N models of one architecture whose mean is the prediction and whose spread
says how far to trust it (query by committee, Smith et al., J. Chem. Phys. 148, 241733, 2018;
ANI-1x and ANI-1ccx are ensembles of 8).

Each member keeps its own weights *and* its own reference energies (a TorchANI ensemble converted
to our format needs that: our ANI subtracts NN(0) per member, which is folded into each member's
reference energies). The ensemble's `reference_energies` is the members' mean, read-only;
`set_reference_energies` sets every member's.
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
        return torch.stack([m.atomic_energies(batch, [name], positions)[:, 0] for m in self.members])

    def atomic_energies(self, batch: AtomsBatch, heads: Sequence[str] | None = None,
                        positions: Tensor | None = None) -> Tensor:
        heads = list(heads) if heads is not None else self.heads
        for h in heads:
            self.head_index(h)  # a clear error for an unknown head
        return torch.stack([m.atomic_energies(batch, heads, positions) for m in self.members]).mean(0)

    def forward(self, batch: AtomsBatch, head: str | None = None, forces: bool = True) -> dict[str, Tensor]:
        """As `PotentialModel.forward`, plus `energy_std` (B,) eV and `member_energy` (members, B)."""
        positions = leaf_positions(batch) if forces else batch.positions
        with torch.enable_grad() if forces else contextlib.nullcontext():
            members = self.member_atomic_energies(batch, head, positions)
            per_member = members.new_zeros(len(self.members), batch.n_structures).index_add_(1, batch.batch, members)
            energy = per_member.mean(0)
            out = {"energy": energy, "atomic_energies": members.mean(0), "member_energy": per_member.detach(),
                   "energy_std": per_member.detach().std(0, correction=1 if len(self.members) > 1 else 0)}
            if forces:
                (grad,) = torch.autograd.grad(energy.sum(), positions, create_graph=self.training)
                out["forces"] = -grad
        return out
