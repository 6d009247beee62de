"""The main job (`make demo`): pretrain on the embedded DFT data → fine-tune on the embedded CC
data → evaluate on the held-out CC molecules, against the DFT model and a CC-from-scratch model,
and print the table. Everything lands in `runs/demo/` (report.md, parity.png, results.json).

    python -m recipes.demo [--out runs/demo] [--fast] [--learning-curve]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from recipes.common import CC, embedded_samples, evaluate_models, markdown_table, train
from recipes.report import learning_curve, write_report


def stage(title: str) -> float:
    print(f"\n== {title}", flush=True)
    return time.perf_counter()


def run(out: Path, fast: bool = False, curve: bool = False) -> dict:
    base = [f"out_dir={out}", "logger.progress_bar=false"] + (["trainer.max_steps=300"] if fast else [])
    started = time.perf_counter()
    t = stage("1/4 pretrain on DFT (wB97X/6-31G* energies + forces)")
    pretrained = train("pretrain", base + ["name=pretrain"], quiet=True)
    print(f"   {pretrained.status} at step {pretrained.step} in {time.perf_counter() - t:.0f} s -> {pretrained.model_path}")
    models = {"DFT-pretrained (wB97X head)": pretrained.model_path}

    runs = [("2/4 fine-tune on CC (transfer learning)", "ANI-1ccx-style transfer", "finetune",
             ["name=finetune", f"trainer.init_from={pretrained.model_path}"]),
            ("3/4 CC from scratch (control)", "CC from scratch", "scratch", ["name=scratch"])]
    for title, label, recipe, overrides in runs:
        t = stage(title)
        result = train(recipe, base + overrides, quiet=True)
        print(f"   {result.status} at step {result.step} in {time.perf_counter() - t:.0f} s")
        models[label] = result.model_path

    stage("4/4 evaluate on the held-out CC molecules")
    results = evaluate_models(models, embedded_samples("test", CC), CC)
    rows = learning_curve(str(pretrained.model_path), out / "curve") if curve else None
    report = write_report(results, out / "report", rows, notes=f"Made by `python -m recipes.demo` in "
                          f"{time.perf_counter() - started:.0f} s.")
    print()
    print(markdown_table(results))
    print(f"\nreport: {report}  (total {time.perf_counter() - started:.0f} s)")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/demo"))
    parser.add_argument("--fast", action="store_true", help="a few hundred steps per stage: a smoke test")
    parser.add_argument("--learning-curve", action="store_true", help="also train the CC learning curve")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    run(args.out, args.fast, args.learning_curve)
    return 0


if __name__ == "__main__":
    sys.exit(main())
