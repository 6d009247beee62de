"""`foundation finetune`: adapt a pretrained model to one's own labelled structures, in one command.

    foundation finetune --model ani-cc-mini --data mine.xyz --energy-key E_ccsdt --fidelity ccsdt_tz
    foundation finetune --model ani-1x --data mine.xyz --energy-key E --fidelity cc --members 4
    foundation finetune --model run/model.safetensors --data mine.xyz --energy-key E --forces-key F \\
        --out mine.safetensors trainer.max_steps=3000 data.split=molecule
"""

from __future__ import annotations

import argparse
import sys
import warnings

from foundation.cli.units import add_unit_arguments

EPILOG = """what it does: tells molecules apart (by an info key such as 'molecule' when the file
has one, else by formula and bonds), splits train/validation (by molecule, or by conformer for
conformers of fewer than 10 molecules), adds a head for the fidelity (copied from the model's
default head) or continues the head of that name, refits the change of its per-element
reference energies (ridge), trains with the second layer frozen and early stopping on the
validation relative-energy RMSE, writes the best weights, never worse there than the start (or
the start, saying so), prints validation errors before and after, and writes a Markdown report
with a parity plot. An ensemble start (ani-1x, ani-1ccx) is fine-tuned member by member, each
from its own member with its own seed on one split, and written as one ensemble, never worse on
validation than the start's members (--members K: only the first K).

overrides (Hydra syntax, key=value; defaults in hydra_configs/recipe/finetune_user.yaml):
  trainer.max_steps=N trainer.lr=X trainer.freeze='[networks.*.layers.0.*]' trainer.device=cpu
  trainer.new_head_from=HEAD data.split=auto|molecule|conformer data.seed=N
  data.max_atoms_per_batch=N data.on_error=raise|skip data.group_key=auto|bonds|KEY
  trainer.early_stopping_metric=val/FIDELITY/auto|val/FIDELITY/energy_rmse|...
  trainer.early_stopping_patience=N name=RUN out_dir=DIR"""


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "finetune", help="fine-tune a pretrained model on your labelled structures",
        usage="foundation finetune --model MODEL --data FILE --energy-key KEY [options] [KEY=VALUE ...]",
        description="Fine-tune a pretrained model on labelled structures (anything ASE reads). "
                    "Energies in eV and forces in eV/Å unless --energy-unit / --length-unit say otherwise.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="registry name, .safetensors file, run directory or URL")
    parser.add_argument("--data", required=True, help="labelled structures (extxyz, ASE db, ...)")
    parser.add_argument("--energy-key", required=True, help="key of the energies")
    parser.add_argument("--forces-key", default=None, help="key of the forces (energy unit / length unit), if the file has them")
    add_unit_arguments(parser)
    parser.add_argument("--fidelity", default=None,
                        help="name of the labels' level of theory: a new head, or one the model has "
                             "(default 'user')")
    parser.add_argument("--val-fraction", type=float, default=None, help="share held out for validation (default 0.2)")
    parser.add_argument("--index", default=":", help="which structures of the file, ASE syntax (default ':')")
    parser.add_argument("--molecule-key", default=None, metavar="KEY",
                        help="info key naming each structure's molecule (default: 'molecule', 'mol_id', "
                             "'smiles', 'name', ... when the file has one, else formula and bonds)")
    parser.add_argument("--allow-worse", action="store_true",
                        help="write the best fine-tuned step even when it is worse on validation than "
                             "the start (default: then the start is written, and the output says so)")
    parser.add_argument("--members", type=int, default=None, metavar="K",
                        help="for an ensemble start (ani-1x, ani-1ccx, ...): fine-tune its first K members one by "
                             "one (each from its own member, seed + k, one split) and write them as one "
                             "ensemble (default: all; 1: member 0 alone, written as a single model)")
    parser.add_argument("--out", default=None, metavar="OUT.safetensors",
                        help="where to write the model (default: the run directory's model.safetensors); "
                             "the report goes beside it")
    parser.add_argument("--quiet", action="store_true", help="no progress bar, no summary")
    parser.set_defaults(func=run, accepts_overrides=True)


def run(args) -> int:
    from foundation.finetuning import finetune

    with warnings.catch_warnings():
        warnings.simplefilter("default")
        warnings.showwarning = _one_line  # restored on leaving the block
        finetune(args.model, args.data, energy_key=args.energy_key, forces_key=args.forces_key,
                 fidelity=args.fidelity, val_fraction=args.val_fraction, out=args.out,
                 overrides=list(args.overrides or []), index=args.index, verbose=not args.quiet,
                 molecule_key=args.molecule_key, allow_worse=args.allow_worse, members=args.members,
                 energy_unit=args.energy_unit, length_unit=args.length_unit)
    return 0


def _one_line(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"foundation finetune: warning: {message}", file=sys.stderr)
    sys.stderr.flush()
