"""The active-learning loop's record on disk: what each round picked, labelled and measured.

    <work_dir>/config.json              the loop's settings (a resumed loop must match them)
    <work_dir>/rounds/round-NNN/        one folder per round; round.json in it marks it finished
    <work_dir>/log.jsonl                one line per finished round (rebuilt from the round files)

Everything is written atomically and each step of a round writes its result before the next
starts, so a loop killed anywhere resumes at the step it was in: picks are read back, not
redrawn; labels already made are not asked for again.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from foundation.files import write_json, write_text_atomic as write_atomic
from foundation.errors import UserError

RESUMABLE_CHANGES = ("rounds",)  # settings a resumed loop may change (e.g. run more rounds)


class Ledger:
    def __init__(self, work_dir: str | Path):
        self.work_dir = Path(work_dir)
        self.work_dir.mkdir(parents=True, exist_ok=True)

    def check_config(self, config: dict) -> None:
        """Write config.json on the first run; on a resume, refuse changed settings (a different
        pool or strategy would mix two experiments in one record)."""
        path = self.work_dir / "config.json"
        if path.exists():
            old = json.loads(path.read_text())
            changed = sorted(k for k in set(old) | set(config)
                             if old.get(k) != config.get(k) and k not in RESUMABLE_CHANGES)
            if changed:
                raise UserError(f"{path}: this loop was started with other settings ({', '.join(changed)}); "
                                f"use another work directory or the same settings")
        write_json(path, config)

    def round_dir(self, r: int) -> Path:
        return self.work_dir / "rounds" / f"round-{r:03d}"

    def finished(self, r: int) -> dict | None:
        path = self.round_dir(r) / "round.json"
        return json.loads(path.read_text()) if path.exists() else None

    def finish(self, r: int, record: dict) -> None:
        write_json(self.round_dir(r) / "round.json", record)
        rows = [self.finished(k) for k in range(r + 1)]
        write_atomic(self.work_dir / "log.jsonl", "".join(json.dumps(row) + "\n" for row in rows if row))

    def log(self) -> list[dict]:
        path = self.work_dir / "log.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def once(path: Path, make: Callable[[], dict]) -> dict:
    """The JSON at `path`, made by `make()` and written atomically the first time."""
    if path.exists():
        return json.loads(path.read_text())
    value = make()
    write_json(path, value)
    return value
