"""An append-only JSON-lines store of labelling results that survives being killed.

One line per finished calculation, written by one process, flushed and fsynced. A run killed
mid-write leaves at most one partial last line; `LabelStore` drops it on open (rewriting the file
atomically without it), so resuming recomputes nothing that finished and never reads garbage.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from foundation.files import write_text_atomic


def read_records(path: str | Path) -> list[dict]:
    """The finished records, read-only: safe while a labelling run is still appending."""
    return _parse(Path(path))[0]


def _parse(path: Path) -> tuple[list[dict], list[str], bool]:
    """(records, their lines, whether a partial last line was found)."""
    if not path.exists():
        return [], [], False
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    records = []
    for n, line in enumerate(lines):
        try:
            if not line.endswith("\n"):
                raise ValueError("unterminated")
            records.append(json.loads(line))
        except ValueError:
            if n != len(lines) - 1:
                from foundation.errors import DataError

                raise DataError(f"{path}: line {n + 1} is not valid JSON (only the last line may be partial)") from None
            return records, lines[:n], True
    return records, lines, False


class LabelStore:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.records: list[dict] = list(self._read_and_repair())
        self.done: set[tuple[str, str]] = {(r["id"], r["fidelity"]) for r in self.records}
        self._fh = open(self.path, "a", encoding="utf-8")

    def _read_and_repair(self) -> Iterator[dict]:
        records, good_lines, partial = _parse(self.path)
        if partial:
            self._rewrite(good_lines)  # drop the partial line left by a kill mid-write
        yield from records

    def _rewrite(self, lines: list[str]) -> None:
        write_text_atomic(self.path, "".join(lines), durable=True)

    def append(self, record: dict) -> None:
        self._fh.write(json.dumps(record, separators=(",", ":")) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self.records.append(record)
        self.done.add((record["id"], record["fidelity"]))

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> "LabelStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
