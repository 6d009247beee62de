"""Errors per molecule and by molecule size: the same model can be ten times worse on one molecule
than on another, and a model that learned small molecules can lose on larger ones; the overall
RMSE hides both. Rows come from `evaluate(...)["structures"]`; a structure belongs to its
`molecule` (the reader's molecule key or the user's) or, without one, its formula.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from foundation.evaluation import metrics


def per_molecule(structures: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per molecule, worst relative-energy RMSE first: molecule, formula, heavy_atoms,
    n_structures, relative_energy_rmse_kcal_mol (NaN for a single structure), energy_mae_kcal_mol
    and, when forces were compared, forces_mae_ev_per_a."""
    groups: dict[str, list[dict]] = {}
    for row in structures:
        groups.setdefault(row.get("molecule") or row["formula"], []).append(row)
    out = []
    for name, rows in groups.items():
        pred = np.array([r["energy_pred_ev"] for r in rows])
        ref = np.array([r["energy_ref_ev"] for r in rows])
        entry = {"molecule": name, "formula": rows[0]["formula"], "heavy_atoms": heavy_atoms(rows[0]["formula"]),
                 "n_structures": len(rows),
                 "relative_energy_rmse_kcal_mol": metrics.relative_energy_rmse_kcal_mol(pred, ref, [name] * len(rows)),
                 "energy_mae_kcal_mol": metrics.energy_mae_kcal_mol(pred, ref)}
        with_forces = [r for r in rows if "forces_pred_ev_per_a" in r]
        if with_forces:
            entry["forces_mae_ev_per_a"] = metrics.forces_mae(
                np.concatenate([r["forces_pred_ev_per_a"] for r in with_forces]),
                np.concatenate([r["forces_ref_ev_per_a"] for r in with_forces]))
        out.append(entry)
    return sorted(out, key=lambda e: (-_or_minus_one(e["relative_energy_rmse_kcal_mol"]), e["molecule"]))


def heavy_atoms(formula: str) -> int:
    """Atoms other than hydrogen in a formula such as "C4H10O"."""
    from ase.formula import Formula

    return sum(n for symbol, n in Formula(formula).count().items() if symbol != "H")


def by_size(structures: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per heavy-atom count, smallest first: heavy_atoms, n_molecules, n_structures and
    relative_energy_rmse_kcal_mol pooled over the molecules of that size (each molecule's own mean
    removed, as in `metrics.relative_energy_rmse_kcal_mol`)."""
    sizes: dict[int, list[dict]] = {}
    for row in structures:
        sizes.setdefault(heavy_atoms(row["formula"]), []).append(row)
    out = []
    for size in sorted(sizes):
        rows = sizes[size]
        groups = [r.get("molecule") or r["formula"] for r in rows]
        out.append({"heavy_atoms": size, "n_molecules": len(set(groups)), "n_structures": len(rows),
                    "relative_energy_rmse_kcal_mol": metrics.relative_energy_rmse_kcal_mol(
                        np.array([r["energy_pred_ev"] for r in rows]),
                        np.array([r["energy_ref_ev"] for r in rows]), groups)})
    return out


def format_by_size(rows: list[dict[str, Any]]) -> str:
    lines = ["  heavy atoms  molecules  structures  rel. E RMSE (kcal/mol)"]
    for r in rows:
        rel = r["relative_energy_rmse_kcal_mol"]
        lines.append(f"  {r['heavy_atoms']:>11}  {r['n_molecules']:>9}  {r['n_structures']:>10}  "
                     f"{'–' if math.isnan(rel) else f'{rel:.3f}':>22}")
    return "\n".join(lines)


def format_per_molecule(rows: list[dict[str, Any]]) -> str:
    """A plain-text table, one line per molecule."""
    forces = any("forces_mae_ev_per_a" in r for r in rows)
    width = max([8] + [len(r["molecule"]) for r in rows])
    head = f"  {'molecule':<{width}}  {'heavy':>5}  {'n':>4}  {'rel. E RMSE':>11}  {'E MAE':>9}" + ("  F MAE" if forces else "")
    lines = [head, f"  {'':<{width}}  {'atoms':>5}  {'':>4}  {'kcal/mol':>11}  {'kcal/mol':>9}" + ("  eV/Å" if forces else "")]
    for r in rows:
        rel = r["relative_energy_rmse_kcal_mol"]
        line = (f"  {r['molecule']:<{width}}  {r['heavy_atoms']:>5}  {r['n_structures']:>4}  {'–' if math.isnan(rel) else f'{rel:.3f}':>11}"
                f"  {r['energy_mae_kcal_mol']:>9.3f}")
        if forces:
            line += f"  {r['forces_mae_ev_per_a']:.4f}" if "forces_mae_ev_per_a" in r else "  –"
        lines.append(line)
    return "\n".join(lines)


def _or_minus_one(value: float) -> float:
    return -1.0 if math.isnan(value) else value
