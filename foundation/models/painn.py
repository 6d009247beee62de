"""PaiNN: equivariant message passing (Schütt, Unke & Gastegger, ICML 2021), one readout per head.

The body (element embedding, interactions as torch_geometric `MessagePassing` layers) is shared by
all heads; each head (fidelity) has its own small readout MLP, so a CC head can be trained on a
DFT-trained body with chosen layers frozen. Parameter names are made for freezing by pattern:
`embedding.weight`, `interactions.0.message.*` / `interactions.0.update.*` (first interaction),
`readout.heads.ccsdt_ccpvdz.*` (that head's readout MLP; `*.heads.ccsdt_ccpvdz.*` matches a head's
output layers in the ANI model too). Edges come from our vesin neighbour list, periodic
images included, never from PyG's `radius_graph` (it needs torch-cluster).
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor, nn

from foundation.data.batch import AtomsBatch
from foundation.errors import UserError
from foundation.models.base import ModelConfig, PotentialModel
from foundation.models.neighbors import neighbor_pairs
from foundation.models.painn_layers import PaiNNInteraction, cosine_cutoff, init_linear, sine_radial_basis
from foundation.models.registry import register_model


@register_model("painn")
@dataclasses.dataclass
class PaiNNConfig(ModelConfig):
    """Defaults sized for small organic molecules and quick on CPU (~150 k parameters with one head).
    `readout_hidden` defaults to hidden // 2 (the paper's readout)."""

    name: str = "painn"
    cutoff: float = 5.0
    hidden: int = 64
    num_interactions: int = 3
    num_radial: int = 20
    readout_hidden: int | None = None

    def __post_init__(self):
        super().__post_init__()
        if isinstance(self.cutoff, bool) or not isinstance(self.cutoff, (int, float)) or not self.cutoff > 0:
            raise UserError(f"painn config: cutoff must be a number of Å > 0, got {self.cutoff!r}")
        self.cutoff = float(self.cutoff)
        if self.readout_hidden is None and isinstance(self.hidden, int):
            self.readout_hidden = max(1, self.hidden // 2)
        for key in ("hidden", "num_interactions", "num_radial", "readout_hidden"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UserError(f"painn config: {key} must be a positive integer, got {value!r}")

    @classmethod
    def large(cls, **overrides) -> "PaiNNConfig":
        """The paper's QM9/MD17 width and depth (hidden 128, 5 interactions)."""
        return cls(**{"hidden": 128, "num_interactions": 5, **overrides})

    def build(self) -> "PaiNN":
        return PaiNN(self)


class PaiNN(PotentialModel):
    """E = sum_atoms [readout(s_i) - readout(s_Z^isolated)] + reference_Z, per head.

    The isolated-atom term (one extra atom per element, with no neighbours, run through the same
    layers) makes an atom with no neighbours weigh exactly its reference energy, as in our ANI
    model, so refitting reference energies for a new fidelity moves the model where the fit says.
    """

    transfer_freeze = ("interactions.0.*",)  # the first interaction: the closest PaiNN has to low-level features

    def __init__(self, config: PaiNNConfig):
        super().__init__(config, cutoff=config.cutoff)
        c = self.config
        self.embedding = nn.Embedding(len(c.elements), c.hidden)
        self.interactions = nn.ModuleList(PaiNNInteraction(c.hidden, c.num_radial)
                                          for _ in range(c.num_interactions))
        self.readout = Readout(c.hidden, c.readout_hidden, c.heads)
        self.apply(init_linear)

    def learned_atomic_energies(self, batch: AtomsBatch, positions: Tensor, species: Tensor,
                                counts: list[int]) -> Tensor:
        i, j, shifts = neighbor_pairs(batch, self.cutoff)
        vectors = positions[j] - positions[i] + shifts.to(positions.dtype)  # (P, 3) Å, i -> j
        distance = vectors.norm(dim=-1)
        unit = vectors / distance[:, None]
        radial = sine_radial_basis(distance, self.cutoff, self.config.num_radial)
        envelope = cosine_cutoff(distance, self.cutoff)

        n_atoms, n_elements = positions.shape[0], len(self.elements)
        isolated = torch.arange(n_elements, device=species.device)  # one atom per element, no edges
        s = self.embedding(torch.cat([species, isolated]))
        v = s.new_zeros(s.shape[0], 3, s.shape[1])
        edge_index = torch.stack([j, i])  # PyG: messages flow from source j to target i
        for interaction in self.interactions:
            s, v = interaction(s, v, edge_index, radial, envelope, unit)
        out = self.readout(s)  # (N + E, heads)
        return out[:n_atoms] - out[n_atoms:][species]

    def _add_head_parameters(self, name: str, copy_from: str | None) -> None:
        self.readout.add(name, copy_from)


class Readout(nn.Module):
    """One MLP per head on the scalar features (Linear, SiLU, Linear): (n, F) -> (n, heads),
    columns in the order of `heads`."""

    def __init__(self, hidden: int, readout_hidden: int, heads: list[str]):
        super().__init__()
        self.hidden, self.readout_hidden = hidden, readout_hidden
        self.heads = nn.ModuleDict({h: self._mlp() for h in heads})

    def _mlp(self) -> nn.Sequential:
        mlp = nn.Sequential(nn.Linear(self.hidden, self.readout_hidden), nn.SiLU(),
                            nn.Linear(self.readout_hidden, 1))
        mlp.apply(init_linear)
        return mlp

    def forward(self, s: Tensor) -> Tensor:
        return torch.cat([mlp(s) for mlp in self.heads.values()], dim=1)

    def add(self, name: str, copy_from: str | None) -> None:
        mlp = self._mlp()
        if copy_from is not None:
            mlp.load_state_dict(self.heads[copy_from].state_dict())
        template = next(iter(self.heads.values()))[0].weight
        self.heads[name] = mlp.to(device=template.device, dtype=template.dtype)
