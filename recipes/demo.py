"""The main job (`make demo`): how close to CCSD(T) each start gets on the held-out test molecules.

1. the published ANI-1x and ANI-1ccx, and our shipped ani-1x-ccsdt, evaluated as they are;
2. our own small DFT pretraining on the embedded ωB97X/6-31G* data, then fine-tuned on CC; with
   mace-torch installed, MACE the same way on a small budget (its rows say how many steps);
3. CC from scratch (the ANI-1ccx-R control);
4. ANI-1x → CC by each transfer recipe (finetune, multihead with DFT replay, delta on frozen
   ANI-1x), one member each, the recipe chosen on the *validation* molecules;
5. ANI-1x → CC as an ensemble: member k of ANI-1x transferred into member k by the chosen recipe;
6. the learning curves: test error against the number of CC structures and of CC molecules, from
   ANI-1x, from our small pretraining and from scratch;
7. the table on the test molecules, parity plots, the curves and the per-molecule errors of the
   ensemble, in `runs/demo/report/` (report.md, parity.png, learning_curve.png, results.json).

    python -m foundation.recipes.demo [--out runs/demo] [--fast] [--no-learning-curve] [--members 4] [--fresh]

Typed again, it prints the finished result at once when nothing changed, else moves the earlier
`runs/demo/` aside and runs afresh (`foundation.recipes.rerun`; `--fresh` always runs).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from foundation.errors import entry_point
from foundation.models.mace_torch import installed
from foundation.recipes.common import CC, embedded_samples, evaluate_models, markdown_table
from foundation.recipes.jobs import train_all
from foundation.recipes.report import write_report
from foundation.recipes.rerun import Rerun, add_fresh_argument

START = "ani-1x"  # the published foundation every transfer here starts from
# MACE learns more per structure but costs ~10x ANI's time per step on a CPU: here it gets a small
# budget (about 3 + 2 minutes of one core; ANI pretrains for 4,000 steps), said in its rows' labels.
MACE_STEPS = {"pretrain": 600, "finetune": 300}


def mace_budget(fast: bool, stage: str) -> list[str]:
    """The overrides of the demo's MACE `stage` (the fine-tune's model is the pretrained file; `--fast`:
    the tiny MACE, a few steps)."""
    model = ["model=mace", *(["experiment=smoke"] if fast else [])] if stage == "pretrain" else []
    return [*model, f"trainer.max_steps={30 if fast else MACE_STEPS[stage]}"]


def stage(title: str) -> float:
    print(f"\n== {title}", flush=True)
    return time.perf_counter()


def run(out: Path, fast: bool = False, curve: bool = True, members: int = 4) -> dict:
    from foundation.recipes import ensemble, learning_curve, transfer
    from foundation.recipes.frontier import format_table, frontier_table

    base = [f"out_dir={out}", "logger.progress_bar=false"] + (["trainer.max_steps=300"] if fast else [])
    mace = installed()  # the optional extra
    started = time.perf_counter()
    models = {"ANI-1x as published (wB97X head)": START, "ANI-1ccx as published (CCSD(T)*/CBS head)": "ani-1ccx",
              "ani-1x-ccsdt as shipped (8 members)": "ani-1x-ccsdt"}

    t = stage("1/5 our small pretraining on DFT (wB97X/6-31G* energies + forces), then fine-tuned on CC; "
              "beside it, CC from scratch (the control, ANI-1ccx-R)" + (", and MACE on a small budget" if mace else ""))
    jobs = [("pretrain", None, base + ["name=pretrain"]), ("scratch", None, base + ["name=scratch"])]
    if mace:
        jobs.append(("pretrain", None, base + mace_budget(fast, "pretrain") + ["name=mace_pretrain"]))
    pretrained, scratch, *mace_pretrained = train_all(jobs)
    models["ours: DFT-pretrained (wB97X head)"] = pretrained.model_path
    jobs = [("finetune", str(pretrained.model_path), base + ["name=finetune"])]
    if mace:
        jobs.append(("finetune", str(mace_pretrained[0].model_path),
                     base + mace_budget(fast, "finetune") + ["name=mace_finetune"]))
    finetuned, *mace_finetuned = train_all(jobs)
    models["ours: DFT-pretrained → CC finetune"] = finetuned.model_path
    models["CC from scratch"] = scratch.model_path
    if mace:
        mace_label = f"MACE ({MACE_STEPS['pretrain']} pretraining steps)"
        models[f"{mace_label}: DFT-pretrained (wB97X head)"] = mace_pretrained[0].model_path
        models[f"{mace_label} → CC finetune"] = mace_finetuned[0].model_path
    for label, result in (("pretrain", pretrained), ("finetune", finetuned), ("scratch", scratch),
                          *(("MACE pretrain", r) for r in mace_pretrained), *(("MACE finetune", r) for r in mace_finetuned)):
        print(f"   {label}: {result.status} at step {result.step}", flush=True)
    print(f"   done in {time.perf_counter() - t:.0f} s", flush=True)

    t = stage(f"2/5 {START} → CC by each recipe (member 0), chosen on the validation molecules")
    compared = transfer.compare(START, transfer.CANDIDATES, base)
    chosen = transfer.choose(compared)
    for recipe, run_ in compared.items():
        models[f"ANI-1x → CC: {recipe} (member 0)"] = run_["model"]
    print("   validation rel. E RMSE: " + ", ".join(
        f"{r} {v['validation'][transfer.METRIC]:.2f}" for r, v in compared.items())
        + f" kcal/mol; chosen: {chosen} ({time.perf_counter() - t:.0f} s)", flush=True)

    t = stage(f"3/5 {START} → CC ensemble: {members} members by {chosen}, member k from member k")
    ens = ensemble.run(members, chosen, [START], base + ["name=ensemble"], quiet=True)
    ensemble_label = f"ANI-1x → CC: {chosen} ensemble x{members}"
    models[ensemble_label] = ens["path"]
    print(f"   done in {time.perf_counter() - t:.0f} s", flush=True)

    rows = None
    if curve:
        t = stage("4/5 learning curves: CC structures and CC molecules, three starts")
        starts = {"from ANI-1x": (chosen, START), "from our small pretraining": ("finetune", str(pretrained.model_path)),
                  "from scratch": ("scratch", None)}
        rows = learning_curve.learning_curve(starts, out / "curve", overrides=base[2:])
        print(f"   done in {time.perf_counter() - t:.0f} s", flush=True)

    stage("5/5 evaluate on the held-out CC test molecules, and on the frontier's (5-7 heavy atoms)")
    results = evaluate_models(models, embedded_samples("test", CC), CC)
    frontier = format_table(frontier_table({"ANI-1x": START, "ani-1x-ccsdt": "ani-1x-ccsdt",
                                            f"{chosen} ensemble x{members}": ens["path"]}, "frontier_test"))
    report = write_report(results, out / "report", rows, per_molecule_of=ensemble_label,
                          notes=f"Made by `python -m foundation.recipes.demo` in {time.perf_counter() - started:.0f} s; "
                                f"transfer recipe chosen on the validation molecules: {chosen}.\n\n"
                                f"Frontier test molecules, none in any training split:\n\n```\n{frontier}\n```")
    print()
    print(markdown_table(results))
    print()
    print(frontier)
    print(f"\nreport: {report}  (total {time.perf_counter() - started:.0f} s)")
    return results


@entry_point
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/demo"))
    parser.add_argument("--fast", action="store_true", help="a few hundred steps per stage: a smoke test")
    parser.add_argument("--no-learning-curve", action="store_true", help="skip the learning curves")
    parser.add_argument("--members", type=int, default=4, help="members of the ANI-1x → CC ensemble (ANI-1x has 8)")
    add_fresh_argument(parser)
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    rerun = Rerun(args.out, argv, args.fresh)  # typed again: the finished result, or a fresh run
    if not rerun.done:
        results = run(args.out, args.fast, not args.no_learning_curve, args.members)
        rerun.finish(f"{markdown_table(results)}\n\nreport: {args.out / 'report' / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
