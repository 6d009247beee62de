"""PaiNN building blocks (Schütt, Unke & Gastegger, ICML 2021, arXiv:2102.03150).

Each atom carries scalar features `s` (N, F) and vector features `v` (N, 3, F). Vector features
are only ever scaled by invariants, summed, or mixed along the feature axis (Linear without bias),
so they rotate with the structure and energies from `s` stay invariant. Edges are given by the
caller (our vesin neighbour list) as PyG `edge_index = [source j, target i]` with unit vectors
`(r_j - r_i) / |r_j - r_i|` pointing from the receiving atom i to its neighbour j.
"""

from __future__ import annotations

import math
import warnings

import torch
from torch import Tensor, nn

with warnings.catch_warnings():
    # torch_geometric.nn scripts some of its classes on import, which torch 2.10+ flags as
    # deprecated; nothing we call is scripted, so the warning only adds noise to every run.
    warnings.filterwarnings("ignore", message=".*torch.jit.script.*is deprecated", category=DeprecationWarning)
    from torch_geometric.nn import MessagePassing
    from torch_geometric.utils import scatter

# Added under the square root of |V v|^2: the vector features of an atom start at exactly zero,
# where the norm's gradient is undefined (NaN forces on the first step otherwise).
NORM_EPS = 1e-8


def sine_radial_basis(distance: Tensor, cutoff: float, num: int) -> Tensor:
    """(P,) Å -> (P, num): sin(n π r / r_c) / r, n = 1..num (paper eq. 9's basis)."""
    n = torch.arange(1, num + 1, device=distance.device, dtype=distance.dtype)
    return torch.sin(distance[:, None] * n * (math.pi / cutoff)) / distance[:, None]


def cosine_cutoff(distance: Tensor, cutoff: float) -> Tensor:
    """(P,) Å -> (P,): 0.5 (cos(π r / r_c) + 1) inside the cutoff, 0 beyond. Its value and slope
    both vanish at r_c, so energies and forces stay continuous as atoms cross it."""
    inside = distance < cutoff
    return torch.where(inside, 0.5 * (torch.cos(distance * (math.pi / cutoff)) + 1.0),
                       torch.zeros_like(distance))


class PaiNNMessage(MessagePassing):
    """Message block (paper eqs. 7-8): for each edge i <- j,
    x = φ(s_j) ∘ W(r_ij) split into (gate_v, Δs, gate_r);
    Δs_i = Σ_j Δs,  Δv_i = Σ_j v_j ∘ gate_v + gate_r ∘ r̂_ij;  s += Δs, v += Δv.
    W is a Linear on the radial basis, times the cosine cutoff (zero at r_c)."""

    def __init__(self, hidden: int, num_radial: int):
        super().__init__(aggr="add", node_dim=0)  # node axis 0: vector features are (N, 3, F)
        self.hidden = hidden
        self.scalar = nn.Sequential(nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, 3 * hidden))
        self.filter = nn.Linear(num_radial, 3 * hidden)

    def forward(self, s: Tensor, v: Tensor, edge_index: Tensor, radial: Tensor, envelope: Tensor,
                unit: Tensor) -> tuple[Tensor, Tensor]:
        """s (N, F), v (N, 3, F); edge_index (2, P); radial (P, K); envelope (P,); unit (P, 3)."""
        phi = self.scalar(s)  # per atom, before gathering: N rows of work instead of P
        weight = self.filter(radial) * envelope[:, None]
        ds, dv = self.propagate(edge_index, phi=phi, v=v, weight=weight, unit=unit)
        return s + ds, v + dv

    def message(self, phi_j: Tensor, v_j: Tensor, weight: Tensor, unit: Tensor) -> tuple[Tensor, Tensor]:
        gate_v, ds, gate_r = torch.split(phi_j * weight, self.hidden, dim=-1)
        dv = v_j * gate_v[:, None, :] + gate_r[:, None, :] * unit[:, :, None]
        return ds, dv

    def aggregate(self, inputs: tuple[Tensor, Tensor], index: Tensor, ptr: Tensor | None = None,
                  dim_size: int | None = None) -> tuple[Tensor, Tensor]:
        # The default aggregation takes one tensor; ours are a scalar and a vector message.
        ds, dv = inputs
        return (scatter(ds, index, dim=0, dim_size=dim_size, reduce="sum"),
                scatter(dv, index, dim=0, dim_size=dim_size, reduce="sum"))

    def update(self, inputs: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        return inputs


class PaiNNUpdate(nn.Module):
    """Update block (paper eqs. 10-12), per atom: U v and V v mix vector channels;
    a = MLP([s, |V v|]) split into (a_vv, a_sv, a_ss);
    v += a_vv ∘ U v,  s += a_sv ∘ <U v, V v> + a_ss."""

    def __init__(self, hidden: int):
        super().__init__()
        self.hidden = hidden
        self.mix = nn.Linear(hidden, 2 * hidden, bias=False)  # U and V in one matmul; no bias keeps v equivariant
        self.gates = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.SiLU(), nn.Linear(hidden, 3 * hidden))

    def forward(self, s: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """s (N, F), v (N, 3, F) -> the same shapes."""
        uv, vv = torch.split(self.mix(v), self.hidden, dim=-1)
        norm = torch.sqrt((vv * vv).sum(dim=1) + NORM_EPS)
        a_vv, a_sv, a_ss = torch.split(self.gates(torch.cat([s, norm], dim=-1)), self.hidden, dim=-1)
        return s + a_sv * (uv * vv).sum(dim=1) + a_ss, v + a_vv[:, None, :] * uv


class PaiNNInteraction(nn.Module):
    """One interaction: message passing between neighbours, then the per-atom update."""

    def __init__(self, hidden: int, num_radial: int):
        super().__init__()
        self.message = PaiNNMessage(hidden, num_radial)
        self.update = PaiNNUpdate(hidden)

    def forward(self, s: Tensor, v: Tensor, edge_index: Tensor, radial: Tensor, envelope: Tensor,
                unit: Tensor) -> tuple[Tensor, Tensor]:
        s, v = self.message(s, v, edge_index, radial, envelope, unit)
        return self.update(s, v)


def init_linear(module: nn.Module) -> None:
    """Xavier-uniform weights, zero biases (as schnetpack initialises PaiNN)."""
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
