"""ANI atomic environment vectors (AEVs) on a flat batch, from a neighbour pair list.

Smith, Isayev, Roitberg, Chem. Sci. 8, 3192 (2017), eqs. (2)-(4), with TorchANI's deviations from
the paper (kept so that our AEVs equal `torchani.aev.AEVComputer.like_1x()`'s; tested):
the 0.25 factor in the radial term and the 0.95 inside the arccos of the angular term.
No padding and no loop over atoms: terms are computed per pair / per triplet and summed into
(atom, neighbour element) slots. `ANIRadial` / `ANIAngular` hold the constants and the torch form
of each term, differentiated by autograd (on GPUs, and where no C compiler works); on the CPU the
sums run as C kernels with hand-written derivatives (`aev_native`, ~2.5x faster for force training).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from foundation.models import aev_native
from foundation.models.neighbors import triplets_from_pairs


def cosine_cutoff(distances: Tensor, cutoff: float) -> Tensor:
    """Eq. (2): f_C(r) = 0.5 cos(pi r / R_C) + 0.5 for r < R_C (callers pass only r < R_C)."""
    return 0.5 * torch.cos(distances * (math.pi / cutoff)) + 0.5


def _cover(start: float, stop: float, n: int) -> list[float]:
    # Same expression as torchani.utils.linspace, so the constants agree to the last bit.
    return [start + ((stop - start) / n) * k for k in range(n)]


class ANIRadial(nn.Module):
    """Radial terms, eq. (3): G_R = 0.25 exp(-eta (R_ij - R_s)^2) f_C(R_ij), one per shift R_s.

    forward: distances (P,) Å -> (len(shifts), P). The sum over neighbours is the caller's.
    """

    def __init__(self, eta: float, shifts: Sequence[float], cutoff: float):
        super().__init__()
        self.eta, self.cutoff = float(eta), float(cutoff)
        self.register_buffer("shifts", torch.tensor(list(shifts)), persistent=False)
        self.num_feats = len(shifts)

    @classmethod
    def cover_linearly(cls, start: float, cutoff: float, eta: float, num_shifts: int) -> "ANIRadial":
        """`num_shifts` shifts evenly from `start` up to (excluding) `cutoff`, as in ANI."""
        return cls(eta, _cover(start, cutoff, num_shifts), cutoff)

    def forward(self, distances: Tensor) -> Tensor:
        # Pairs last: broadcasting over a long contiguous last dimension is several times
        # faster on CPU than over a short one (measured 1.3 vs 10 ms for 250k triplets x 32).
        # 0.25: not in the paper; NeuroChem and TorchANI have it.
        gauss = torch.exp(-self.eta * (distances - self.shifts.unsqueeze(1)) ** 2)
        return 0.25 * gauss * cosine_cutoff(distances, self.cutoff)

    def params(self) -> aev_native.RadialParams:
        """The constants, for the C kernels."""
        return aev_native.RadialParams(self.shifts, self.eta, math.pi / self.cutoff)


class ANIAngular(nn.Module):
    """Angular terms, eq. (4), for a triplet (i; j, k):

        G_A = 2 ((1 + cos(theta_ijk - theta_s)) / 2)^zeta
              * exp(-eta ((R_ij + R_ik)/2 - R_s)^2) f_C(R_ij) f_C(R_ik)

    with theta_ijk = arccos(0.95 cos theta) (TorchANI's 0.95 keeps arccos off +-1), for every
    radial shift R_s (outer index) and angle section theta_s (inner index).
    forward: d_ij, d_ik (T,) Å, cos_ijk (T,) -> (len(shifts) * len(sections), T).
    """

    def __init__(self, eta: float, zeta: float, shifts: Sequence[float], sections: Sequence[float],
                 cutoff: float):
        super().__init__()
        self.eta, self.zeta, self.cutoff = float(eta), float(zeta), float(cutoff)
        self.register_buffer("shifts", torch.tensor(list(shifts)), persistent=False)
        self.register_buffer("sections", torch.tensor(list(sections)), persistent=False)
        self.num_feats = len(shifts) * len(sections)

    @classmethod
    def cover_linearly(cls, start: float, cutoff: float, eta: float, zeta: float, num_shifts: int,
                       num_sections: int) -> "ANIAngular":
        """Shifts evenly from `start` to `cutoff`; sections evenly over [0, pi), offset by half a step."""
        half_step = math.pi / num_sections / 2
        sections = _cover(half_step, math.pi + half_step, num_sections)
        return cls(eta, zeta, _cover(start, cutoff, num_shifts), sections, cutoff)

    def forward(self, d_ij: Tensor, d_ik: Tensor, cos_ijk: Tensor) -> Tensor:
        # Triplets last, as in ANIRadial.forward.
        # cos(arccos(x) - s) = x cos s + sqrt(1 - x^2) sin s: no arccos, same value.
        x = 0.95 * cos_ijk
        sections = self.sections.unsqueeze(1)
        cos_dev = torch.cos(sections) * x + torch.sin(sections) * torch.sqrt(1 - x * x)
        # (pow beats repeated squaring once double backward, for force training, is counted)
        angular = 2 * ((1 + cos_dev) / 2) ** self.zeta  # (sections, T)
        envelope = cosine_cutoff(d_ij, self.cutoff) * cosine_cutoff(d_ik, self.cutoff)
        mean = (d_ij + d_ik) / 2
        radial = torch.exp(-self.eta * (mean - self.shifts.unsqueeze(1)) ** 2) * envelope  # (shifts, T)
        return (radial.unsqueeze(1) * angular.unsqueeze(0)).flatten(0, 1)

    def params(self) -> aev_native.AngularParams:
        """The constants, for the C kernels."""
        return aev_native.AngularParams(self.shifts, self.sections, self.eta, self.zeta, math.pi / self.cutoff)


class AEV(nn.Module):
    """The full AEV: radial terms per neighbour element, angular terms per unordered element pair.

    Layout per atom (as TorchANI): [radial(elem 0) .. radial(elem S-1) | angular(pair 0) ..], the
    element pairs in `triu_indices(S, S)` order. Length S R + S(S+1)/2 A.
    """

    def __init__(self, num_species: int, radial: ANIRadial, angular: ANIAngular):
        super().__init__()
        if angular.cutoff > radial.cutoff:
            raise ValueError(f"angular cutoff {angular.cutoff} exceeds radial cutoff {radial.cutoff}")
        self.num_species = num_species
        self.radial, self.angular = radial, angular
        self.num_pairs = num_species * (num_species + 1) // 2
        rows, cols = torch.triu_indices(num_species, num_species)
        pair_index = torch.zeros(num_species, num_species, dtype=torch.long)
        pair_index[rows, cols] = pair_index[cols, rows] = torch.arange(len(rows))
        self.register_buffer("pair_index", pair_index, persistent=False)
        self.out_dim = num_species * radial.num_feats + self.num_pairs * angular.num_feats
        self.native = True  # C kernels on the CPU where they build (aev_native); False: torch ops only

    @property
    def cutoff(self) -> float:
        return self.radial.cutoff

    @classmethod
    def like_1x(cls, elements: Sequence[int], **overrides: float) -> "AEV":
        """ANI-1x: radial 5.2 Å, 16 shifts from 0.9, eta 16; angular 3.5 Å, 4 shifts from 0.9,
        8 sections, eta 8, zeta 32. 384 features for H, C, N, O."""
        params = dict(radial_start=0.9, radial_cutoff=5.2, radial_eta=16.0, radial_num_shifts=16,
                      angular_start=0.9, angular_cutoff=3.5, angular_eta=8.0, angular_zeta=32.0,
                      angular_num_shifts=4, angular_num_sections=8)
        return cls.from_parameters(len(elements), **{**params, **overrides})

    @classmethod
    def like_2x(cls, elements: Sequence[int], **overrides: float) -> "AEV":
        """ANI-2x: radial 5.1 Å, 16 shifts from 0.8, eta 19.7; angular 3.5 Å, 8 shifts from 0.8,
        4 sections, eta 12.5, zeta 14.1. 1008 features for H, C, N, O, S, F, Cl."""
        params = dict(radial_start=0.8, radial_cutoff=5.1, radial_eta=19.7, radial_num_shifts=16,
                      angular_start=0.8, angular_cutoff=3.5, angular_eta=12.5, angular_zeta=14.1,
                      angular_num_shifts=8, angular_num_sections=4)
        return cls.from_parameters(len(elements), **{**params, **overrides})

    @classmethod
    def from_parameters(cls, num_species: int, *, radial_start: float, radial_cutoff: float,
                        radial_eta: float, radial_num_shifts: int, angular_start: float,
                        angular_cutoff: float, angular_eta: float, angular_zeta: float,
                        angular_num_shifts: int, angular_num_sections: int) -> "AEV":
        radial = ANIRadial.cover_linearly(radial_start, radial_cutoff, radial_eta, int(radial_num_shifts))
        angular = ANIAngular.cover_linearly(angular_start, angular_cutoff, angular_eta, angular_zeta,
                                            int(angular_num_shifts), int(angular_num_sections))
        return cls(num_species, radial, angular)

    def forward(self, species: Tensor, positions: Tensor, i: Tensor, j: Tensor, shifts: Tensor) -> Tensor:
        """species (N,) int64 in [0, S); positions (N, 3) Å; full pair list i, j (P,) with
        shifts (P, 3) Å, all pairs within the radial cutoff. Returns (N, out_dim)."""
        n_atoms, kinds = species.shape[0], self.num_species
        vectors = positions.index_select(0, j) - positions.index_select(0, i) + shifts.to(positions.dtype)
        native = aev_native.kernels(self.radial.params(), self.angular.params(), vectors) if self.native else None
        # Both directions are in the list, so each atom sums over all its neighbours. Sums are
        # (atoms * kinds, feats): row-major, that is already the (atoms, kinds * feats) layout.
        neighbour = species.index_select(0, j)
        radial_slot = i * kinds + neighbour
        if native is not None:
            radial = native.radial(vectors, radial_slot, n_atoms * kinds)
            distances = torch.linalg.vector_norm(vectors.detach(), dim=1)
        else:
            distances = torch.linalg.vector_norm(vectors, dim=1)
            radial = vectors.new_zeros(self.radial.num_feats, n_atoms * kinds)
            radial = radial.index_add_(1, radial_slot, self.radial(distances)).T

        # index_select, not x[index]: the gathers here run over every pair and triplet, and
        # advanced indexing is several times slower on the CPU
        close = torch.nonzero(distances <= self.angular.cutoff).squeeze(1)
        close = close.index_select(0, torch.argsort(i.index_select(0, close)))  # pairs grouped by centre
        center = i.index_select(0, close)
        first, second = triplets_from_pairs(center)
        p, q = close.index_select(0, first), close.index_select(0, second)
        kinds_pq = neighbour.index_select(0, p) * kinds + neighbour.index_select(0, q)
        slot = center.index_select(0, first) * self.num_pairs + self.pair_index.reshape(-1).index_select(0, kinds_pq)
        num_slots = n_atoms * self.num_pairs
        if native is not None:
            angular = native.angular(vectors, p, q, slot, num_slots)
        else:
            d_p, d_q = distances.index_select(0, p), distances.index_select(0, q)
            cos = (vectors.index_select(0, p) * vectors.index_select(0, q)).sum(1) / torch.clamp(d_p * d_q, min=1e-10)
            angular = vectors.new_zeros(self.angular.num_feats, num_slots)
            angular = angular.index_add_(1, slot, self.angular(d_p, d_q, cos)).T
        return torch.cat([radial.reshape(n_atoms, -1), angular.reshape(n_atoms, -1)], dim=1)
