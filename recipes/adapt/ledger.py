"""Where a run's CPU time went, kept on disk so a resumed run goes on counting.

    <out>/ledger.json   {"config": the settings, "cpu": {phase: CPU seconds of this program's own
                         process}}; the calculations' CPU is in their records (labelling.py)

Each phase is charged the process time since the last charge (`charge`), and the file is
rewritten atomically then, so a killed run loses at most the time since its last charge. A
resumed run must have been started with the same settings (what was sampled, chosen and
labelled depends on them); the budget may be raised.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from foundation.errors import UserError
from foundation.files import write_json

RESUMABLE = ("budget_seconds", "workers", "slurm", "verbose")  # may change between a run and its resume


class Ledger:
    def __init__(self, out: Path):
        self.path = Path(out) / "ledger.json"
        self.data = json.loads(self.path.read_text()) if self.path.exists() else {"config": None, "cpu": {}}
        self._mark = time.process_time()

    def check_config(self, config: dict) -> None:
        old = self.data.get("config")
        if old is not None:
            changed = sorted(k for k in set(old) | set(config) if k not in RESUMABLE and old.get(k) != config.get(k))
            if changed:
                raise UserError(f"{self.path.parent}: this run was started with other settings ({', '.join(changed)}); "
                                "give another --out or the same settings")
        self.data["config"] = config
        write_json(self.path, self.data)

    def charge(self, phase: str) -> float:
        """Add the process time since the last charge to `phase`; return it."""
        now = time.process_time()
        spent, self._mark = now - self._mark, now
        self.data["cpu"][phase] = self.data["cpu"].get(phase, 0.0) + spent
        write_json(self.path, self.data)
        return spent

    def seconds(self) -> float:
        """This program's CPU seconds over every run so far, including the time not yet charged."""
        return sum(self.data["cpu"].values()) + time.process_time() - self._mark

    def phases(self) -> dict[str, float]:
        return dict(self.data["cpu"])
