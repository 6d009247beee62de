"""Which validation number chooses the weights a run keeps (`trainer.early_stopping_metric`).

- a key of the validation metrics: `val/loss`, `val/ccsdt_ccpvdz/energy_rmse`, …;
- a weighted sum of keys: `val/cc/relative_energy_rmse + 0.1*val/cc/forces_rmse`;
- `val/<fid>/auto`, what users need from a fine-tune (issue 20): the energy term is the
  relative-energy RMSE (energies relative to each molecule's mean) when at least half of the
  validation structures have another conformer of their molecule in the validation set, and the
  energy RMSE otherwise; when the validation structures have forces and `trainer.forces_weight`
  is above 0, `forces_weight` × 1 Å × the forces RMSE is added (eV + eV/Å × Å: both in eV).
  The absolute energy RMSE is not used when relative energies can be scored because the
  per-element reference energies dominate it (58 → 14 kcal/mol after a refit) while saying
  nothing about conformer energies, the shape of the surface that dynamics follow.

`resolve` turns the setting into a `Selection`, once per run (the validation set does not
change), so the same number is compared at every validation.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Callable, Iterable

from foundation.errors import UserError
from foundation.units import EV_TO_KCAL_MOL

AUTO = "auto"
RELATIVE_SHARE = 0.5  # of validation structures with a sibling conformer there: relative energies

_WORDS = {"relative_energy_rmse": "relative-energy RMSE (energies relative to each molecule's mean)",
          "energy_rmse": "energy RMSE", "energy_mae": "energy MAE", "forces_rmse": "forces RMSE",
          "forces_mae": "forces MAE", "loss": "loss"}


@dataclasses.dataclass(frozen=True)
class Selection:
    terms: tuple[tuple[float, str], ...]  # (weight, validation key)

    @property
    def name(self) -> str:
        return " + ".join(key if w == 1.0 else f"{w:g}*{key}" for w, key in self.terms)

    @property
    def composite(self) -> bool:
        return len(self.terms) > 1

    def value(self, val: dict[str, float]) -> float | None:
        """The number (lower is better), or None when validation did not report a term."""
        if any(key not in val for _, key in self.terms):
            return None
        return math.fsum(w * val[key] for w, key in self.terms)

    def format(self, value: float) -> str:
        """A value with its unit: eV and kcal/mol for energy (and forces × Å) terms, bare for a loss."""
        if any(key.rsplit("/", 1)[-1] == "loss" for _, key in self.terms):
            return f"{value:.4g}"
        return f"{value * EV_TO_KCAL_MOL:.3f} kcal/mol"

    def describe(self) -> str:
        """In words, e.g. "validation relative-energy RMSE (…) + 0.1 Å × forces RMSE"."""
        parts = []
        for k, (w, key) in enumerate(self.terms):
            word = _WORDS.get(key.rsplit("/", 1)[-1], key)
            unit = " Å" if key.endswith(("forces_rmse", "forces_mae")) else ""
            weight = "" if w == 1.0 else f"{w:g}{unit} × "
            parts.append(("validation " if k == 0 else "") + weight + word)
        return " + ".join(parts)


def resolve(setting: str, heads: list[str], profile: Callable[[], dict[str, dict]],
            forces_weight: float) -> Selection:
    """The `Selection` for `trainer.early_stopping_metric`; `profile()` (called only for `auto`)
    gives, per fidelity, what `validation_profile` counts."""
    terms = []
    for part in setting.split("+"):
        weight, _, key = part.strip().rpartition("*")
        try:
            w = float(weight) if weight else 1.0
        except ValueError:
            raise UserError(f"trainer.early_stopping_metric={setting!r}: {weight!r} is not a number") from None
        if not key.startswith("val/"):
            raise UserError(f"trainer.early_stopping_metric={setting!r}: terms are validation keys "
                            "(val/loss, val/<fidelity>/energy_rmse, …) or val/<fidelity>/auto")
        terms += _auto(key, w, heads, profile, forces_weight) if key.endswith(f"/{AUTO}") else [(w, key)]
    return Selection(tuple(terms))


def _auto(key: str, weight: float, heads: list[str], profile, forces_weight: float) -> list[tuple[float, str]]:
    fid = key[len("val/"):-len(f"/{AUTO}")]
    if fid not in heads:
        raise UserError(f"trainer.early_stopping_metric={key!r}: the run's fidelities are {', '.join(heads)}")
    counts = profile().get(fid, {})
    relative = counts.get("with_sibling", 0) >= max(2, RELATIVE_SHARE * counts.get("structures", 0))
    terms = [(weight, f"val/{fid}/{'relative_energy_rmse' if relative else 'energy_rmse'}")]
    if counts.get("forces", 0) and forces_weight > 0:
        terms.append((weight * forces_weight, f"val/{fid}/forces_rmse"))
    return terms


def validation_profile(batches: Iterable, heads: list[str]) -> dict[str, dict]:
    """Per fidelity: validation structures with an energy (`structures`), those whose molecule
    has another one there (`with_sibling`), and those with forces (`forces`). Labels only."""
    names: dict[str, Counter] = {fid: Counter() for fid in heads}
    out = {fid: {"structures": 0, "with_sibling": 0, "forces": 0} for fid in heads}
    for batch in batches:
        named = len(batch.molecule) == batch.n_structures
        for fid in heads:
            mask = batch.energy_mask[fid].tolist()
            out[fid]["structures"] += sum(mask)
            out[fid]["forces"] += int(batch.forces_mask[fid].sum())
            if named:
                names[fid].update(m for m, keep in zip(batch.molecule, mask) if keep and m)
    for fid in heads:
        out[fid]["with_sibling"] = sum(n for n in names[fid].values() if n > 1)
    return out
