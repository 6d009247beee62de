"""`foundation finetune`: adapt a pretrained model to one's own labelled structures, in one command.

    foundation finetune --model ani-cc-mini --data mine.xyz --energy-key E_ccsdt --fidelity ccsdt_tz
    foundation finetune --model run/model.safetensors --data mine.xyz --energy-key E --forces-key F \\
        --out mine.safetensors trainer.max_steps=3000 data.split=molecule
"""

from __future__ import annotations

import argparse
import sys
import warnings

EPILOG = """what it does: splits train/validation (by molecule, or by conformer for conformers of
fewer than 10 molecules), adds a head for the fidelity (copied from the model's default head) or
continues the head of that name, refits its per-element reference energies by least squares,
trains with the second layer frozen and early stopping, prints validation errors before and
after, and writes the model plus a Markdown report with a parity plot.

overrides (Hydra syntax, key=value; defaults in hydra_configs/recipe/finetune_user.yaml):
  trainer.max_steps=N trainer.lr=X trainer.freeze='[networks.*.layers.0.*]' trainer.device=cpu
  trainer.new_head_from=HEAD data.split=auto|molecule|conformer data.seed=N
  data.max_atoms_per_batch=N data.on_error=raise|skip name=RUN out_dir=DIR"""


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "finetune", help="fine-tune a pretrained model on your labelled structures",
        usage="foundation finetune --model MODEL --data FILE --energy-key KEY [options] [KEY=VALUE ...]",
        description="Fine-tune a pretrained model on labelled structures (anything ASE reads). "
                    "Energies in eV, forces in eV/Å.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="registry name, .safetensors file, run directory or URL")
    parser.add_argument("--data", required=True, help="labelled structures (extxyz, ASE db, ...)")
    parser.add_argument("--energy-key", required=True, help="key of the energies (eV)")
    parser.add_argument("--forces-key", default=None, help="key of the forces (eV/Å), if the file has them")
    parser.add_argument("--fidelity", default=None,
                        help="name of the labels' level of theory: a new head, or one the model has "
                             "(default 'user')")
    parser.add_argument("--val-fraction", type=float, default=None, help="share held out for validation (default 0.2)")
    parser.add_argument("--index", default=":", help="which structures of the file, ASE syntax (default ':')")
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
                 overrides=list(args.overrides or []), index=args.index, verbose=not args.quiet)
    return 0


def _one_line(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"foundation finetune: warning: {message}", file=sys.stderr)
    sys.stderr.flush()
