"""`PotentialModel`: what every model offers the trainer, the calculator and the hub.

A model maps an `AtomsBatch` to per-atom energies, one column per *head* (a fidelity such as
`wb97x_631gs` or `ccsdt_ccpvdz`). Each head has per-element reference energies, kept in float64
(molecular energies are ~1e4 eV, float32 would lose ~1e-3 eV) and added to the learned part.
Subclasses implement `learned_atomic_energies`; forces come from autograd here, once for all.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import re
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from foundation.data.batch import AtomsBatch
from foundation.data.elements import SYMBOLS, atomic_number, symbol
from foundation.errors import UserError

_HEAD_NAME = re.compile(r"^[A-Za-z0-9_]+$")  # becomes part of parameter names: no dots


def parse_elements(elements: Sequence[int | str]) -> list[int]:
    """[`"H"`, 6, `"8"`] -> [1, 6, 8]; unique, order kept (it fixes feature layouts)."""
    numbers = [atomic_number(int(e) if isinstance(e, str) and e.isdigit() else e) for e in elements]
    if not numbers or len(set(numbers)) != len(numbers):
        raise UserError(f"model elements must be a non-empty list without repeats, got {list(elements)}")
    return numbers


def check_head_name(name: str) -> str:
    if not isinstance(name, str) or not _HEAD_NAME.match(name):
        raise UserError(f"head name {name!r} must be letters, digits and '_' (like 'ccsdt_ccpvdz')")
    return name


@dataclasses.dataclass
class ModelConfig:
    """Fields every model config has. Subclasses add theirs (all with defaults) and `build()`."""

    name: str = ""
    elements: list[int] = dataclasses.field(default_factory=lambda: [1, 6, 7, 8])
    heads: list[str] = dataclasses.field(default_factory=lambda: ["wb97x_631gs"])

    def __post_init__(self):
        self.elements = parse_elements(list(self.elements))
        self.heads = [check_head_name(str(h)) for h in self.heads]
        if not self.heads or len(set(self.heads)) != len(self.heads):
            raise UserError(f"model heads must be a non-empty list without repeats, got {self.heads}")

    def output_heads(self) -> list[str]:
        """The heads a model of this config answers (a Δ model also passes its base head through)."""
        return list(self.heads)

    def build(self) -> "PotentialModel":
        raise NotImplementedError

    def with_data_statistics(self, samples) -> "ModelConfig":
        """This config with the settings it leaves to the training data (`auto`, e.g. MACE's
        `avg_num_neighbors`) computed from `samples()`, the training structures, called only if
        needed. Most models have none (the heads' reference energies are fitted after building)."""
        return self


class PotentialModel(nn.Module):
    """Base of all models. `config` rebuilds the model (`build_model(dataclasses.asdict(config))`);
    the weights and the reference energies are in `state_dict()`."""

    reference_energies: Tensor  # (heads, elements) float64 eV
    # What transfer to a new fidelity keeps fixed by default (`trainer.freeze=[auto]`): parameter
    # patterns as for `trainer.freeze`, e.g. the lower layers, as ANI-1ccx kept ANI-1x's; () when
    # freezing nothing measured best; None when no default was chosen (`auto` is then an error).
    transfer_freeze: tuple[str, ...] | None = None

    def __init__(self, config: ModelConfig, cutoff: float):
        super().__init__()
        self.config = copy.deepcopy(config)  # add_head edits it; never the caller's object
        self.cutoff = float(cutoff)
        self.default_head: str | None = None
        lookup = torch.full((len(SYMBOLS),), -1, dtype=torch.long)
        lookup[self.config.elements] = torch.arange(len(self.config.elements))
        self._element_lookup = lookup  # CPU on purpose: checked before anything runs on a device
        self.register_buffer("reference_energies",
                             torch.zeros(len(config.heads), len(config.elements), dtype=torch.float64))

    # ---- what subclasses implement -------------------------------------------------------------
    def learned_atomic_energies(self, batch: AtomsBatch, positions: Tensor, species: Tensor,
                                counts: list[int]) -> Tensor:
        """(N, len(heads)) learned per-atom energies in eV, module dtype, reference not included.
        `positions` (N, 3) in the module dtype (use these, not `batch.positions`: forces flow
        through them); `species` (N,) int64 element index on the device; `counts` atoms per element."""
        raise NotImplementedError

    @classmethod
    def shared_ensemble(cls, members: Sequence["PotentialModel"], cache: dict | None = None):
        """An object that evaluates `members` (all of this class) together, sharing what they
        compute alike (`foundation.models.ani_ensemble.ANIEnsemble` for ANI), or None: the
        ensemble then runs each member whole."""
        return None

    def _add_head_parameters(self, name: str, copy_from: str | None) -> None:
        raise NotImplementedError

    # ---- public API ----------------------------------------------------------------------------
    @property
    def elements(self) -> list[int]:
        return self.config.elements

    @property
    def heads(self) -> list[str]:
        return self.config.heads

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def head_index(self, head: str | None) -> int:
        head = head or self.default_head or self.heads[0]
        if head not in self.heads:
            raise UserError(f"model has no head {head!r}; its heads are {', '.join(self.heads)}")
        return self.heads.index(head)

    def element_indices(self, batch: AtomsBatch) -> Tensor:
        """(N,) int64 element index of each atom, on the CPU; `UserError` naming the element and
        structure for an atom the model does not know."""
        numbers = batch.numbers.cpu()
        lookup = self._element_lookup
        in_table = (numbers > 0) & (numbers < len(lookup))
        species = torch.where(in_table, lookup[numbers.clamp(0, len(lookup) - 1)], -1)
        bad = torch.nonzero(species < 0)
        if len(bad):
            atom = int(bad[0, 0])
            z, b = int(numbers[atom]), int(batch.batch[atom])
            name = symbol(z) if 0 < z < len(SYMBOLS) else f"Z={z}"
            where = batch.source[b] if b < len(batch.source) and batch.source[b] else f"structure {b}"
            known = ", ".join(symbol(e) for e in self.elements)
            raise UserError(f"{where}: element {name} is not supported by this model (it knows {known})")
        return species

    def atomic_energies(self, batch: AtomsBatch, heads: Sequence[str] | None = None,
                        positions: Tensor | None = None) -> Tensor:
        """(N, len(heads)) float64 per-atom energies in eV, reference energies included.
        `heads` defaults to all heads; `positions` (N, 3) Å to differentiate against (default
        `batch.positions`)."""
        columns = [self.head_index(h) for h in (heads if heads is not None else self.heads)]
        species_cpu = self.element_indices(batch)
        counts = torch.bincount(species_cpu, minlength=len(self.elements)).tolist()
        species = species_cpu.to(batch.positions.device)
        positions = batch.positions if positions is None else positions
        learned = self.learned_atomic_energies(batch, positions.to(self.dtype), species, counts)
        index = torch.tensor(columns, device=species.device)
        reference = self.reference_energies.index_select(0, index).index_select(1, species).T  # (N, heads)
        return learned.index_select(1, index).to(torch.float64) + reference

    def forward(self, batch: AtomsBatch, head: str | None = None, forces: bool = True) -> dict[str, Tensor]:
        """`energy` (B,) float64 eV, `atomic_energies` (N,) float64 eV and, if `forces`, `forces`
        (N, 3) eV/Å = -dE/dx (with a graph for a force loss when training)."""
        name = self.heads[self.head_index(head)]
        positions = leaf_positions(batch) if forces else batch.positions
        with torch.enable_grad() if forces else contextlib.nullcontext():
            atomic = self.atomic_energies(batch, [name], positions)[:, 0]
            energy = atomic.new_zeros(batch.n_structures).index_add_(0, batch.batch, atomic)
            out = {"energy": energy, "atomic_energies": atomic}
            if forces:
                (grad,) = torch.autograd.grad(energy.sum(), positions, create_graph=self.training)
                out["forces"] = -grad
        return out

    def set_reference_energies(self, head: str, energies: Mapping[int | str, float]) -> None:
        """Set (some of) a head's per-element reference energies, eV; keys are Z or symbols."""
        row = self.head_index(head)
        for key, value in energies.items():
            z = parse_elements([key])[0]
            if z not in self.elements:
                raise UserError(f"reference energy for {symbol(z)}, which model elements "
                                f"{[symbol(e) for e in self.elements]} do not include")
            with torch.no_grad():
                self.reference_energies[row, self.elements.index(z)] = float(value)

    def reference_energies_dict(self) -> dict[str, dict[int, float]]:
        table = self.reference_energies.detach().cpu().numpy()
        return {h: {z: float(table[k, e]) for e, z in enumerate(self.elements)} for k, h in enumerate(self.heads)}

    def add_head(self, name: str, copy_from: str | None = None) -> None:
        """A new head (fidelity): fresh output layers, or a copy of `copy_from`'s layers and
        reference energies. Rebuild the optimiser afterwards: there are new parameters."""
        check_head_name(name)
        if name in self.heads:
            raise UserError(f"model already has a head {name!r}")
        source = self.reference_energies[self.head_index(copy_from)] if copy_from else \
            torch.zeros_like(self.reference_energies[0])
        self._add_head_parameters(name, copy_from)
        self.reference_energies = torch.cat([self.reference_energies, source.unsqueeze(0)])
        self.config.heads.append(name)

    def zero_head_output(self, head: str) -> None:
        """Make `head`'s learned energy exactly zero while every parameter still gets gradients
        (a Δ-learning correction starts as no correction): the last `nn.Linear` of each module
        named `...heads.<head>` is zeroed (ANI's per-element output layers, PaiNN's readout).
        A model whose heads end otherwise overrides this."""
        found = False
        for name, module in self.named_modules():
            if name.split(".")[-2:] == ["heads", head]:
                linears = [m for m in module.modules() if isinstance(m, nn.Linear)]
                if linears:
                    with torch.no_grad():
                        linears[-1].weight.zero_()
                        if linears[-1].bias is not None:
                            linears[-1].bias.zero_()
                    found = True
        if not found:
            raise UserError(f"{type(self).__name__} has no output layer named 'heads.{head}' to start at zero")

    def _apply(self, fn, recurse=True):
        # `.float()` / `.half()` must not round the reference energies (1e4 eV): keep float64,
        # follow only the device. A composite (ensemble, delta, routed) owns no reference buffer:
        # its sub-models protect theirs.
        if "reference_energies" not in self._buffers:
            return super()._apply(fn, recurse)
        reference = self.reference_energies
        super()._apply(fn, recurse)
        self._buffers["reference_energies"] = reference.to(self.reference_energies.device, torch.float64)
        return self


def leaf_positions(batch: AtomsBatch) -> Tensor:
    """Positions to differentiate against: the batch's own if they already require grad (e.g. a
    strain applied upstream for stress), else a detached leaf that does."""
    if batch.positions.requires_grad:
        return batch.positions
    return batch.positions.detach().requires_grad_(True)
