"""`foundation data …`: label, convert, inspect, select. Each action is a module
`foundation.cli.data_<action>` with `add_parser(subparsers)`, as for the top-level commands."""

from __future__ import annotations

import importlib

ACTIONS = ["label", "convert", "inspect", "select"]


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("data", help="label, convert, inspect and select data")
    actions = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    for name in ACTIONS:
        try:
            module = importlib.import_module(f"foundation.cli.data_{name}")
        except ModuleNotFoundError as e:
            if e.name != f"foundation.cli.data_{name}":
                raise
            continue
        module.add_parser(actions)
