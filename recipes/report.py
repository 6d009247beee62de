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

from foundation.recipes.common import CC, embedded_samples, evaluate_models, markdown_table, train, write_atomic, write_json

CURVE_FRACTIONS = (0.125, 0.25, 0.5, 1.0)


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


def learning_curve(pretrained: str, out_dir: Path, fractions=CURVE_FRACTIONS, seed: int = 0,
                   overrides: list[str] | None = None) -> list[dict]:
    """Train scratch and fine-tuned models on growing random subsets of the CC training structures
    (written as real shard sets) and evaluate each on the held-out CC molecules."""
    from foundation.data.shards.manifest import write_manifest
    from foundation.data.shards.writer import write_shards

    train_cc = embedded_samples("train", CC)
    val, test = embedded_samples("val", CC), embedded_samples("test", CC)
    order = np.random.default_rng(seed).permutation(len(train_cc))
    rows = []
    for fraction in fractions:
        n = max(8, int(round(fraction * len(train_cc))))
        data_dir = out_dir / f"cc_{n}"
        if not (data_dir / "manifest.json").exists():
            shards = write_shards([train_cc[i] for i in sorted(order[:n])], data_dir, "train", max_samples_per_shard=50)
            shards += write_shards(val, data_dir, "val") + write_shards(test, data_dir, "test")
            write_manifest(data_dir, shards, command=f"foundation.recipes.report learning curve, {n} CC structures, seed {seed}")
        common = ["data=shards", f"data.path={data_dir}", f"data.fidelities=[{CC}]", f"out_dir={out_dir}",
                  "logger.progress_bar=false", *(overrides or [])]
        models = {
            "scratch": train("scratch", common + [f"name=scratch_{n}"], quiet=True).model_path,
            "transfer": train("finetune", common + [f"name=finetune_{n}", f"trainer.init_from={pretrained}"],
                              quiet=True).model_path,
        }
        for label, metrics in evaluate_models(models, test, CC).items():
            rows.append({"n_cc_train": n, "model": label,
                         "relative_energy_rmse_kcal_mol": metrics["relative_energy_rmse_kcal_mol"],
                         "energy_rmse_kcal_mol": metrics["energy_rmse_kcal_mol"]})
        print(f"learning curve: {n} CC structures: " + ", ".join(
            f"{r['model']} {r['relative_energy_rmse_kcal_mol']:.2f}" for r in rows[-2:]) + " kcal/mol", flush=True)
    return rows


def curve_plot(rows: list[dict], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 3.4))
    for label in sorted({r["model"] for r in rows}):
        pts = sorted((r["n_cc_train"], r["relative_energy_rmse_kcal_mol"]) for r in rows if r["model"] == label)
        ax.plot(*zip(*pts), marker="o", label=label)
    ax.axhline(1.0, color="0.6", ls="--", lw=0.8, label="chemical accuracy")
    ax.set(xscale="log", xlabel="CC training structures", ylabel="rel. energy RMSE (kcal/mol)",
           title="Held-out CC molecules")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(results: dict[str, dict], out_dir: Path, curve: list[dict] | None = None,
                 notes: str = "") -> Path:
    """report.md, results.json, parity.png (and learning_curve.png) in `out_dir`."""
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
        curve_plot(curve, out_dir / "learning_curve.png")
        parts += ["## Learning curve", "", "| CC training structures | model | rel. E RMSE (kcal/mol) |",
                  "|---:|---|---:|"]
        parts += [f"| {r['n_cc_train']} | {r['model']} | {r['relative_energy_rmse_kcal_mol']:.3f} |" for r in curve]
        parts += ["", "![learning curve](learning_curve.png)", ""]
    if notes:
        parts += [notes, ""]
    write_json(out_dir / "results.json", {"models": {k: {m: v for m, v in r.items() if m != "structures"}
                                                     for k, r in results.items()}, "learning_curve": curve or []})
    return write_atomic(out_dir / "report.md", "\n".join(parts))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Evaluate models on the held-out CC molecules and write a report.")
    parser.add_argument("--model", action="append", required=True, metavar="LABEL=PATH",
                        help="a model file, run directory or registry name, with its label in the table")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--learning-curve", metavar="PRETRAINED", help="also train the learning curve from this model")
    args = parser.parse_args(argv)
    models = dict(m.split("=", 1) for m in args.model)
    results = evaluate_models(models, embedded_samples("test", CC), CC)
    curve = learning_curve(args.learning_curve, args.out / "curve") if args.learning_curve else None
    path = write_report(results, args.out, curve)
    print(markdown_table(results))
    print(f"report: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
