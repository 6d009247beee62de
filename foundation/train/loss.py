"""The training loss: per fidelity, an MSE on per-atom energies plus an MSE on force components,
each over the structures that carry that label (the batch's masks), weighted and summed.

Energies enter per atom, (E_pred - E_ref) / n_atoms, so a 50-atom molecule does not outweigh a
5-atom one by 100x in the squared error (TorchANI and MACE do the same). That also makes a given
error in a larger molecule's energy count less, (n_small / n_large)^2 as much: `size_weighting` p
weighs each structure's squared per-atom error by (n_atoms / the batch's mean)^p (p = 1: the total
energy's squared error over n_atoms), for a transfer whose CC labels are small molecules but
whose users' are larger (docs/frontier.md)."""

from __future__ import annotations

import dataclasses

import torch

from foundation.data.batch import AtomsBatch


@dataclasses.dataclass
class LossConfig:
    energy_weight: float = 1.0
    forces_weight: float = 1.0
    fidelity_weights: dict[str, float] = dataclasses.field(default_factory=dict)  # missing: 1.0
    size_weighting: float = 0.0  # per-atom energy errors weighted by (n_atoms / batch mean)^this

    def weight(self, fidelity: str) -> float:
        return float(self.fidelity_weights.get(fidelity, 1.0))

    def force_heads(self, batch: AtomsBatch, heads: list[str]) -> list[str]:
        """Heads whose forces this batch needs (autograd forces cost a second pass)."""
        if self.forces_weight == 0:
            return []
        return [h for h in heads if h in batch.forces_mask and self.weight(h) > 0
                and bool(batch.forces_mask[h].any())]


def energy_force_loss(pred: dict, batch: AtomsBatch, config: LossConfig
                      ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """`pred`: {"energy": {fid: (B,) eV}, "forces": {fid: (N, 3) eV/Å}} from
    `foundation.models.prediction.predict`. Returns (total, {f"{fid}": part, f"{fid}/energy": mse,
    f"{fid}/forces": mse}); parts are detached, for logging. A fidelity absent from the batch adds 0.
    """
    n_atoms = batch.n_atoms_per_structure.to(torch.float64)  # (B,)
    total = torch.zeros((), dtype=torch.float64, device=batch.positions.device)
    parts: dict[str, torch.Tensor] = {}
    for fid, energy in pred["energy"].items():
        diff = (energy.to(torch.float64) - batch.energy[fid]) / n_atoms
        if config.size_weighting:
            mask = batch.energy_mask[fid].to(diff.device)
            mean = torch.where(mask, n_atoms, torch.zeros_like(n_atoms)).sum() / mask.sum().clamp(min=1)
            diff = diff * (n_atoms / mean) ** (config.size_weighting / 2)
        e_mse = _masked_mse(diff, batch.energy_mask[fid])
        part = config.energy_weight * e_mse
        parts[f"{fid}/energy"] = e_mse.detach()
        if fid in pred.get("forces", {}):
            atom_mask = batch.forces_mask[fid][batch.batch]  # (N,)
            f_mse = _masked_mse(pred["forces"][fid] - batch.forces[fid], atom_mask)
            part = part + config.forces_weight * f_mse
            parts[f"{fid}/forces"] = f_mse.detach()
        parts[fid] = part.detach()
        total = total + config.weight(fid) * part
    return total, parts


def _masked_mse(diff: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of diff**2 over the rows where `mask` (leading dim) is true; 0 when none is.
    `torch.where`, not multiplication, so an unlabelled row that holds NaN cannot leak in."""
    mask = mask.to(diff.device)
    if diff.dim() > 1:
        mask = mask.unsqueeze(-1).expand_as(diff)
    sq = torch.where(mask, diff, torch.zeros_like(diff)).square()
    return sq.sum().to(torch.float64) / mask.sum().clamp(min=1)
