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

SUBCOMMANDS = ["train", "finetune", "adapt", "evaluate", "data", "hub", "md"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="foundation", description="Foundation: pretrain and fine-tune machine-learning interatomic potentials.")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    parser.add_argument("--threads", type=int, metavar="N",
                        help="torch threads (default: from the cores this process may use and the system's size; "
                             "or FOUNDATION_THREADS=N); may also follow the subcommand")
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
    args, extra = parser.parse_known_args(_threads_first(sys.argv[1:] if argv is None else list(argv)))
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
    return run_reporting(f"foundation {args.command}", _run, args)


def _run(args) -> int | None:
    from foundation.threads import configure

    configure(args.threads)  # before anything computes: chosen, not inherited (foundation.threads)
    return args.func(args)


def _threads_first(argv: list[str]) -> list[str]:
    """`--threads N` wherever it is typed (`foundation md x.xyz --threads 2` too), moved before the
    subcommand, where the top-level parser reads it."""
    for k, arg in enumerate(argv):
        if arg == "--":
            break
        if arg.startswith("--threads="):
            return [arg, *argv[:k], *argv[k + 1:]]
        if arg == "--threads" and k + 1 < len(argv):
            return [arg, argv[k + 1], *argv[:k], *argv[k + 2:]]
    return argv


if __name__ == "__main__":
    sys.exit(main())
