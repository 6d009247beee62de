"""The main job (`make demo`): pretrain on the embedded DFT data → transfer to the embedded CC
data with each recipe (finetune, multihead, delta, an ensemble) → evaluate on the held-out CC
molecules against the DFT model and a CC-from-scratch model, with the learning curve, and print
the table. Everything lands in `runs/demo/` (report/report.md, parity.png, learning_curve.png,
results.json).

    python -m foundation.recipes.demo [--out runs/demo] [--fast] [--no-learning-curve] [--members 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from foundation.recipes.common import CC, embedded_samples, evaluate_models, markdown_table, train
from foundation.recipes.report import learning_curve, write_report


def stage(title: str) -> float:
    print(f"\n== {title}", flush=True)
    return time.perf_counter()


def run(out: Path, fast: bool = False, curve: bool = True, members: int = 3) -> dict:
    from foundation.recipes import delta, ensemble

    base = [f"out_dir={out}", "logger.progress_bar=false"] + (["trainer.max_steps=300"] if fast else [])
    started = time.perf_counter()
    t = stage("1/7 pretrain on DFT (wB97X/6-31G* energies + forces)")
    pretrained = train("pretrain", base + ["name=pretrain"], quiet=True)
    done(pretrained, t)
    init = [f"trainer.init_from={pretrained.model_path}"]
    models = {"DFT-pretrained (wB97X head)": pretrained.model_path}

    t = stage("2/7 CC from scratch (the control, ANI-1ccx-R)")
    models["CC from scratch"] = done(train("scratch", base + ["name=scratch"], quiet=True), t)
    t = stage("3/7 fine-tune on CC (ANI-1ccx-style transfer)")
    models["transfer: finetune"] = done(train("finetune", base + ["name=finetune", *init], quiet=True), t)
    t = stage("4/7 multi-head fine-tune with DFT replay")
    models["transfer: multihead"] = done(train("multihead", base + ["name=multihead", *init], quiet=True), t)
    t = stage("5/7 delta-learning: CC - DFT on the frozen DFT model")
    models["transfer: delta"] = done(delta.run(pretrained.model_path, base + ["name=delta"], quiet=True), t)
    t = stage(f"6/7 ensemble of {members} fine-tuned members")
    ens = ensemble.run(members, "finetune", [pretrained.model_path], base + ["name=ensemble"], quiet=True)
    print(f"   done in {time.perf_counter() - t:.0f} s")
    models[f"transfer: finetune ensemble x{members}"] = ens["path"]

    stage("7/7 evaluate on the held-out CC molecules" + (" and train the learning curve" if curve else ""))
    results = evaluate_models(models, embedded_samples("test", CC), CC)
    rows = learning_curve(str(pretrained.model_path), out / "curve", overrides=base[2:]) if curve else None
    report = write_report(results, out / "report", rows, notes=f"Made by `python -m foundation.recipes.demo` in "
                          f"{time.perf_counter() - started:.0f} s.")
    print()
    print(markdown_table(results))
    print(f"\nreport: {report}  (total {time.perf_counter() - started:.0f} s)")
    return results


def done(result, started: float):
    print(f"   {result.status} at step {result.step} in {time.perf_counter() - started:.0f} s", flush=True)
    return result.model_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/demo"))
    parser.add_argument("--fast", action="store_true", help="a few hundred steps per stage: a smoke test")
    parser.add_argument("--no-learning-curve", action="store_true", help="skip the CC learning curve")
    parser.add_argument("--members", type=int, default=3, help="ensemble members")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    run(args.out, args.fast, not args.no_learning_curve, args.members)
    return 0


if __name__ == "__main__":
    sys.exit(main())
