"""What the next CC labels are worth: the test-molecule error against the amount of CC training
data, from several starts (the published ANI-1x, our small DFT pretraining, nothing), along two
axes: the number of CC *structures* (random subsets of all training structures) and the number
of CC *molecules* (random subsets of the training molecules, all their structures). Each subset is
written as a real shard set beside the validation and test molecules, which never change.

    python -m foundation.recipes.learning_curve --start "ANI-1x=delta:ani-1x" --start "scratch=scratch:" \\
        --out runs/curve [--fresh] [overrides…]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from foundation.errors import entry_point
from foundation.recipes.common import CC, embedded_samples, evaluate_models
from foundation.files import write_json
from foundation.recipes.jobs import train_all
from foundation.recipes.rerun import Rerun, add_fresh_argument
from foundation.recipes.transfer import is_ensemble

FRACTIONS = (0.125, 0.25, 0.5, 1.0)
AXES = ("structures", "molecules")


def subsets(samples: list, axis: str, fractions: Sequence[float] = FRACTIONS, seed: int = 0) -> list[tuple[int, list]]:
    """[(n, samples)] growing nested subsets: n structures, or all structures of n molecules."""
    rng = np.random.default_rng(seed)
    if axis == "structures":
        order = rng.permutation(len(samples))
        sizes = sorted({max(8, int(round(f * len(samples)))) for f in fractions})
        return [(n, [samples[i] for i in sorted(order[:n])]) for n in sizes]
    names = sorted({s.molecule for s in samples})
    order = [names[i] for i in rng.permutation(len(names))]
    sizes = sorted({max(2, int(round(f * len(names)))) for f in fractions})
    return [(n, [s for s in samples if s.molecule in set(order[:n])]) for n in sizes]


def shard_set(folder: Path, train: list, val: list, test: list) -> Path:
    from foundation.data import write_manifest, write_shards

    if not (folder / "manifest.json").exists():
        shards = write_shards(train, folder, "train", max_samples_per_shard=50)
        shards += write_shards(val, folder, "val") + write_shards(test, folder, "test")
        write_manifest(folder, shards, command=f"foundation.recipes.learning_curve: {folder.name}")
    return folder


def learning_curve(starts: dict[str, tuple[str, str | None]], out_dir: Path, axes: Sequence[str] = AXES,
                   fractions: Sequence[float] = FRACTIONS, seed: int = 0, overrides: Sequence[str] = (),
                   split: str = "test") -> list[dict]:
    """Rows {axis, n, n_structures, model, relative_energy_rmse_kcal_mol, energy_rmse_kcal_mol};
    `starts` maps a label to (recipe, model to start from or None). All trainings run side by side
    (`foundation.recipes.jobs`); the whole training set, the last point of every axis, is trained once.
    Scored on `split`: the embedded test molecules, or the frontier's (`frontier_test`)."""
    from foundation.recipes.transfer import validation_samples

    train_cc = embedded_samples("train", CC)
    val, test = embedded_samples("val", CC), embedded_samples("test", CC)
    scored = validation_samples(split)
    member = {label: ["trainer.init_member=0"] if source and is_ensemble(source) else []
              for label, (_, source) in starts.items()}
    points, jobs, whole_index = [], [], None
    for axis in axes:
        for n, subset in subsets(train_cc, axis, fractions, seed):
            whole = len(subset) == len(train_cc)
            if whole and whole_index is not None:  # the same data as another axis's last point
                points.append((axis, n, len(subset), whole_index))
                continue
            data = shard_set(out_dir / f"{axis}_{n}", subset, val, test)
            common = ["data=shards", f"data.path={data}", f"data.fidelities=[{CC}]", f"out_dir={out_dir}",
                      "logger.progress_bar=false", *overrides]
            index = {label: len(jobs) + k for k, label in enumerate(starts)}
            jobs += [(recipe, source, [*common, f"name={axis}_{n}_{_slug(label)}", *member[label]])
                     for label, (recipe, source) in starts.items()]
            points.append((axis, n, len(subset), index))
            if whole:
                whole_index = index
    print(f"learning curve: {len(jobs)} trainings", flush=True)
    paths = [r.model_path for r in train_all(jobs)]
    rows = []
    for axis, n, n_structures, index in points:
        scores = evaluate_models({label: paths[k] for label, k in index.items()}, scored, CC)
        rows += [{"axis": axis, "n": n, "n_structures": n_structures, "model": label,
                  "relative_energy_rmse_kcal_mol": m["relative_energy_rmse_kcal_mol"],
                  "energy_rmse_kcal_mol": m["energy_rmse_kcal_mol"]} for label, m in scores.items()]
        print(f"learning curve: {n} CC {axis}: " + ", ".join(
            f"{r['model']} {r['relative_energy_rmse_kcal_mol']:.2f}" for r in rows[-len(starts):]) + " kcal/mol",
            flush=True)
    return rows


def curve_plot(rows: list[dict], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    axes_present = [a for a in AXES if any(r.get("axis", "structures") == a for r in rows)]
    fig, panels = plt.subplots(1, len(axes_present), figsize=(4.5 * len(axes_present), 3.4), squeeze=False)
    for ax, axis in zip(panels[0], axes_present):
        mine = [r for r in rows if r.get("axis", "structures") == axis]
        for label in dict.fromkeys(r["model"] for r in mine):
            pts = sorted((r["n"], r["relative_energy_rmse_kcal_mol"]) for r in mine if r["model"] == label)
            ax.plot(*zip(*pts), marker="o", label=label)
        ax.axhline(1.0, color="0.6", ls="--", lw=0.8, label="chemical accuracy")
        ax.set(xscale="log", yscale="log", xlabel=f"CC training {axis}", ylabel="rel. energy RMSE (kcal/mol)",
               title="Held-out CC test molecules")
        ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _slug(label: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in label.lower()).strip("_")


def _start(text: str) -> tuple[str, tuple[str, str | None]]:
    label, _, spec = text.partition("=")
    recipe, _, source = spec.partition(":")
    return label, (recipe, source or None)


@entry_point
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", action="append", required=True, metavar="LABEL=RECIPE:MODEL",
                        help="a curve: its label, the recipe, the model it starts from (empty: none)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--axis", action="append", choices=AXES, help="default: both")
    parser.add_argument("--split", default="test", help="the molecules scored: test (embedded) or frontier_test")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every training")
    add_fresh_argument(parser)
    args = parser.parse_args(argv)
    rerun = Rerun(args.out, argv, args.fresh)  # typed again: the finished result, or a fresh run
    if not rerun.done:
        rows = learning_curve(dict(map(_start, args.start)), args.out, args.axis or AXES, overrides=args.overrides,
                              split=args.split)
        write_json(args.out / "learning_curve.json", rows)
        summary = f"plot: {curve_plot(rows, args.out / 'learning_curve.png')}"
        print(summary)
        rerun.finish(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
