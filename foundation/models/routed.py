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
        self.parts = [dataclasses.asdict(p if isinstance(p, ModelConfig) else model_config(p)) for p in self.parts]
        for head, k in self.routes.items():
            if not 0 <= int(k) < len(self.parts) or head not in self.parts[int(k)]["heads"]:
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
