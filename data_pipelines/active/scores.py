"""How much an ensemble's members disagree on each candidate structure.

The members see the same structure; where they were trained on similar ones they agree, and where
they extrapolate they drift apart. Two spreads are kept per structure:
    energy_spread_per_atom   sample std over members of the energy, divided by the atom count
                             (eV/atom), so big molecules are not picked for being big
    force_spread             per atom, the RMS over x, y, z of the members' force std; averaged
                             over atoms (eV/Å)
`score = energy_spread_per_atom + force_weight * force_spread` ranks them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import torch

from foundation.data import collate
from foundation.data.batching import group_by_atoms
from foundation.data import Sample
from foundation.errors import UserError


@dataclasses.dataclass
class Scores:
    """Per-structure arrays, all (B,) float64."""

    energy: np.ndarray  # eV, the members' mean
    energy_spread: np.ndarray  # eV
    energy_spread_per_atom: np.ndarray  # eV/atom
    force_spread: np.ndarray  # eV/Å; NaN when forces were not computed

    def combined(self, force_weight: float = 0.0) -> np.ndarray:
        """(B,) the ranking score, eV/atom (+ force_weight × eV/Å)."""
        if force_weight == 0.0:
            return self.energy_spread_per_atom.copy()
        if np.isnan(self.force_spread).any():
            raise UserError("force_weight > 0 needs force spreads: score with forces=True")
        return self.energy_spread_per_atom + force_weight * self.force_spread

    def rows(self) -> list[dict]:
        return [{"energy_ev": float(e), "energy_spread_ev": float(s), "energy_spread_per_atom_ev": float(a),
                 "force_spread_ev_per_a": None if np.isnan(f) else float(f)}
                for e, s, a, f in zip(self.energy, self.energy_spread, self.energy_spread_per_atom, self.force_spread)]


def members_of(model) -> list[torch.nn.Module]:
    """The committee: an `EnsembleModel`'s members, or a list of models."""
    if isinstance(model, (list, tuple)):
        members = list(model)
    else:
        members = list(getattr(model, "members", []))
    if len(members) < 2:
        raise UserError("selection by disagreement needs an ensemble of at least 2 members "
                        "(an ensemble model file, or several model files)")
    return members


def ensemble_scores(model, samples: Sequence[Sample], head: str | None = None, forces: bool = True,
                    batch_atoms: int = 1024) -> Scores:
    """The spreads of `model` (an ensemble, or a list of models with the same heads) on `samples`
    at `head` (default: the members' default head)."""
    members = members_of(model)
    if not samples:
        raise UserError("the candidate pool is empty")
    for m in members:
        m.eval()
    parameter = next(members[0].parameters())
    energies, force_spreads = [], []
    for group in group_by_atoms(samples, batch_atoms):
        batch = collate(group, fidelities=[], dtype=parameter.dtype).to(parameter.device)
        per_member_e, per_member_f = [], []
        for m in members:
            with torch.set_grad_enabled(forces):
                out = m(batch, head=head, forces=forces)
            per_member_e.append(out["energy"].detach().to(torch.float64).cpu())
            if forces:
                per_member_f.append(out["forces"].detach().to(torch.float64).cpu())
        energies.append(torch.stack(per_member_e))  # (M, b)
        if forces:
            f_std = torch.stack(per_member_f).std(0)  # (N, 3)
            per_atom = f_std.square().mean(1).sqrt()  # (N,)
            counts = batch.n_atoms_per_structure.cpu().to(torch.float64)
            sums = torch.zeros(len(group), dtype=torch.float64).index_add_(0, batch.batch.cpu(), per_atom)
            force_spreads.append(sums / counts)
    e = torch.cat(energies, dim=1).numpy()  # (M, B)
    n_atoms = np.array([s.n_atoms for s in samples], np.float64)
    spread = e.std(0, ddof=1)
    return Scores(energy=e.mean(0), energy_spread=spread, energy_spread_per_atom=spread / n_atoms,
                  force_spread=torch.cat(force_spreads).numpy() if forces else np.full(len(samples), np.nan))
