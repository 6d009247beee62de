"""`foundation data label`: label structures with PySCF at one or more levels (fidelities),
in parallel and resumably. Re-running the same command continues where a killed run stopped.

Each molecule is computed with its own charge and spin multiplicity: from the SMILES (formal
charges, radical electrons) or from a structures file's info keys `charge` and `spin` (the
multiplicity); anything that cannot be computed as asked is refused before the first calculation.
A run in which a calculation failed or did not converge exits 1 and prints the first reason."""

from __future__ import annotations

import sys
from pathlib import Path

from foundation.errors import UserError


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

    out = Path(args.out)
    levels = [s for s in args.levels.split(",") if s]
    if args.plan:
        plan = load_plan(args.plan)
    elif args.smiles:
        plan = plan_from_smiles(_read_smiles(args.smiles), args.conformers, {f: args.conformers for f in levels}, args.seed)
    elif args.structures:
        plan = None
        _write_structures(args.structures, levels, out)
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


def _read_smiles(path: str) -> list[tuple[str, str]]:
    try:
        lines = [ln.split() for ln in Path(path).read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    except OSError as e:
        raise UserError(f"{path}: cannot read SMILES file ({e.strerror})") from None
    return [(parts[0], parts[1] if len(parts) > 1 else f"mol{k:04d}") for k, parts in enumerate(lines)]


def _write_structures(path: str, levels: list[str], out: Path) -> None:
    import json

    import ase.io

    from foundation.data.electrons import check_charge_spin, from_info
    from foundation.errors import DataError
    from foundation.files import write_text_atomic

    if (out / "structures.jsonl").exists():
        return
    try:
        frames = ase.io.read(path, index=":")
    except Exception as e:  # noqa: BLE001 - ASE raises many types for unreadable files
        raise UserError(f"{path}: cannot read structures ({e})") from None
    lines = []
    for k, a in enumerate(frames):
        record = {"id": f"{Path(path).stem}/{k:05d}", "molecule": a.get_chemical_formula(),
                  "numbers": a.numbers.tolist(), "positions": a.positions.tolist(), "sampling": "given",
                  "split": "train", "levels": levels}
        try:  # info keys charge / spin (multiplicity); the electrons must make them, declared or not
            charge, multiplicity = from_info(a.info, a.numbers, f"{path}:{k}")
            check_charge_spin(a.numbers, charge, multiplicity, f"{path}:{k}")
        except DataError as e:
            raise UserError(f"{e}; give its charge and spin multiplicity as info keys 'charge' and 'spin'") from None
        if (charge, multiplicity) != (0, 1):
            record.update(charge=charge, multiplicity=multiplicity)
        lines.append(json.dumps(record) + "\n")
    write_text_atomic(out / "structures.jsonl", "".join(lines))
