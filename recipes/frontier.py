"""The frontier table: models and exact methods against CCSD(T)/cc-pVDZ on molecules no training
split holds (data_pipelines/frontier/: 5-7 heavy atoms), by heavy-atom count.

    python -m foundation.recipes.frontier --split frontier_val --models ani-1x ani-1x-ccsdt
    python -m foundation.recipes.frontier --split frontier_test --json docs/frontier/test.json

The exact methods (ωB97X/6-31G*, MP2/cc-pVDZ) are the labels themselves, scored like a model: the
error a model cannot beat by learning that method perfectly. Only structures with a CCSD(T) label
count, and an exact method's row only those it also labelled. Reads the label folder directly, so
it reports what a labelling run has finished so far.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from foundation.errors import entry_point
from foundation.evaluation import metrics
from foundation.evaluation.per_molecule import by_size, heavy_atoms
from foundation.files import write_json

from .common import CC, DFT, embedded_samples

MP2 = "mp2_ccpvdz"
LABELS = Path(__file__).resolve().parent.parent / "data_pipelines" / "frontier" / "labels"
EXACT = {"exact ωB97X/6-31G*": DFT, "exact MP2/cc-pVDZ": MP2}


def frontier_samples(split: str, labels: Path | None = None) -> list:
    """The CCSD(T)-labelled structures of `split`: from a label folder (default: the repository's
    frontier labels, what the labeller has finished so far) or, where there is none (an installed
    wheel), from the embedded shards."""
    labels = labels or (LABELS if LABELS.exists() else None)
    if labels is None:
        return embedded_samples(split, CC)
    from foundation.pipelines.label.export import load_samples

    by_split, _ = load_samples(labels)
    return [s for s in by_split.get(split, []) if CC in s.energies]


def method_rows(samples: Sequence, fidelity: str) -> list[dict[str, Any]]:
    """`evaluate`-style structure rows of a label set scored against the CCSD(T) labels."""
    from foundation.data.molecules import hill_formula

    return [{"molecule": s.molecule, "formula": hill_formula(s.numbers), "energy_ref_ev": s.energies[CC],
             "energy_pred_ev": s.energies[fidelity]} for s in samples if fidelity in s.energies]


def model_rows(model_name: str, samples: Sequence) -> list[dict[str, Any]]:
    from foundation.evaluation.evaluate import evaluate
    from foundation.loading import load_model

    model = load_model(model_name).eval()
    head = CC if CC in model.heads else None
    return evaluate(model, samples, head=head, fidelity=CC, include_forces=False)["structures"]


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Relative-energy RMSE over every molecule (each molecule's mean removed), by heavy-atom
    count, and per molecule."""
    groups = [r["molecule"] for r in rows]
    per_molecule = {}
    for name in sorted(set(groups)):
        mine = [r for r in rows if r["molecule"] == name]
        per_molecule[name] = {"heavy_atoms": heavy_atoms(mine[0]["formula"]), "n_structures": len(mine),
                              "relative_energy_rmse_kcal_mol": _rmse(mine)}
    return {"n_molecules": len(per_molecule), "n_structures": len(rows),
            "relative_energy_rmse_kcal_mol": _rmse(rows), "by_heavy_atoms": by_size(rows),
            "per_molecule": per_molecule}


def _rmse(rows: list[dict[str, Any]]) -> float:
    if not rows:
        return float("nan")
    return metrics.relative_energy_rmse_kcal_mol(np.array([r["energy_pred_ev"] for r in rows]),
                                                 np.array([r["energy_ref_ev"] for r in rows]),
                                                 [r["molecule"] for r in rows])


def frontier_table(models: Sequence[str] | Mapping[str, str], split: str, labels: Path | None = None) -> dict[str, Any]:
    """Rows of the exact methods and of each model (a name or file; a mapping gives each row its label)."""
    samples = frontier_samples(split, labels)
    if not samples:
        from foundation.errors import UserError

        raise UserError(f"no CCSD(T)-labelled structure of split {split!r} in {labels or LABELS}")
    rows = {name: summarise(method_rows(samples, fid)) for name, fid in EXACT.items()}
    named = models if isinstance(models, Mapping) else {name: name for name in models}
    rows |= {label: summarise(model_rows(str(model), samples)) for label, model in named.items()}
    return {"split": split, "reference": CC, "rows": rows}


def format_table(table: dict[str, Any]) -> str:
    sizes = sorted({r["heavy_atoms"] for row in table["rows"].values() for r in row["by_heavy_atoms"]})
    width = max(len(name) for name in table["rows"])
    head = f"{'':<{width}}  {'all':>6}" + "".join(f"  {f'{n} heavy':>8}" for n in sizes)
    lines = [f"{table['split']}: relative-energy RMSE vs CCSD(T)/cc-pVDZ, kcal/mol", head]
    for name, row in table["rows"].items():
        size_rmse = {r["heavy_atoms"]: r["relative_energy_rmse_kcal_mol"] for r in row["by_heavy_atoms"]}
        lines.append(f"{name:<{width}}  {row['relative_energy_rmse_kcal_mol']:>6.2f}"
                     + "".join(f"  {size_rmse.get(n, float('nan')):>8.2f}" for n in sizes))
    counts = table["rows"][next(iter(EXACT))]
    lines.append(f"({counts['n_molecules']} molecules; structures per size: "
                 + ", ".join(f"{r['heavy_atoms']}: {r['n_structures']}" for r in counts["by_heavy_atoms"]) + ")")
    return "\n".join(lines)


@entry_point
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="frontier_val", help="frontier_val (choices) or frontier_test (report)")
    parser.add_argument("--models", nargs="*", default=["ani-1x", "ani-1x-ccsdt"], help="registry names or files")
    parser.add_argument("--labels", type=Path, help="a label folder (default: the frontier set's)")
    parser.add_argument("--json", type=Path, help="write the table here")
    args = parser.parse_args(argv)
    table = frontier_table(args.models, args.split, args.labels)
    print(format_table(table))
    if args.json:
        write_json(args.json, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
