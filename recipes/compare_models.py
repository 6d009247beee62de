"""The same transfer recipe with different architectures: pretrain on the embedded DFT data, then
fine-tune on its CC data, for each model config; evaluate on the held-out CC molecules and record
each one's training time.

    python -m foundation.recipes.compare_models --out runs/compare [--steps 1500] [--model ani --model mace]
        [--budget mace=500] [--fresh] [overrides…]

The models are ANI, PaiNN and MACE (MACE when mace-torch is installed). `--budget MODEL=STEPS`
pretrains MODEL for fewer (or more) steps than `--steps`, e.g. the slower MACE on a small CPU;
the table's "pretrain steps" column says which budget each row had. Hydra overrides (e.g.
`experiment=smoke` for a seconds-long check) apply to every training; `--steps` and `--budget`
set the pretraining's `trainer.max_steps`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from foundation.errors import entry_point
from foundation.errors import UserError
from foundation.recipes.common import CC, embedded_samples, evaluate_models, markdown_table
from foundation.train.run import train
from foundation.recipes.report import write_report
from foundation.recipes.rerun import Rerun, add_fresh_argument

COLUMNS = [("relative_energy_rmse_kcal_mol", "rel. E RMSE (kcal/mol)"),
           ("energy_rmse_kcal_mol", "E RMSE (kcal/mol)"),
           ("forces_vs_dft_mae_ev_per_a", "F MAE vs DFT (eV/Å)"),
           ("pretrain_steps", "pretrain steps"),
           ("training_seconds", "pretrain + finetune (s)")]
MACE_HINT = "pip install 'foundation-mlip[mace]'"


def default_models() -> list[str]:
    """ANI and PaiNN, and MACE when its optional extra is installed."""
    from foundation.models.mace_torch import installed

    return ["ani", "painn", "mace"] if installed() else ["ani", "painn"]


def run(models: list[str], out: Path, steps: int, budget: dict[str, int] | None = None,
        overrides: list[str] | tuple = ()) -> dict:
    budget = budget or {}
    paths, seconds, pretrain_steps = {}, {}, {}
    for name in models:
        pretrain_steps[name] = budget.get(name, steps)
        base = [f"model={name}", f"out_dir={out}", "logger.progress_bar=false", *overrides]
        started = time.perf_counter()
        pre = train(base + [f"name={name}_pretrain", f"trainer.max_steps={pretrain_steps[name]}"], recipe="pretrain",
                    quiet=True)
        # The finetune recipe freezes each architecture's own transfer default (trainer.freeze=[auto]).
        tuned = train(base + [f"name={name}_finetune", f"trainer.init_from={pre.model_path}"], recipe="finetune",
                      quiet=True)
        seconds[name] = time.perf_counter() - started
        paths[f"{name}: DFT-pretrained"], paths[f"{name}: finetune"] = pre.model_path, tuned.model_path
        print(f"{name}: pretrain ({pretrain_steps[name]} steps) + finetune in {seconds[name]:.0f} s", flush=True)
    results = evaluate_models(paths, embedded_samples("test", CC), CC)
    for label, metrics in results.items():
        name = label.split(":")[0]
        metrics["training_seconds"] = round(seconds[name], 1)
        metrics["pretrain_steps"] = pretrain_steps[name]
    write_report(results, out / "report", notes=f"pretrain {steps} steps unless the column says otherwise, then "
                 "the finetune recipe; training time on the machine that ran it.\n\n"
                 + markdown_table(results, COLUMNS))
    print(markdown_table(results, COLUMNS))
    return results


def parse_budget(entries: list[str] | None, models: list[str]) -> dict[str, int]:
    budget = {}
    for entry in entries or []:
        name, _, steps = entry.partition("=")
        if not steps.isdigit() or int(steps) < 1:
            raise UserError(f"--budget {entry!r}: give MODEL=STEPS, e.g. --budget mace=500")
        if name not in models:
            raise UserError(f"--budget {entry!r}: {name!r} is not one of the models compared ({', '.join(models)})")
        budget[name] = int(steps)
    return budget


@entry_point
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/compare"))
    parser.add_argument("--steps", type=int, default=1500, help="pretraining steps")
    parser.add_argument("--model", action="append", help="model configs (default: ani, painn, and mace if installed)")
    parser.add_argument("--budget", action="append", metavar="MODEL=STEPS",
                        help="pretraining steps for one model instead of --steps (repeatable)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every training, e.g. experiment=smoke")
    add_fresh_argument(parser)
    args = parser.parse_args(argv)
    models = args.model or default_models()
    if not args.model and "mace" not in models:
        print(f"mace: not compared (mace-torch is not installed: {MACE_HINT})", flush=True)
    budget = parse_budget(args.budget, models)
    rerun = Rerun(args.out, argv, args.fresh)  # typed again: the finished result, or a fresh run
    if not rerun.done:
        results = run(models, args.out, args.steps, budget, args.overrides)
        rerun.finish(f"{markdown_table(results, COLUMNS)}\n\nreport: {args.out / 'report' / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
