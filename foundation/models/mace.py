"""MACE (Batatia et al., NeurIPS 2022, arXiv:2206.07697) through mace-torch, one readout per head.

mace-torch's own `mace.modules.MACE` does the physics (embedding, equivariant interactions,
symmetric contractions), built with the arguments `mace_run_train --model MACE` gives it; nothing
of MACE is copied here. What this adapter adds is what every model here has:
- our neighbour list and `AtomsBatch`, converted at the batch boundary to MACE's input dict
  (`edge_index` = [sender i, receiver j], so MACE's vector r_j - r_i + shift is ours);
- one head per fidelity: MACE's body is shared, and each head owns its own set of MACE readout
  blocks (a linear readout per interaction, the last one non-linear), as `readout.heads.<head>.*`;
  MACE's own readouts are taken out of the body (the first head gets them);
- per-element reference energies per head in the base class (MACE's E0s stay zero). An atom
  without neighbours gets exactly its reference: MACE's first interaction has no self-connection,
  so without edges every feature, and every readout, is zero;
- forces by autograd in the base class (MACE is asked for energies only).
Parameter names for freezing by pattern: `mace.node_embedding.*`, `mace.interactions.0.*` and
`mace.products.0.*` (the first layer), `readout.heads.ccsdt_ccpvdz.*` (that head's readouts).

mace-torch is an optional extra (`pip install 'foundation-mlip[mace]'`), imported on first use.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from foundation.data.batch import AtomsBatch
from foundation.errors import UserError
from foundation.models.base import ModelConfig, PotentialModel
from foundation.models.mace_torch import mace_modules, quiet_torchscript
from foundation.models.neighbors import neighbor_pairs
from foundation.models.registry import register_model

AUTO = "auto"
FROM_DATA = ("avg_num_neighbors", "energy_scale")  # `auto`: computed from the training data
_POSITIVE_INTS = ("num_bessel", "num_polynomial_cutoff", "max_ell", "num_interactions", "correlation")


@register_model("mace")
@dataclasses.dataclass
class MACEConfig(ModelConfig):
    """mace-torch's MACE arguments, with `mace_run_train`'s defaults except the size (32x0e+32x1o,
    2 interactions: quick on CPU). `avg_num_neighbors` divides each message sum; `energy_scale`
    multiplies the learned energy (MACE's `atomic_inter_scale`). Both `auto` by default: computed
    from the training data when a run builds the model, as mace_run_train computes them
    (`foundation.models.mace_statistics`), and stored here as numbers. Building without data
    needs numbers (~7 neighbours for small molecules at 5 Å; a scale of ~1 eV/Å)."""

    name: str = "mace"
    r_max: float = 5.0
    num_bessel: int = 8
    num_polynomial_cutoff: int = 5
    max_ell: int = 3
    num_interactions: int = 2
    hidden_irreps: str = "32x0e+32x1o"
    mlp_irreps: str = "16x0e"
    correlation: int = 3
    radial_mlp: list[int] = dataclasses.field(default_factory=lambda: [64, 64, 64])
    gate: str = "silu"
    interaction: str = "RealAgnosticResidualInteractionBlock"
    interaction_first: str = "RealAgnosticInteractionBlock"
    avg_num_neighbors: float | str = AUTO
    energy_scale: float | str = AUTO
    use_reduced_cg: bool = False

    def __post_init__(self):
        super().__post_init__()
        for key in ("r_max", *FROM_DATA):
            value = getattr(self, key)
            if key in FROM_DATA and value == AUTO:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                extra = " or auto (from the training data)" if key in FROM_DATA else ""
                raise UserError(f"mace config: {key} must be a number > 0{extra}, got {value!r}")
            setattr(self, key, float(value))
        for key in _POSITIVE_INTS:
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UserError(f"mace config: {key} must be a positive integer, got {value!r}")
        widths = list(self.radial_mlp) if isinstance(self.radial_mlp, (list, tuple)) else None
        if not widths or any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in widths):
            raise UserError(f"mace config: radial_mlp must be a list of positive integers, got {self.radial_mlp!r}")
        self.radial_mlp = widths
        if not isinstance(self.use_reduced_cg, bool):
            raise UserError(f"mace config: use_reduced_cg must be true or false, got {self.use_reduced_cg!r}")

    def build(self) -> "MACE":
        auto = [key for key in FROM_DATA if getattr(self, key) == AUTO]
        if auto:
            raise UserError(f"mace config: {auto[0]}=auto is computed from the training data when `foundation "
                            f"train` builds the model; to build one without data, give {' and '.join(auto)} numbers")
        return MACE(self)

    def with_data_statistics(self, samples) -> "MACEConfig":
        """This config with its `auto` settings computed from `samples()`, the training structures."""
        auto = [key for key in FROM_DATA if getattr(self, key) == AUTO]
        if not auto:
            return self
        from foundation.models import mace_statistics as stats

        structures = list(samples())
        values = {"avg_num_neighbors": lambda: stats.avg_num_neighbors(structures, self.r_max, self.elements),
                  "energy_scale": lambda: stats.energy_scale(structures, self.elements)}
        return dataclasses.replace(self, **{key: values[key]() for key in auto})


class MACE(PotentialModel):
    """E = sum_atoms sum_layers readout_head,layer(h_layer) * energy_scale + reference_Z, per head."""

    # Transfer freezes nothing: measured (benchmarks/peers_mace_transfer.py, DFT → CCSD(T) on the
    # embedded data, chosen on the validation molecules), training every layer reached 2.31 kcal/mol
    # against 2.72 with the embedding and first layer frozen and 3.42 with all but the readouts.
    transfer_freeze = ()

    def __init__(self, config: MACEConfig):
        super().__init__(config, cutoff=config.r_max)
        modules, o3 = mace_modules()
        c = self.config
        with quiet_torchscript():
            self.mace = self._body(modules, o3)
        template, self.mace.readouts = self.mace.readouts, nn.ModuleList()  # the body returns features only
        split = [product.linear.irreps_out.dim for product in self.mace.products]
        self.readout = HeadReadouts(template, c.heads, split, modules.gate_dict[c.gate])

    def _body(self, modules, o3):
        c = self.config
        return modules.MACE(
            r_max=c.r_max, num_bessel=c.num_bessel, num_polynomial_cutoff=c.num_polynomial_cutoff,
            max_ell=c.max_ell, interaction_cls=_choice(modules.interaction_classes, "interaction", c.interaction),
            interaction_cls_first=_choice(modules.interaction_classes, "interaction_first", c.interaction_first),
            num_interactions=c.num_interactions, num_elements=len(c.elements),
            hidden_irreps=_irreps(o3, "hidden_irreps", c.hidden_irreps),
            MLP_irreps=_irreps(o3, "mlp_irreps", c.mlp_irreps),
            atomic_energies=np.zeros(len(c.elements)),  # ours are the heads' reference energies
            avg_num_neighbors=c.avg_num_neighbors, atomic_numbers=list(c.elements), correlation=c.correlation,
            gate=_choice(modules.gate_dict, "gate", c.gate), radial_MLP=list(c.radial_mlp),
            use_reduced_cg=c.use_reduced_cg)

    def learned_atomic_energies(self, batch: AtomsBatch, positions: Tensor, species: Tensor,
                                counts: list[int]) -> Tensor:
        i, j, shifts = neighbor_pairs(batch, self.cutoff)
        data = mace_input(batch, positions, species, len(self.elements), i, j, shifts)
        features = self.mace(data, training=False, compute_force=False)["node_feats"]
        return self.readout(features) * self.config.energy_scale

    def _add_head_parameters(self, name: str, copy_from: str | None) -> None:
        self.readout.add(name, copy_from)

    def zero_head_output(self, head: str) -> None:
        """Zero the last (e3nn) linear of each of `head`'s readout blocks: the head's energy is
        then exactly zero, and the zeroed weights still get gradients (the features are not zero)."""
        self.head_index(head)
        with torch.no_grad():
            for block in self.readout.heads[head]:
                last = block.linear_2 if hasattr(block, "linear_2") else block.linear
                last.weight.zero_()
                if getattr(last, "bias", None) is not None and last.bias.numel():
                    last.bias.zero_()


def mace_input(batch: AtomsBatch, positions: Tensor, species: Tensor, n_elements: int,
               i: Tensor, j: Tensor, shifts: Tensor) -> dict[str, Tensor]:
    """The dict `mace.modules.MACE.forward` reads: pair (i, j) is MACE's edge sender i -> receiver
    j, its vector r_j - r_i + shift as in our neighbour list; one-hot elements in the model's
    order. No `unit_shifts`: MACE reads them only for its own stress, and ours comes from strain
    through `shifts`."""
    counts = torch.bincount(batch.batch, minlength=batch.n_structures)
    ptr = torch.cat([counts.new_zeros(1), counts.cumsum(0)])
    # MACE marks `positions` as requiring grad: a caller's leaf tensor must not be changed.
    return {"positions": positions if positions.requires_grad else positions.detach(),
            "node_attrs": F.one_hot(species, n_elements).to(positions.dtype),
            "edge_index": torch.stack([i, j]), "shifts": shifts.to(positions.dtype),
            "batch": batch.batch, "ptr": ptr, "cell": batch.cell.to(positions.dtype)}


class HeadReadouts(nn.Module):
    """Per head, MACE's readout blocks, one per interaction layer, each reading that layer's
    features (MACE returns them concatenated, `split` features per layer): (N, F) -> (N, heads)."""

    def __init__(self, template: nn.ModuleList, heads: list[str], split: list[int], gate):
        super().__init__()
        self.split, self.gate = list(split), gate
        self.heads = nn.ModuleDict({heads[0]: template})
        for head in heads[1:]:
            self.heads[head] = self._fresh()

    def forward(self, features: Tensor) -> Tensor:
        layers = features.split(self.split, dim=-1)
        return torch.cat([sum(block(x) for block, x in zip(blocks, layers)) for blocks in self.heads.values()],
                         dim=1)

    def add(self, name: str, copy_from: str | None) -> None:
        blocks = self._fresh()
        if copy_from is not None:
            blocks.load_state_dict(self.heads[copy_from].state_dict())
        weight = next(self.parameters())
        self.heads[name] = blocks.to(device=weight.device, dtype=weight.dtype)

    def _fresh(self) -> nn.ModuleList:
        """New blocks like the first head's, freshly initialised by mace-torch's own classes."""
        modules, _ = mace_modules()
        fresh = []
        with quiet_torchscript():
            for block in next(iter(self.heads.values())):
                if isinstance(block, modules.NonLinearReadoutBlock):
                    fresh.append(modules.NonLinearReadoutBlock(block.linear_1.irreps_in, block.hidden_irreps,
                                                               self.gate))
                else:
                    fresh.append(modules.LinearReadoutBlock(block.linear.irreps_in))
        return nn.ModuleList(fresh)


def _choice(table: dict, key: str, value: str):
    if value not in table:
        raise UserError(f"mace config: {key}={value!r} is not one of mace-torch's: {', '.join(table)}")
    return table[value]


def _irreps(o3, key: str, value: str):
    try:
        return o3.Irreps(value)
    except (ValueError, AssertionError, TypeError) as err:
        raise UserError(f"mace config: {key}={value!r} is not an irreps string like '32x0e+32x1o' ({err})") from None
