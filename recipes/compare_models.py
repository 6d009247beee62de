"""The same transfer recipe with different architectures: pretrain on the embedded DFT data, then
fine-tune on its CC data, for each model config; evaluate on the held-out CC molecules and record
each one's training time.

    python -m foundation.recipes.compare_models --out runs/compare [--steps 1500] [--model ani --model painn] [--fresh]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from foundation.cli.errors import entry_point
from foundation.recipes.common import CC, embedded_samples, evaluate_models, markdown_table, train
from foundation.recipes.report import write_report
from foundation.recipes.rerun import Rerun, add_fresh_argument

COLUMNS = [("relative_energy_rmse_kcal_mol", "rel. E RMSE (kcal/mol)"),
           ("energy_rmse_kcal_mol", "E RMSE (kcal/mol)"),
           ("forces_vs_dft_mae_ev_per_a", "F MAE vs DFT (eV/Å)"),
           ("training_seconds", "pretrain + finetune (s)")]


def run(models: list[str], out: Path, steps: int) -> dict:
    paths, seconds = {}, {}
    for name in models:
        base = [f"model={name}", f"out_dir={out}", "logger.progress_bar=false"]
        started = time.perf_counter()
        pre = train("pretrain", base + [f"name={name}_pretrain", f"trainer.max_steps={steps}"], quiet=True)
        # The finetune recipe freezes each architecture's own transfer default (trainer.freeze=[auto]):
        # the ANI-1ccx choice for ANI, the first interaction block for PaiNN.
        tuned = train("finetune", base + [f"name={name}_finetune", f"trainer.init_from={pre.model_path}"],
                      quiet=True)
        seconds[name] = time.perf_counter() - started
        paths[f"{name}: DFT-pretrained"], paths[f"{name}: finetune"] = pre.model_path, tuned.model_path
        print(f"{name}: pretrain + finetune in {seconds[name]:.0f} s", flush=True)
    results = evaluate_models(paths, embedded_samples("test", CC), CC)
    for label, metrics in results.items():
        metrics["training_seconds"] = round(seconds[label.split(":")[0]], 1)
    write_report(results, out / "report", notes=f"pretrain {steps} steps, then the finetune recipe; "
                 "training time on the machine that ran it.\n\n" + markdown_table(results, COLUMNS))
    print(markdown_table(results, COLUMNS))
    return results


@entry_point
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/compare"))
    parser.add_argument("--steps", type=int, default=1500, help="pretraining steps")
    parser.add_argument("--model", action="append", help="model configs (default: ani, painn)")
    add_fresh_argument(parser)
    args = parser.parse_args(argv)
    rerun = Rerun(args.out, argv, args.fresh)  # typed again: the finished result, or a fresh run
    if not rerun.done:
        results = run(args.model or ["ani", "painn"], args.out, args.steps)
        rerun.finish(f"{markdown_table(results, COLUMNS)}\n\nreport: {args.out / 'report' / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
