"""A job requeued on another world size: a DDP run on shards, checkpointed mid-epoch by 2 ranks,
resumes on 1 (and 1 -> 2) through a real `torchrun`; its data position is re-split, one line says
so, and across the change every sample of each epoch is delivered exactly once, counted from the
ranks' sample logs. A ZeRO checkpoint cannot be re-split and is refused in one line
(test_deepspeed.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # `benchmarks` is not an installed package
    sys.path.insert(0, str(REPO))

from benchmarks.two_nodes import Settings, committed, coverage, launch, overrides, write_shards  # noqa: E402
from foundation.train.checkpoint import list_checkpoints  # noqa: E402

pytestmark = pytest.mark.integration  # torchrun

SETTINGS = Settings()


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return write_shards(tmp_path_factory.mktemp("shards"), SETTINGS)


@pytest.mark.parametrize("before,after", [(2, 1), (1, 2)])
def test_a_run_resumed_on_another_world_size_delivers_each_sample_once_per_epoch(shards, tmp_path, before, after):
    run = overrides(shards, tmp_path / "runs", "requeued", SETTINGS)
    logs = tmp_path / "samples"
    # The first job dies at step 7 (the last rank SIGKILLs itself), its newest checkpoint at step 4.
    first = launch(run, logs, nnodes=1, nproc=before, kill_step=7, kill_rank=before - 1, max_restarts=0)
    assert first["agents"][0]["returncode"] != 0
    assert [s for s, _ in list_checkpoints(tmp_path / "runs" / "requeued")] == [4]
    second = launch(run, logs, nnodes=1, nproc=after)
    out = second["agents"][0]
    assert out["returncode"] == 0, out["stderr"][-3000:]
    assert (f"resuming from step 4 on {after} rank(s): data position saved by {before} rank(s) × 1 reader(s) "
            f"re-split over {after} × 1: the samples not yet delivered in epoch ") in out["stdout"]
    ranks = committed(logs)
    assert sorted(ranks) == list(range(max(before, after)))
    assert {line["world_size"] for lines in ranks.values() for line in lines} == {before, after}
    counted = coverage(ranks, SETTINGS.n_train)
    assert counted["exactly_once"] and counted["last_epoch_at_most_once"], counted
    assert 0 in counted["epochs_complete"]  # the epoch under way at the checkpoint is complete
    steps = [line["step"] for line in ranks[0]]
    assert steps == list(range(1, SETTINGS.steps + 1))
