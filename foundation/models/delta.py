"""Δ-learning: a frozen base model at one fidelity plus a small model that learns the difference
to another (Ramakrishnan et al., JCTC 11, 2087, 2015; here CCSD(T) − ωB97X on top of a DFT model).

    E_target(x) = E_base(x; base_head) + ΔE(x)

Only the correction trains; the base is frozen (`requires_grad=False`, parameters named `base.*`
so `trainer.freeze` patterns and exports see them; `base.train()` never leaves eval mode). Each
target head's *reference energies* are the composite's: the base head's plus the correction's.
Setting them (the trainer's least-squares refit on CC energies) writes `fitted − base` into the
correction, so an isolated atom's energy is exactly the head's reference, as in every model, and
a fresh correction head (zero output layer) starts as base energy + per-element offset.

With `keep_base_head`, the base head is also a head of the composite, passed through unchanged
(its references are the base's and cannot be set): a model transferred to CC by Δ-learning still
answers at the level it was pretrained on, exactly as before.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from foundation.data.batch import AtomsBatch
from foundation.data.elements import symbol
from foundation.errors import UserError
from foundation.models.base import ModelConfig, PotentialModel, check_head_name, parse_elements
from foundation.models.registry import build_model, model_config_class, register_model

DELTA_WIDTHS = [32, 16]  # per element: a correction needs far less capacity than the potential


@register_model("delta")
@dataclasses.dataclass
class DeltaConfig(ModelConfig):
    """`base`: the base model's config dict (as `build_model` takes; its weights are part of this
    model's state dict). `base_head`: the base head the correction is added to. `delta`: the
    correction model's config dict (its elements and heads are always this model's); null: an ANI
    with widths `DELTA_WIDTHS`. `elements` default to the base's; `heads` are the target heads."""

    name: str = "delta"
    elements: list[int] | None = None  # type: ignore[assignment]  # None: the base's
    heads: list[str] = dataclasses.field(default_factory=lambda: ["ccsdt_ccpvdz"])
    base: dict[str, Any] = dataclasses.field(default_factory=lambda: {"name": "ani"})
    base_head: str = "wb97x_631gs"
    delta: dict[str, Any] | None = None
    keep_base_head: bool = False  # also expose base_head, passed through from the frozen base

    def __post_init__(self):
        if self.keep_base_head and self.base_head in self.heads:  # given as the exposed heads (an ensemble's)
            self.heads = [h for h in self.heads if h != self.base_head]
        base = _normalised(self.base, "base")
        if self.elements is None:
            self.elements = list(base["elements"])
        super().__post_init__()
        if self.base_head not in base["heads"]:
            raise UserError(f"delta config: base_head {self.base_head!r} is not a head of the base model "
                            f"(its heads: {', '.join(base['heads'])})")
        missing = [symbol(z) for z in self.elements if z not in base["elements"]]
        if missing:
            raise UserError(f"delta config: the base model does not cover elements {', '.join(missing)}")
        delta = self.delta if self.delta is not None else \
            {"name": "ani", "hidden": {symbol(z): list(DELTA_WIDTHS) for z in self.elements}}
        self.delta = _normalised({**delta, "elements": list(self.elements), "heads": list(self.heads)}, "delta")
        self.base = base

    def output_heads(self) -> list[str]:
        return self.heads + ([self.base_head] if self.keep_base_head else [])

    def build(self) -> "DeltaModel":
        return DeltaModel(self)


def _normalised(config: Mapping[str, Any], what: str) -> dict[str, Any]:
    """A sub-model's config dict, checked and completed by its config class (a plain dict again,
    so the header JSON stays plain)."""
    fields = {k: v for k, v in dict(config or {}).items() if not str(k).startswith("_")}
    if not fields.get("name"):
        raise UserError(f"delta config: {what} needs a model name (e.g. 'ani'), got {fields.get('name')!r}")
    cls = model_config_class(fields["name"])
    try:
        return dataclasses.asdict(cls(**fields))
    except TypeError as e:  # an option the model does not have
        raise UserError(f"delta config: {what}: {e}") from None


