"""Where a run's CPU time went, kept on disk so a resumed run goes on counting.

    <out>/ledger.json   {"config": the settings, "cpu": {phase: CPU seconds of this program's own
                         process and the processes it started}}; the calculations' CPU is in
                         their records (labelling.py)

Each phase is charged the CPU time since the last charge (`charge`): this process's, and that of
its finished child processes (the fine-tuning's member workers), except where their CPU is
counted elsewhere (the labeller's workers: each calculation records its own). The file is
rewritten atomically then, so a killed run loses at most the time since its last charge. A
resumed run must have been started with the same settings (what was sampled, chosen and
labelled depends on them); the budget may be raised.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from foundation.errors import UserError
from foundation.files import write_json

RESUMABLE = ("budget_seconds", "workers", "slurm", "verbose")  # may change between a run and its resume


class Ledger:
    def __init__(self, out: Path):
        self.path = Path(out) / "ledger.json"
        self.data = json.loads(self.path.read_text()) if self.path.exists() else {"config": None, "cpu": {}}
        self._mark = _clock()
        self.labelling = False  # while True, ended child processes are the labeller's: not charged

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
        """Add the CPU time since the last charge to `phase` (with its ended child processes'
        unless `labelling`); return it."""
        spent, self._mark = self._since_mark()
        self.data["cpu"][phase] = self.data["cpu"].get(phase, 0.0) + spent
        write_json(self.path, self.data)
        return spent

    def seconds(self) -> float:
        """This program's CPU seconds over every run so far, including the time not yet charged
        (its ended child processes' too, but not while `labelling`: the labeller's workers' CPU
        is in the calculations' records, and a broken pool's are reaped mid-way)."""
        return sum(self.data["cpu"].values()) + self._since_mark()[0]

    def _since_mark(self) -> tuple[float, tuple[float, float]]:
        """The CPU seconds to charge since the last charge, and the clock now."""
        own, kids = now = _clock()
        return own - self._mark[0] + (0.0 if self.labelling else kids - self._mark[1]), now

    def phases(self) -> dict[str, float]:
        return dict(self.data["cpu"])


def _clock() -> tuple[float, float]:
    """CPU seconds (user + system) of this process, and of its child processes that have ended."""
    t = os.times()
    return t.user + t.system, t.children_user + t.children_system
