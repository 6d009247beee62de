"""The evaluation report: one table of models on the held-out CC molecules, parity plots, the
learning curve (CC error against the number of CC training structures, scratch vs transfer), and
a Markdown report in the run folder.

    python -m foundation.recipes.report --model dft=runs/demo/pretrain --model finetune=runs/demo/finetune \\
        --out runs/demo/report [--learning-curve runs/demo/pretrain/model.safetensors]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from foundation.errors import entry_point
from foundation.recipes.common import CC, embedded_samples, evaluate_models, markdown_table, write_atomic
from foundation.files import write_json
from foundation.recipes.rerun import Rerun, add_fresh_argument


def parity_plot(results: dict[str, dict], path: Path) -> Path:
    """Predicted vs reference relative energies (each formula's mean removed), one panel per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(3.2 * len(results), 3.3), squeeze=False)
    for ax, (label, metrics) in zip(axes[0], results.items()):
        ref, pred = _relative(metrics["structures"])
        lim = [min(ref.min(), pred.min()) - 1, max(ref.max(), pred.max()) + 1]
        ax.plot(lim, lim, color="0.6", lw=0.8)
        ax.scatter(ref, pred, s=8)
        ax.set(title=f"{label}\nRMSE {metrics['relative_energy_rmse_kcal_mol']:.2f} kcal/mol",
               xlabel="CCSD(T) rel. energy (kcal/mol)", ylabel="predicted (kcal/mol)", xlim=lim, ylim=lim)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _relative(rows: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    from foundation.units import EV_TO_KCAL_MOL

    formulas = np.array([r["formula"] for r in rows])
    ref = np.array([r["energy_ref_ev"] for r in rows])
    pred = np.array([r["energy_pred_ev"] for r in rows])
    for f in set(formulas):
        m = formulas == f
        ref[m] -= ref[m].mean()
        pred[m] -= pred[m].mean()
    return ref * EV_TO_KCAL_MOL, pred * EV_TO_KCAL_MOL


def write_report(results: dict[str, dict], out_dir: Path, curve: list[dict] | None = None,
                 notes: str = "", per_molecule_of: str | None = None) -> Path:
    """report.md, results.json, parity.png (and learning_curve.png) in `out_dir`; with
    `per_molecule_of` (a label of `results`), that model's errors per test molecule too."""
    out_dir.mkdir(parents=True, exist_ok=True)
    parity_plot(results, out_dir / "parity.png")
    table = markdown_table(results)
    n_test = next(iter(results.values()))["n_structures"]
    molecules = sorted({r["molecule"] for r in next(iter(results.values()))["structures"]})
    parts = [
        "# Transfer learning toward CCSD(T): evaluation report", "",
        f"Held-out test molecules ({len(molecules)}): {', '.join(molecules)}; {n_test} structures with "
        "CCSD(T)/cc-pVDZ energies. Relative energies remove each formula's mean (conformer and isomer "
        "energies, the quantity ANI-1ccx reports). Forces are compared with the DFT forces.", "",
        table, "", "![parity](parity.png)", ""]
    if curve:
        from foundation.recipes.learning_curve import curve_plot

        curve_plot(curve, out_dir / "learning_curve.png")
        parts += ["## Learning curve", "", "| CC training | of them structures | model | rel. E RMSE (kcal/mol) |",
                  "|---:|---:|---|---:|"]
        parts += [f"| {r['n']} {r['axis']} | {r['n_structures']} | {r['model']} | "
                  f"{r['relative_energy_rmse_kcal_mol']:.3f} |" for r in curve]
        parts += ["", "![learning curve](learning_curve.png)", ""]
    if per_molecule_of:
        parts += _per_molecule_section(per_molecule_of, results[per_molecule_of])
    if notes:
        parts += [notes, ""]
    write_json(out_dir / "results.json", {"models": {k: {m: v for m, v in r.items() if m != "structures"}
                                                     for k, r in results.items()}, "learning_curve": curve or []})
    return write_atomic(out_dir / "report.md", "\n".join(parts))


def _per_molecule_section(label: str, metrics: dict) -> list[str]:
    from foundation.evaluation.per_molecule import per_molecule

    lines = [f"## Errors per test molecule: {label}", "", "| molecule | structures | rel. E RMSE (kcal/mol) | E MAE (kcal/mol) |",
             "|---|---:|---:|---:|"]
    lines += [f"| {r['molecule']} | {r['n_structures']} | {r['relative_energy_rmse_kcal_mol']:.3f} | "
              f"{r['energy_mae_kcal_mol']:.3f} |" for r in per_molecule(metrics["structures"])]
    return lines + [""]


@entry_point
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Evaluate models on the held-out CC molecules and write a report.")
    parser.add_argument("--model", action="append", required=True, metavar="LABEL=PATH",
                        help="a model file, run directory or registry name, with its label in the table")
    parser.add_argument("--out", type=Path, required=True)
    add_fresh_argument(parser)
    args = parser.parse_args(argv)
    rerun = Rerun(args.out, argv, args.fresh)  # typed again: the finished report, or a fresh one
    if not rerun.done:
        models = dict(m.split("=", 1) for m in args.model)
        results = evaluate_models(models, embedded_samples("test", CC), CC)
        summary = f"{markdown_table(results)}\nreport: {write_report(results, args.out)}"
        print(summary)
        rerun.finish(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
