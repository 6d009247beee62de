"""The atom counts of an (ext)xyz file, checked before ASE reads it.

ASE's extxyz reader first indexes the frames by skipping as many lines as each count line says,
one `readline()` at a time, past the end of the file too: a damaged count such as 1000000000 keeps
it busy for minutes before it fails. Counting the lines first makes that one clear line at once.
"""

from __future__ import annotations

import itertools
import os

from foundation.errors import DataError

_CHUNK = 1 << 20


def check_xyz_counts(path: str | os.PathLike) -> None:
    """Raise `DataError` naming `path`, the frame and the line when a frame's atom count is
    negative or more than the lines left in the file; files ASE does not read as (ext)xyz pass.
    Anything else (a count line that is not a number, a malformed header) is left to the reader,
    which fails on it quickly."""
    if not _is_xyz(path):
        return
    total = _count_lines(path)
    with open(path, "rb") as f:
        line_no, frame = 0, 0
        for line in f:
            line_no += 1
            text = line.strip()
            if not text:
                continue  # blank lines between or after frames
            try:
                n = int(text)
            except ValueError:
                return  # not a count where one should be: the reader's error names it
            left = total - line_no - 1  # after the comment line
            if n < 0 or n > left:
                raise DataError(f"{path}: cannot read structures (frame {frame}, line {line_no}: {n} atoms, but "
                                f"{max(left, 0)} lines follow; a wrong count or a file cut short)")
            consumed = sum(1 for _ in itertools.islice(f, n + 1))  # the comment line and the atoms
            line_no += consumed
            frame += 1


def _is_xyz(path) -> bool:
    from ase.io.formats import filetype

    try:
        return filetype(str(path), guess=True) in ("xyz", "extxyz")
    except Exception:  # noqa: BLE001  (a format ASE cannot name: its reader says so itself)
        return False


def _count_lines(path) -> int:
    lines, last = 0, b"\n"
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    return lines + (last != b"\n")  # a last line without its newline counts too
