"""The labeller when calculations go wrong, on real PySCF runs in real worker processes: an
unconverged calculation, one that raises and a worker that dies are recorded and skipped, the
rest is labelled, and a rerun resumes without recomputing anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from foundation.pipelines.label.export import load_samples
from foundation.pipelines.label.levels import PLUGINS_ENV
from foundation.pipelines.label.run import run_labelling
from foundation.pipelines.label.store import read_records

pytestmark = pytest.mark.integration  # the labeller's worker processes


@pytest.fixture(autouse=True)
def faulty_levels(monkeypatch):
    """The test levels (tests/faults/faulty_levels.py), importable by the spawned workers too:
    they inherit the environment and this process's sys.path."""
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    monkeypatch.setenv(PLUGINS_ENV, "faulty_levels")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def _statuses(out):
    return {(r["id"], r["fidelity"]): r["status"] for r in read_records(out / "labels.jsonl")}


def test_unconverged_and_failing_calculations_are_recorded_and_never_become_labels(tmp_path):
    plan = {"seed": 0, "molecules": [
        {"name": "methane", "smiles": "C", "conformers": 1, "levels": {"hf_sto3g": 1, "hf_unconverged": 1}},
        {"name": "ammonia", "smiles": "N", "conformers": 1, "levels": {"hf_raises_on_nitrogen": 1}}]}
    counts = run_labelling(tmp_path, plan, workers=1, progress=False)
    assert counts == {"ok": 1, "unconverged": 1, "failed": 1, "skipped": 0}
    assert _statuses(tmp_path) == {("methane/0000", "hf_sto3g"): "ok",
                                   ("methane/0000", "hf_unconverged"): "unconverged",
                                   ("ammonia/0000", "hf_raises_on_nitrogen"): "failed"}
    failed = [r for r in read_records(tmp_path / "labels.jsonl") if r["status"] == "failed"]
    assert failed[0]["error"] == "RuntimeError: SCF diverged to a NaN density"
    splits, stats = load_samples(tmp_path)
    assert [set(s.energies) for s in splits["train"]] == [{"hf_sto3g"}]  # ammonia has no label at all
    assert stats == {"hf_sto3g:ok": 1, "hf_unconverged:unconverged": 1, "hf_raises_on_nitrogen:failed": 1}
    # resuming recomputes none of them (`retry_failed` is for that)
    assert run_labelling(tmp_path, None, workers=1, progress=False)["skipped"] == 3


def test_a_worker_that_dies_costs_only_its_own_task_and_the_run_finishes(tmp_path):
    # Round-robin order methane, water, ammonia; two tasks in flight per worker, so ammonia is
    # queued beside water when water's worker dies: it must be run again, not written off.
    plan = {"seed": 0, "molecules": [{"name": name, "smiles": smiles, "conformers": 1,
                                      "levels": {"hf_dies_on_oxygen": 1}}
                                     for name, smiles in (("methane", "C"), ("water", "O"), ("ammonia", "N"))]}
    counts = run_labelling(tmp_path, plan, workers=1, progress=False)
    assert counts == {"ok": 2, "unconverged": 0, "failed": 1, "skipped": 0}
    assert _statuses(tmp_path) == {("methane/0000", "hf_dies_on_oxygen"): "ok",
                                   ("water/0000", "hf_dies_on_oxygen"): "failed",
                                   ("ammonia/0000", "hf_dies_on_oxygen"): "ok"}
    failed = [r for r in read_records(tmp_path / "labels.jsonl") if r["status"] == "failed"]
    assert failed[0]["error"] == "worker process died"
    splits, _ = load_samples(tmp_path)
    assert sorted(s.source for s in splits["train"]) == [f"{tmp_path.name}:ammonia/0000",
                                                         f"{tmp_path.name}:methane/0000"]
    assert run_labelling(tmp_path, None, workers=1, progress=False) == {
        "ok": 0, "unconverged": 0, "failed": 0, "skipped": 3}
