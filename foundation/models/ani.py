"""ANI-style model: AEV features, one MLP per element, one output layer per head.

Smith et al., Chem. Sci. 8, 3192 (2017) (ANI-1) and Nat. Commun. 10, 2903 (2019) (ANI-1ccx
transfer learning). The heads share the element bodies, so a CC head can be trained on top of a
DFT-trained body with chosen layers frozen. Parameter names are made for freezing by pattern:
`networks.C.layers.0.weight` (first Linear of carbon's body; Linears are layers 0, 2, 4, ...),
`networks.C.heads.ccsdt_ccpvdz.weight` (carbon's output layer for that head).
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from foundation.data.batch import AtomsBatch
from foundation.data.elements import symbol
from foundation.errors import UserError
from foundation.models.aev import AEV
from foundation.models.base import ModelConfig, PotentialModel
from foundation.models.element_groups import ElementGrouping
from foundation.models.neighbors import neighbor_pairs
from foundation.models.registry import register_model

ANI1X_HIDDEN = {"H": [160, 128, 96], "C": [144, 112, 96], "N": [128, 112, 96], "O": [128, 112, 96]}
OTHER_HIDDEN = [128, 112, 96]  # elements ANI-1x does not have: sized like N


@register_model("ani")
@dataclasses.dataclass
class ANIConfig(ModelConfig):
    """ANI-1x defaults (TorchANI `like_1x`). `hidden` maps element symbol -> hidden widths;
    missing elements get the ANI-1x widths (others like N)."""

    name: str = "ani"
    radial_cutoff: float = 5.2
    radial_start: float = 0.9
    radial_eta: float = 16.0
    radial_num_shifts: int = 16
    angular_cutoff: float = 3.5
    angular_start: float = 0.9
    angular_eta: float = 8.0
    angular_zeta: float = 32.0
    angular_num_shifts: int = 4
    angular_num_sections: int = 8
    hidden: dict[str, list[int]] | None = None
    celu_alpha: float = 0.1

    def __post_init__(self):
        super().__post_init__()
        given = {str(k): [int(w) for w in v] for k, v in (self.hidden or {}).items()}
        symbols = [symbol(z) for z in self.elements]
        extra = sorted(set(given) - set(symbols))
        if extra:
            raise UserError(f"ani config: hidden widths for {extra}, which are not model elements {symbols}")
        self.hidden = {s: given.get(s, ANI1X_HIDDEN.get(s, OTHER_HIDDEN)) for s in symbols}
        if any(not w or min(w) < 1 for w in self.hidden.values()):
            raise UserError(f"ani config: hidden widths must be non-empty lists of positive ints, "
                            f"got {self.hidden}")
        if not 0 < self.angular_cutoff <= self.radial_cutoff:
            raise UserError(f"ani config: need 0 < angular_cutoff ({self.angular_cutoff}) <= "
                            f"radial_cutoff ({self.radial_cutoff})")

    def build(self) -> "ANI":
        return ANI(self)


class ElementNetwork(nn.Module):
    """One element's MLP body (Linear, CELU, ...) and one final Linear per head.
    forward: (n, in_dim) -> (n, heads), the heads computed in one matmul."""

    def __init__(self, in_dim: int, hidden: list[int], heads: list[str], alpha: float):
        super().__init__()
        layers: list[nn.Module] = []
        for width in hidden:
            layers += [nn.Linear(in_dim, width), nn.CELU(alpha)]
            in_dim = width
        self.layers = nn.Sequential(*layers)
        self.heads = nn.ModuleDict({h: nn.Linear(in_dim, 1) for h in heads})
        self.apply(_init_linear)

    def forward(self, x: Tensor) -> Tensor:
        # Functional calls rather than the submodules' __call__: for one small molecule (MD) the
        # per-call cost of nn.Module was a third of the model's time.
        for layer in self.layers:
            x = F.linear(x, layer.weight, layer.bias) if isinstance(layer, nn.Linear) else F.celu(x, layer.alpha)
        heads = list(self.heads.values())
        if len(heads) == 1:
            return F.linear(x, heads[0].weight, heads[0].bias)
        return F.linear(x, torch.cat([h.weight for h in heads]), torch.cat([h.bias for h in heads]))


def _init_linear(module: nn.Module) -> None:
    # TorchANI's training recipe: Kaiming-normal weights (a=1, i.e. unit gain), zero biases.
    if isinstance(module, nn.Linear):
        nn.init.kaiming_normal_(module.weight, a=1.0)
        nn.init.zeros_(module.bias)


class ANI(PotentialModel):
    """E = sum_atoms [NN_Z(AEV) - NN_Z(0)] + reference_Z, per head.

    Subtracting NN_Z(0) (an atom with no neighbours) makes an isolated atom's energy exactly its
    reference energy, so refitting the reference energies for a new fidelity moves the model
    exactly where the fit says (it costs one extra row per element network).
    """

    transfer_freeze = ("networks.*.layers.2.*",)  # each element's second Linear (ANI-1ccx froze some layers)

    def __init__(self, config: ANIConfig):
        super().__init__(config, cutoff=config.radial_cutoff)
        c = self.config
        self.aev = AEV.from_parameters(
            len(c.elements), radial_start=c.radial_start, radial_cutoff=c.radial_cutoff,
            radial_eta=c.radial_eta, radial_num_shifts=c.radial_num_shifts,
            angular_start=c.angular_start, angular_cutoff=c.angular_cutoff, angular_eta=c.angular_eta,
            angular_zeta=c.angular_zeta, angular_num_shifts=c.angular_num_shifts,
            angular_num_sections=c.angular_num_sections)
        self.networks = nn.ModuleDict({
            symbol(z): ElementNetwork(self.aev.out_dim, c.hidden[symbol(z)], c.heads, c.celu_alpha)
            for z in c.elements})

    def learned_atomic_energies(self, batch: AtomsBatch, positions: Tensor, species: Tensor,
                                counts: list[int]) -> Tensor:
        features = self.features(batch, positions, species)
        grouping = ElementGrouping(species, counts)
        out = torch.cat([net(part) for net, part in zip(self.networks.values(), grouping.split(features))])
        return grouping.minus_zero_rows(out)

    def features(self, batch: AtomsBatch, positions: Tensor, species: Tensor) -> Tensor:
        """(N, aev.out_dim) AEVs of the batch's atoms at `positions`."""
        i, j, shifts = neighbor_pairs(batch, self.cutoff)
        return self.aev(species, positions, i, j, shifts)

    def featurizer_key(self) -> tuple:
        """What fixes this model's AEVs: two models with equal keys compute the same features
        for the same batch (an ensemble computes them once for such members)."""
        c = self.config
        return (tuple(c.elements), c.radial_cutoff, c.radial_start, c.radial_eta, c.radial_num_shifts,
                c.angular_cutoff, c.angular_start, c.angular_eta, c.angular_zeta, c.angular_num_shifts,
                c.angular_num_sections, self.aev.native, self.cutoff)

    @classmethod
    def shared_ensemble(cls, members, cache: dict | None = None):
        """Members' work done once (`foundation.models.ani_ensemble.ANIEnsemble`), or None where
        their AEVs differ."""
        from foundation.models.ani_ensemble import ANIEnsemble

        return ANIEnsemble.of(members, cache, kind=cls)

    def _add_head_parameters(self, name: str, copy_from: str | None) -> None:
        for net in self.networks.values():
            template = net.heads[self.heads[0]]
            layer = nn.Linear(template.in_features, 1, device=template.weight.device, dtype=template.weight.dtype)
            _init_linear(layer)
            if copy_from is not None:
                layer.load_state_dict(net.heads[copy_from].state_dict())
            net.heads[name] = layer
