"""User-facing errors, and how every entry point reports them.

A `UserError` is bad input the user can fix (a missing key, an unreadable file, an unknown element).
Library callers can catch it like any exception; an entry point (`foundation …`, and each
`python -m foundation.recipes.…`, `python -m foundation.pipelines.…` and `python -m benchmarks.…`)
reports it as one line on stderr, `<prog>: error: <message>`, and exit code 2, with no traceback:
a traceback would bury the fix. Messages name the file, the item and the fix.
`FOUNDATION_DEBUG=1` re-raises it to show where it came from. Ctrl-C is one line and 130.
Anything else is a bug and keeps its traceback.

    @entry_point
    def main(argv=None) -> int: ...

    if __name__ == "__main__":
        sys.exit(main())

This lives in the library core, not in the CLI, because recipes, pipelines and benchmarks have
entry points too and must not stand on the command line's floor (docs/architecture.md).
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable


class UserError(Exception):
    """Bad input, reported as one clear line: what is wrong, where, and how to fix it."""


class DataError(UserError):
    """A data file, shard or sample that cannot be used as it is."""


class CheckpointError(UserError):
    """A checkpoint or weights file that is not what it claims to be."""


class BadStructureError(DataError, ValueError):
    """Positions or a cell that no model may be given: non-finite, absurdly far from the origin,
    or a singular cell marked periodic. A `ValueError` too, so that ASE optimisers and MD (and
    any caller catching `ValueError`) stop cleanly on it."""


def debugging() -> bool:
    """FOUNDATION_DEBUG set to anything but empty or 0: show tracebacks."""
    return os.environ.get("FOUNDATION_DEBUG", "").strip() not in ("", "0")


def run_reporting(prog: str, func: Callable[..., int | None], *args, **kwargs) -> int:
    """`func(*args, **kwargs)` as an exit code; a user error is one line naming `prog`, exit 2."""
    try:
        return int(func(*args, **kwargs) or 0)
    except UserError as e:
        if debugging():
            raise
        message = " ".join(str(e).split("\n"))  # one line, even when a message spans several
        print(f"{prog}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


def entry_point(main: Callable[..., int | None]) -> Callable[..., int]:
    """Decorate a module's `main`: user errors are reported as `foundation` reports them, named
    by the module (`python -m foundation.recipes.demo: error: …`), also when tests call `main()`."""

    @functools.wraps(main)
    def wrapped(*args, **kwargs) -> int:
        return run_reporting(_prog(main), main, *args, **kwargs)

    return wrapped


def _prog(main: Callable) -> str:
    """The module's dotted name, also when it runs as `__main__` (`python -m …`)."""
    name = main.__module__
    if name == "__main__":
        spec = getattr(sys.modules.get("__main__"), "__spec__", None)
        name = spec.name if spec is not None else os.path.basename(sys.argv[0])
    return name
