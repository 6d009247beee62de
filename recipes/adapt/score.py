"""Score an adapt run on conformers it never produced: the independent check of docs/adapt.md.

    python -m foundation.recipes.adapt.score --labels data_pipelines/adapt_eval/labels \
        --run adapted/ [--models ani-1x ...] [--out score.json]

The run's own report scores its held-out frames, which it sampled itself (its MD, its start
model). Here the conformers come from elsewhere (`foundation.pipelines.frontier.build`: MMFF
Langevin at 300-600 K, labelled at CCSD(T) on their own). Scored: the run's start, each round's
model against the CPU-hours spent when it was written (the independent curve), the final model,
and any other `--models`; relative-energy RMSE within each molecule, kcal/mol, per molecule and
over all. Printed as a table and written as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from foundation.errors import UserError, entry_point
from foundation.files import write_json
from foundation.recipes.adapt.tuning import CC, heldout_errors


def conformers(labels: Path) -> list:
    """Every conformer of `labels` with a CCSD(T) energy, whatever its split."""
    from foundation.pipelines.label.export import load_samples

    found = [s for split in load_samples(labels)[0].values() for s in split if CC in s.energies]
    if not found:
        raise UserError(f"{labels}: no CCSD(T) ({CC}) labels to score on")
    return found


def run_models(run: Path) -> list[tuple[str, str, float | None]]:
    """(name, model, CPU-hours) of a run: its start, each round's model, the final model."""
    report = run / "report.json"
    if not report.exists():
        raise UserError(f"{run}: no report.json (the run has not finished)")
    data = json.loads(report.read_text())
    out = [("start", data["start"], 0.0)]
    for r in data["rounds"]:
        path = run / "rounds" / f"round-{r['round']}" / "model.safetensors"
        if path.exists():
            out.append((f"round {r['round']}", str(path), r["cpu_seconds"] / 3600))
    out.append(("adapted", str(run / "model.safetensors"), data["spent_cpu_hours"]))
    return out


def score(labels: Path, models: list[tuple[str, str, float | None]]) -> dict:
    from foundation.loading import load_pretrained

    samples = conformers(labels)
    rows = []
    for name, model, hours in models:
        errors = heldout_errors(load_pretrained(model, "cpu"), samples)
        rows.append({"name": name, "model": model, "cpu_hours": hours, "all_kcal_mol": errors["all"],
                     "molecules_kcal_mol": errors["molecules"]})
    return {"labels": str(labels), "conformers": errors["structures"], "models": rows,
            "measure": "relative-energy RMSE against CCSD(T)/cc-pVDZ within each molecule, kcal/mol"}


def table(result: dict) -> str:
    molecules = list(result["conformers"])
    lines = ["| model | CPU-hours | all | " + " | ".join(f"{m} ({result['conformers'][m]})" for m in molecules) + " |",
             "|---|---:|---:|" + "---:|" * len(molecules)]
    for r in result["models"]:
        hours = "" if r["cpu_hours"] is None else f"{r['cpu_hours']:.2f}"
        lines.append(f"| {r['name']} | {hours} | {r['all_kcal_mol']:.2f} | "
                     + " | ".join(f"{r['molecules_kcal_mol'][m]:.2f}" for m in molecules) + " |")
    return "\n".join(lines)


@entry_point
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=Path, required=True, help="a labelling folder with CCSD(T) labels")
    parser.add_argument("--run", type=Path, default=None, help="an adapt run's --out folder")
    parser.add_argument("--models", nargs="*", default=[], help="other models to score (names or files)")
    parser.add_argument("--out", type=Path, default=None, help="write the scores as JSON here")
    args = parser.parse_args(argv)
    models = (run_models(args.run) if args.run else []) + [(m, m, None) for m in args.models]
    if not models:
        raise UserError("give --run DIR or --models: nothing to score")
    result = score(args.labels, models)
    print(table(result))
    if args.out:
        print(f"-> {write_json(args.out, result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
