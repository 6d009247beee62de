"""Two nodes, one lost (`benchmarks/two_nodes.py`): two real `torchrun` agents on 127.0.0.1
(`--nnodes=2 --nproc_per_node=1`, c10d rendezvous, `--max-restarts=2`) train `distributed=ddp` on
shards written to disk with the library's writer; rank 1's worker is SIGKILLed mid-epoch; the
agents meet again and resume from the newest checkpoint. The run ends with the uninterrupted run's
weights, and every epoch's samples were delivered exactly once across ranks, counted from the
ranks' sample logs. ZeRO-2 the same way is marked slow (DeepSpeed's import doubles the time);
`python -m benchmarks.two_nodes` records both."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # `benchmarks` is not an installed package
    sys.path.insert(0, str(REPO))

from benchmarks.two_nodes import Settings, rehearse  # noqa: E402

pytestmark = pytest.mark.integration  # two torchrun agents


def test_two_agents_lose_a_worker_mid_epoch_and_end_as_the_uninterrupted_run(tmp_path):
    _check(rehearse(tmp_path, Settings()), Settings())


@pytest.mark.slow
def test_the_same_with_deepspeed_zero2(tmp_path):
    pytest.importorskip("deepspeed")
    settings = Settings(engine="deepspeed")
    _check(rehearse(tmp_path, settings), settings)


def _check(fig: dict, settings: Settings) -> None:
    checks = fig["checks"]
    assert checks["exit_codes"] == {"straight": [0, 0], "killed": [0, 0]}, fig["outputs"]
    assert checks["worker_processes"] == 4  # two at the start, two started again by the agents
    assert checks["kill"]["mid_epoch"] and checks["resumed"]["mid_epoch"], checks
    assert checks["resumed"]["from_step"] == 4  # the newest checkpoint before the kill at step 7
    assert checks["max_abs_weight_difference"] <= 1e-6
    for run in ("coverage", "coverage_straight"):
        assert checks[run]["exactly_once"] and checks[run]["last_epoch_at_most_once"], checks[run]
        assert checks[run]["epochs_complete"] == [0, 1]
    steps = list(range(1, settings.steps + 1))
    assert checks["steps_trained"] == {"0": steps, "1": steps}
    assert "resuming from step 4 on 2 rank(s)" in "".join(fig["outputs"]["killed"])
