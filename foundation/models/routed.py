"""`RoutedModel`: heads answered by different models in one file.

A model transferred to CC by a recipe that trains its shared layers (finetune, multihead) no
longer gives its start's DFT answers from its DFT head. Routing the DFT head to an untouched copy
of the start and the CC head to the transferred model keeps both exactly: `ani-1x-ccsdt` answers
`wb97x_631gs` as ANI-1x does, bit for bit, and `ccsdt_ccpvdz` as the transferred network does.
Each head runs only its own model, so asking for the default head costs one network.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from foundation.data.batch import AtomsBatch
from foundation.errors import UserError
from foundation.models.base import ModelConfig, PotentialModel
from foundation.models.registry import build_model, model_config, register_model


@register_model("routed")
@dataclasses.dataclass
class RoutedConfig(ModelConfig):
    """`parts`: model config dicts; `routes`: {head: index of the part that answers it}, in the
    order of the heads. `heads` and `elements` follow from them (elements: those every part covers)."""

    name: str = "routed"
    elements: list[int] | None = None  # type: ignore[assignment]
    heads: list[str] | None = None  # type: ignore[assignment]
    parts: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    routes: dict[str, int] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if not self.parts or not self.routes:
            raise UserError("routed config: needs parts (model configs) and routes {head: part index}")
        configs = [p if isinstance(p, ModelConfig) else model_config(p) for p in self.parts]
        self.parts = [dataclasses.asdict(c) for c in configs]
        for head, k in self.routes.items():
            if not 0 <= int(k) < len(self.parts) or head not in configs[int(k)].output_heads():
                raise UserError(f"routed config: head {head!r} routed to part {k}, which has no such head")
        self.routes = {h: int(k) for h, k in self.routes.items()}
        self.heads = list(self.routes)
        if self.elements is None:
            self.elements = sorted(z for z in self.parts[0]["elements"] if all(z in p["elements"] for p in self.parts))
        super().__post_init__()

    def build(self) -> "RoutedModel":
        return RoutedModel(self)


class RoutedModel(PotentialModel):
    def __init__(self, config: RoutedConfig, parts: Sequence[PotentialModel] | None = None):
        parts = list(parts) if parts is not None else [build_model(p) for p in config.parts]
        super().__init__(config, cutoff=max(p.cutoff for p in parts))
        del self._buffers["reference_energies"]  # the parts own theirs
        self.parts = nn.ModuleList(parts)

    @classmethod
    def from_parts(cls, parts: Sequence[PotentialModel], routes: Mapping[str, int]) -> "RoutedModel":
        config = RoutedConfig(parts=[dataclasses.asdict(p.config) for p in parts], routes=dict(routes))
        return cls(config, parts)

    @property
    def transfer_freeze(self) -> tuple[str, ...] | None:  # type: ignore[override]
        """`trainer.freeze=[auto]` when only the default head (else the first) is trained."""
        return self.transfer_freeze_for([self.default_head or self.heads[0]])

    def transfer_freeze_for(self, heads: Sequence[str]) -> tuple[str, ...] | None:
        """What `trainer.freeze=[auto]` keeps fixed when `heads` are trained: every part that
        answers none of them, whole (the heads it answers stay bit for bit what they were, which
        is why the model is routed), and in each part that answers one, that part's own
        transfer default. None when such a part has no default."""
        trained = {self.config.routes[h] for h in heads if h in self.config.routes}
        patterns: list[str] = []
        for k, part in enumerate(self.parts):
            if k not in trained:
                patterns.append(f"parts.{k}.*")
                continue
            own = part.transfer_freeze
            if own is None:
                return None
            patterns += [_within_part(k, p) for p in own]
        return tuple(patterns)

    def _columns(self, part: PotentialModel) -> list[int]:
        return [part.elements.index(z) for z in self.elements]

    @property
    def reference_energies(self) -> Tensor:  # (heads, elements) float64 eV, each head's part's row
        rows = []
        for head, k in self.config.routes.items():
            part = self.parts[k]
            rows.append(part.reference_energies[part.head_index(head), self._columns(part)])
        return torch.stack(rows)

    def set_reference_energies(self, head: str, energies: Mapping[int | str, float]) -> None:
        self.head_index(head)
        self.parts[self.config.routes[head]].set_reference_energies(head, energies)

    def add_head(self, name: str, copy_from: str | None = None) -> None:
        """A new head lives in the part that answers `copy_from` (the default head's part if None)."""
        if name in self.heads:
            raise UserError(f"model already has a head {name!r}")
        k = self.config.routes[self.heads[self.head_index(copy_from)]]
        self.parts[k].add_head(name, copy_from)
        self.config.parts[k]["heads"] = list(self.parts[k].heads)
        self.config.routes[name] = k
        self.config.heads.append(name)

    def part_for(self, heads: Sequence[str]) -> PotentialModel | None:
        """The part that answers every one of `heads`, or None when they span parts. An ensemble
        of routed members evaluates those parts together (`EnsembleModel`), sharing their work."""
        k = {self.config.routes.get(h) for h in heads}
        return self.parts[k.pop()] if len(k) == 1 and None not in k else None

    def atomic_energies(self, batch: AtomsBatch, heads: Sequence[str] | None = None,
                        positions: Tensor | None = None) -> Tensor:
        heads = list(heads) if heads is not None else self.heads
        for h in heads:
            self.head_index(h)  # a clear error for an unknown head
        self.element_indices(batch)  # ... and for an element some part does not cover
        columns: dict[str, Tensor] = {}
        for k, part in enumerate(self.parts):
            mine = [h for h in heads if self.config.routes[h] == k]
            if mine:
                columns |= dict(zip(mine, part.atomic_energies(batch, mine, positions).unbind(1)))
        return torch.stack([columns[h] for h in heads], dim=1)


def _within_part(k: int, pattern: str) -> str:
    """A part's freeze pattern as a pattern on the routed model's parameter names."""
    if pattern.startswith("re:"):
        return rf"re:parts\.{k}\.{pattern[3:]}"
    return f"parts.{k}.{pattern}"
