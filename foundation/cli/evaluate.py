"""`foundation evaluate`: score a model on a labelled file; print a table, optionally write JSON.

    foundation evaluate --model run/model.safetensors --data test.xyz --energy-key E_ccsd \\
        --forces-key F_ccsd --head ccsdt_ccpvdz --json scores.json
"""

from __future__ import annotations

import json
import math
import os
import sys
import warnings

from foundation.cli.units import add_unit_arguments
from foundation.files import write_text_atomic

ROWS = [  # (result key, label, unit, format)
    ("energy_mae_ev_per_atom", "energy MAE", "eV/atom", ".5f"),
    ("energy_mae_kcal_mol", "energy MAE", "kcal/mol", ".3f"),
    ("energy_rmse_kcal_mol", "energy RMSE", "kcal/mol", ".3f"),
    ("relative_energy_rmse_kcal_mol", "relative energy RMSE", "kcal/mol", ".3f"),
    ("forces_mae_ev_per_a", "forces MAE", "eV/Å", ".4f"),
    ("forces_rmse_ev_per_a", "forces RMSE", "eV/Å", ".4f"),
]


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="score a model on labelled structures",
        description="Energy and force errors of a model on a labelled file (anything ASE reads). "
                    "Energies in eV and forces in eV/Å unless --energy-unit / --length-unit say otherwise.")
    parser.add_argument("--model", required=True, help="registry name (e.g. ani-1x), .safetensors model, training checkpoint, run directory or URL")
    parser.add_argument("--data", required=True, help="labelled structures (extxyz, ASE db, ...)")
    parser.add_argument("--energy-key", required=True, help="key of the reference energies")
    parser.add_argument("--forces-key", default=None, help="key of the reference forces (energy unit / length unit)")
    add_unit_arguments(parser)
    parser.add_argument("--head", default=None, help="model head (fidelity) to evaluate (default: the model's default head)")
    parser.add_argument("--index", default=":", help="which structures, ASE syntax (default ':')")
    parser.add_argument("--per-molecule", action="store_true",
                        help="also print the errors of each molecule, worst first (molecules: the file's molecule key, else formulas)")
    parser.add_argument("--json", default=None, metavar="OUT", help="write the scores and per-structure predictions here")
    parser.add_argument("--batch-atoms", type=int, default=1024, help="atoms per batch (default 1024)")
    parser.add_argument("--on-error", choices=["raise", "skip"], default="raise",
                        help="a structure that cannot be used (missing label, NaN, broken coordinates): stop "
                             "(raise, the default) or leave it out, warn and count it (skip)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    parser.set_defaults(func=run)


def run(args) -> int:
    import torch

    from foundation.data.ase_io import read_samples
    from foundation.evaluation.evaluate import evaluate
    from foundation.loading import load_model

    # The data first: a wrong key should fail in a second, not after loading a model.
    skipped: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        samples = read_samples(args.data, args.energy_key, args.forces_key, fidelity=args.head or "reference",
                               index=args.index, on_error=args.on_error, skipped=skipped,
                               energy_unit=args.energy_unit, length_unit=args.length_unit)
    for w in caught:
        print(f"foundation evaluate: warning: {w.message}", file=sys.stderr)
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    model = load_model(args.model, device=device)
    result = evaluate(model, samples, head=args.head, batch_atoms=args.batch_atoms)
    result.pop("fidelity")  # the name the labels were read under here, not the user's
    if skipped:
        result["skipped_structures"] = len(skipped)
    print(format_table(result, args.model, args.data))
    if args.per_molecule:
        from foundation.evaluation.per_molecule import by_size, format_by_size, format_per_molecule, per_molecule

        result["per_molecule"] = per_molecule(result["structures"])
        result["by_heavy_atoms"] = by_size(result["structures"])
        print(format_per_molecule(result["per_molecule"]))
        print(format_by_size(result["by_heavy_atoms"]))
    if args.json:
        record = {"model": str(args.model), "data": str(args.data), "energy_key": args.energy_key,
                  "forces_key": args.forces_key, "energy_unit_given": args.energy_unit or "eV",
                  "length_unit_given": args.length_unit, "index": args.index, **result}
        write_record(args.json, record)
        print(f"wrote {args.json}")
    return 0


def format_table(result: dict, model: str, data: str) -> str:
    lines = [f"{model} on {data}: head {result['head']}, {result['n_structures']} structures, "
             f"{result['n_atoms']} atoms" + (f" ({result['skipped_structures']} skipped)"
                                             if result.get("skipped_structures") else "")]
    for key, label, unit, fmt in ROWS:
        if key in result:
            value = result[key]
            shown = "n/a (no formula with two structures)" if math.isnan(value) else f"{value:{fmt}} {unit}"
            lines.append(f"  {label:<22}{shown}")
    return "\n".join(lines)


def write_record(path: str | os.PathLike, record: dict) -> None:
    """The evaluation record as `--json` writes it (its own layout, see `_dumps`; results of
    recipes and benchmarks use `foundation.files.write_json`), atomically; NaN (no relative
    energies to score) is written as null."""
    write_text_atomic(path, _dumps(_no_nan(record)) + "\n")


def _dumps(record: dict) -> str:
    """One line per top-level key and one per structure: readable, and diff-able, without the
    thousands of lines `indent=` gives force arrays."""
    dump = lambda v: json.dumps(v, ensure_ascii=False, allow_nan=False)  # noqa: E731
    lines = [f" {dump(k)}: {dump(v)}" for k, v in record.items() if k != "structures"]
    rows = ",\n".join(f"  {dump(row)}" for row in record.get("structures", []))
    lines.append(f' "structures": [\n{rows}\n ]')
    return "{\n" + ",\n".join(lines) + "\n}"


def _no_nan(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _no_nan(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_no_nan(v) for v in value]
    return value