class DeltaModel(PotentialModel):
    """Per-atom energies of the target heads = the base's at `base_head` + the correction's.
    The base runs once per call, whatever the number of heads asked for."""

    def __init__(self, config: DeltaConfig, base: PotentialModel | None = None,
                 delta: PotentialModel | None = None):
        base = base if base is not None else build_model(config.base)
        delta = delta if delta is not None else build_model(config.delta)
        if delta.heads != config.heads or delta.elements != config.elements:
            raise UserError("delta model: the correction's heads and elements must be the model's")
        super().__init__(config, cutoff=max(base.cutoff, delta.cutoff))
        # The sub-models own the reference energies; this one's are a property (as in EnsembleModel).
        del self._buffers["reference_energies"]
        self.base = base.eval().requires_grad_(False)
        self.delta = delta
        self._base_row = base.head_index(config.base_head)
        self._base_columns = [base.elements.index(z) for z in config.elements]

    @property
    def heads(self) -> list[str]:
        """The corrected heads, then the base head when it is passed through."""
        return self.config.heads + ([self.config.base_head] if self.config.keep_base_head else [])

    @classmethod
    def from_base(cls, base: PotentialModel, base_head: str, target_head: str | Sequence[str],
                  delta_config: Mapping[str, Any] | None = None, keep_base_head: bool = False) -> "DeltaModel":
        """A correction on top of (a copy of) the trained `base`, for `target_head`(s). The
        correction's output layers start at zero, so the model starts as the base at `base_head`
        (its reference energies too, until refit)."""
        heads = [target_head] if isinstance(target_head, str) else list(target_head)
        config = DeltaConfig(base=dataclasses.asdict(base.config), base_head=base_head, heads=heads,
                             elements=list(base.elements), keep_base_head=keep_base_head,
                             delta=dict(delta_config) if delta_config is not None else None)
        delta = build_model(config.delta).to(base.dtype)
        for head in heads:
            delta.zero_head_output(head)  # each architecture knows its own output layers
        return cls(config, copy.deepcopy(base), delta)

    @property
    def reference_energies(self) -> Tensor:  # (heads, elements) float64 eV: base + correction
        base = self.base.reference_energies[self._base_row, self._base_columns]
        rows = self.delta.reference_energies + base
        return torch.cat([rows, base[None]]) if self.config.keep_base_head else rows

    def set_reference_energies(self, head: str, energies: Mapping[int | str, float]) -> None:
        """The composite's references for `head`: the correction gets `energies − base`."""
        if head == self.config.base_head:
            raise UserError(f"head {head!r} is the frozen base's, passed through: its reference energies stay the base's")
        base = self._base_references()
        shifted = {}
        for key, value in energies.items():
            z = parse_elements([key])[0]
            shifted[z] = float(value) - base.get(z, 0.0)  # an unknown z: the correction says so
        self.delta.set_reference_energies(head, shifted)

    def add_head(self, name: str, copy_from: str | None = None) -> None:
        check_head_name(name)
        if name in self.heads:
            raise UserError(f"model already has a head {name!r}")
        self.delta.add_head(name, copy_from)
        if copy_from is None:  # a fresh head has zero references, as in every model
            self.delta.set_reference_energies(name, {z: -e for z, e in self._base_references().items()})
        self.config.heads.append(name)
        self.config.delta["heads"] = list(self.config.heads)

    def atomic_energies(self, batch: AtomsBatch, heads: Sequence[str] | None = None,
                        positions: Tensor | None = None) -> Tensor:
        """(N, len(heads)) float64 eV: the base head's per-atom energies plus the correction's."""
        heads = list(heads) if heads is not None else self.heads
        for h in heads:
            self.head_index(h)  # a clear error for an unknown head
        self.element_indices(batch)  # ... and for an element this model does not cover
        base = self.base.atomic_energies(batch, [self.config.base_head], positions)  # (N, 1)
        corrected = [h for h in heads if h != self.config.base_head]
        if len(corrected) == len(heads):
            return base + self.delta.atomic_energies(batch, heads, positions)
        columns = iter((base + self.delta.atomic_energies(batch, corrected, positions)).unbind(1) if corrected else ())
        return torch.stack([base[:, 0] if h == self.config.base_head else next(columns) for h in heads], dim=1)

    def train(self, mode: bool = True) -> "DeltaModel":
        super().train(mode)
        self.base.eval()  # frozen means frozen: no dropout or running statistics in the base
        return self

    def _base_references(self) -> dict[int, float]:
        return self.base.reference_energies_dict()[self.config.base_head]
