"""The labeller's hooks for a budget (issue 27): `write_structures` for structures chosen elsewhere,
`admit` asked before each task starts (a refused one is left undone, and a later run does it), and
each record's `cpu_seconds` (what the calculation cost, measured in the worker)."""

from __future__ import annotations

import numpy as np
import pytest

from foundation.pipelines.label.run import run_labelling
from foundation.pipelines.label.store import read_records
from foundation.pipelines.label.structures import Structure, write_structures

WATER = np.array([[0.0, 0.0, 0.117], [0.0, 0.757, -0.467], [0.0, -0.757, -0.467]])


@pytest.mark.integration  # the labeller's worker processes
def test_a_refused_task_is_deferred_and_done_by_a_later_run(tmp_path):
    structures = [Structure(id=f"water/{k}", molecule="water", numbers=np.array([8, 1, 1]),
                            positions=WATER * (1 + 0.02 * k), sampling="test", split="train",
                            levels=["ccsdt_ccpvdz"]) for k in range(3)]
    write_structures(tmp_path, structures)
    write_structures(tmp_path, structures[:1])  # written once: a resumed run labels the same ones
    asked = []

    def admit(s, fid):
        asked.append(s.id)
        return s.id != "water/1"

    counts = run_labelling(tmp_path, None, workers=1, progress=False, admit=admit)
    assert counts == {"ok": 2, "unconverged": 0, "failed": 0, "skipped": 0, "deferred": 1}
    assert asked == ["water/0", "water/1", "water/2"]  # in task order, once each
    records = read_records(tmp_path / "labels.jsonl")
    assert [r["id"] for r in records] == ["water/0", "water/2"] and all(r["cpu_seconds"] > 0 for r in records)
    assert run_labelling(tmp_path, None, workers=1, progress=False) == {
        "ok": 1, "unconverged": 0, "failed": 0, "skipped": 2}
