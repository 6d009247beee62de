"""Score a model against labelled structures: error metrics plus per-structure predictions (for
parity plots).

The model is anything with `.elements` (atomic numbers), `.heads` (fidelity names) and
`model(batch, head=..., forces=bool)` -> {"energy": (B,) eV, "forces": (N, 3) eV/Å}, as
`foundation.models.base.PotentialModel` is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from foundation.data.batch import collate
from foundation.data.batching import group_by_atoms
from foundation.data.elements import symbol
from foundation.data.molecules import hill_formula
from foundation.data.sample import Sample
from foundation.errors import UserError
from foundation.models.states import check_samples
from foundation.evaluation import metrics


def _groups(samples: Sequence[Sample], formulas: list[str], within: str) -> list[str]:
    if within == "formula":
        return formulas
    if within != "molecule":
        raise ValueError(f"relative_within={within!r}: 'formula' or 'molecule'")
    return [f"molecule:{s.molecule}" if s.molecule else f for s, f in zip(samples, formulas)]


def evaluate(model: torch.nn.Module, samples: Sequence[Sample], head: str | None = None,
             fidelity: str | None = None, batch_atoms: int = 1024,
             include_forces: bool = True, relative_within: str = "formula") -> dict[str, Any]:
    """Run `model`'s `head` on `samples` and compare with their `fidelity` labels.

    `head` may be omitted when the model has one head or one named like the labels; `fidelity`
    (which label set of the samples) defaults to `head` when the samples carry it, else to their
    only one. Returns n_structures, energy_mae_ev_per_atom, energy_mae_kcal_mol,
    energy_rmse_kcal_mol, relative_energy_rmse_kcal_mol (each group's mean removed, the groups the
    `relative_within` "formula" (conformers and isomers together) or "molecule" (each named molecule
    alone, as the frontier tables count it; a structure without a name falls back to its formula);
    NaN without two structures of one group) and, when forces are labelled, n_force_structures, forces_mae_ev_per_a,
    forces_rmse_ev_per_a; plus `structures`, one dict per structure with source, molecule,
    formula, n_atoms, energy_ref_ev, energy_pred_ev and (if `include_forces`) forces lists.
    """
    head, fidelity = _resolve(model, samples, head, fidelity)
    labelled = [s for s in samples if fidelity in s.energies]
    _check_elements(model, labelled)
    check_samples(model, labelled)  # a charged or open-shell structure the model was not trained on
    with_forces = any(fidelity in s.forces for s in labelled)
    energy_pred, forces_pred = _predict(model, labelled, head, with_forces, batch_atoms)

    n_atoms = np.array([s.n_atoms for s in labelled])
    energy_ref = np.array([s.energies[fidelity] for s in labelled], np.float64)
    formulas = [hill_formula(s.numbers) for s in labelled]
    result: dict[str, Any] = {
        "head": head, "fidelity": fidelity, "n_structures": len(labelled), "n_atoms": int(n_atoms.sum()),
        "energy_mae_ev_per_atom": metrics.energy_mae_per_atom(energy_pred, energy_ref, n_atoms),
        "energy_mae_kcal_mol": metrics.energy_mae_kcal_mol(energy_pred, energy_ref),
        "energy_rmse_kcal_mol": metrics.energy_rmse_kcal_mol(energy_pred, energy_ref),
        "relative_energy_rmse_kcal_mol": metrics.relative_energy_rmse_kcal_mol(
            energy_pred, energy_ref, _groups(labelled, formulas, relative_within)),
    }
    has_forces = [fidelity in s.forces for s in labelled]
    if with_forces:
        ref = np.concatenate([s.forces[fidelity] for s, h in zip(labelled, has_forces) if h])
        pred = np.concatenate([f for f, h in zip(forces_pred, has_forces) if h])
        result.update(n_force_structures=int(sum(has_forces)),
                      forces_mae_ev_per_a=metrics.forces_mae(pred, ref),
                      forces_rmse_ev_per_a=metrics.forces_rmse(pred, ref))
    result["structures"] = []
    for k, s in enumerate(labelled):
        row = {"source": s.source, "molecule": s.molecule, "formula": formulas[k], "n_atoms": s.n_atoms,
               "energy_ref_ev": float(energy_ref[k]), "energy_pred_ev": float(energy_pred[k])}
        if include_forces and has_forces[k]:
            row["forces_ref_ev_per_a"] = s.forces[fidelity].tolist()
            row["forces_pred_ev_per_a"] = forces_pred[k].tolist()
        result["structures"].append(row)
    return result


def _resolve(model, samples: Sequence[Sample], head: str | None, fidelity: str | None) -> tuple[str, str]:
    if not samples:
        raise UserError("no structures to evaluate")
    heads = list(model.heads)
    present = sorted(set().union(*(s.energies.keys() for s in samples)))
    if head is None:
        named = [h for h in heads if h in present]
        if len(heads) == 1 or len(named) == 1:
            head = heads[0] if len(heads) == 1 else named[0]
        elif getattr(model, "default_head", None) in heads:
            head = model.default_head  # what its file or registry entry says to use
        else:
            raise UserError(f"the model has heads {', '.join(heads)}; choose one with --head")
    if head not in heads:
        raise UserError(f"the model has no head {head!r}; its heads are {', '.join(heads)}")
    if fidelity is None:
        if head in present or len(present) != 1:
            fidelity = head
        else:
            fidelity = present[0]
    if fidelity not in present:
        raise UserError(f"no structure has {fidelity!r} energies (labels present: {', '.join(present) or 'none'})")
    return head, fidelity


def _check_elements(model, samples: Sequence[Sample]) -> None:
    known = {int(z) for z in model.elements}
    for s in samples:
        unknown = sorted({int(z) for z in s.numbers} - known)
        if unknown:
            raise UserError(f"{s.source or 'structure'}: element {symbol(unknown[0])} is not supported "
                            f"by this model (it knows {', '.join(symbol(z) for z in sorted(known))})")


def _predict(model, samples: Sequence[Sample], head: str, forces: bool,
             batch_atoms: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Energies (B,) eV and per-structure force arrays (n_i, 3) eV/Å (empty list without forces)."""
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    dtype = parameter.dtype if parameter is not None else torch.float32
    was_training = model.training
    model.eval()
    energies, per_structure = [], []
    try:
        for group in group_by_atoms(samples, batch_atoms):
            batch = collate(group, fidelities=[], dtype=dtype).to(device)
            with torch.set_grad_enabled(forces):  # forces need autograd; energies alone do not
                out = model(batch, head=head, forces=forces)
            energies.append(out["energy"].detach().to(torch.float64).cpu().numpy())
            if forces:
                f = out["forces"].detach().to(torch.float64).cpu().numpy()
                per_structure += np.split(f, np.cumsum([s.n_atoms for s in group])[:-1])
    finally:
        model.train(was_training)
    return np.concatenate(energies), per_structure
