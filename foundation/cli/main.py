"""`foundation` — the one entry point. Each subcommand lives in its own module under
`foundation.cli` and exposes `add_parser(subparsers)`, which registers its arguments and sets
`func(args) -> int`. Adding a subcommand is adding a module and a line to `SUBCOMMANDS`.

User errors (`foundation.errors.UserError`) become one line on stderr and exit code 2;
`FOUNDATION_DEBUG=1` shows the traceback instead (`foundation.errors`, which the recipes',
pipelines' and benchmarks' `python -m` entry points use too).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from foundation.errors import run_reporting

SUBCOMMANDS = ["train", "finetune", "evaluate", "data", "hub", "md"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="foundation", description="Foundation: pretrain and fine-tune machine-learning interatomic potentials.")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"foundation.cli.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"foundation.cli.{name}":
                raise
            continue  # subcommand not built yet
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.version:
        from foundation import __version__

        print(__version__)
        return 0
    if args.command is None:
        parser.print_help()
        return 1
    if extra and not getattr(args, "accepts_overrides", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.overrides = extra
    return run_reporting(f"foundation {args.command}", args.func, args)


if __name__ == "__main__":
    sys.exit(main())
