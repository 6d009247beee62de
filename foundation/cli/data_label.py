"""`foundation data label`: label structures with PySCF at one or more levels (fidelities),
in parallel and resumably. Re-running the same command continues where a killed run stopped.

Each molecule is computed with its own charge and spin multiplicity: from the SMILES (formal
charges, radical electrons) or from a structures file's info keys `charge` and `spin` (the
multiplicity); anything that cannot be computed as asked is refused before the first calculation.
A run in which a calculation failed or did not converge exits 1 and prints the first reason."""

from __future__ import annotations

import sys
from pathlib import Path



def add_parser(actions) -> None:
    p = actions.add_parser("label", help="label structures with PySCF (DFT, CCSD(T)), resumably")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--plan", help="plan JSON: molecules, conformer counts, levels, splits")
    src.add_argument("--smiles", help="file with one 'SMILES [name]' per line")
    src.add_argument("--structures", help="any ASE-readable file of structures to label as they are")
    p.add_argument("--out", required=True, help="output folder (structures.jsonl, labels.jsonl)")
    p.add_argument("--levels", default="wb97x_631gs", help="comma-separated fidelities (with --smiles/--structures)")
    p.add_argument("--conformers", type=int, default=10, help="conformers per SMILES")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=1, help="parallel processes, one thread each")
    p.add_argument("--retry-failed", action="store_true", help="run failed and unconverged tasks again")
    p.add_argument("--max-tasks", type=int, default=None, help="stop after this many calculations")
    p.set_defaults(func=run)


def run(args) -> int:
    from foundation.pipelines.label.plan import load_plan, plan_from_smiles
    from foundation.pipelines.label.run import run_labelling
    from foundation.pipelines.label.structures import (has_structures, read_smiles, structures_from_file,
                                                       write_structures)

    out = Path(args.out)
    levels = [s for s in args.levels.split(",") if s]
    if args.plan:
        plan = load_plan(args.plan)
    elif args.smiles:
        plan = plan_from_smiles(read_smiles(args.smiles), args.conformers, {f: args.conformers for f in levels}, args.seed)
    elif args.structures:
        plan = None
        if not has_structures(out):  # a resumed run labels the structures it began with
            write_structures(out, structures_from_file(args.structures, levels))
    else:
        plan = None  # resume: structures.jsonl must exist in --out
    problems: list[str] = []
    counts = run_labelling(out, plan, workers=args.workers, retry_failed=args.retry_failed,
                           max_tasks=args.max_tasks, problems=problems)
    print(f"labelled {counts['ok']} ok, {counts['unconverged']} unconverged, {counts['failed']} failed, "
          f"{counts['skipped']} already done -> {out / 'labels.jsonl'}")
    if problems:  # no label for those: say so in the exit code, with the first reason
        print(f"foundation data label: {len(problems)} calculation(s) gave no label; the first: {problems[0]}",
              file=sys.stderr)
        return 1
    return 0
