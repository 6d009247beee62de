"""User-facing errors.

A `UserError` is bad input the user can fix (a missing key, an unreadable file, an unknown element).
The command line prints its message as one line and exits non-zero, with no traceback; library
callers can catch it like any exception. Messages name the file, the item and the fix.
"""


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
