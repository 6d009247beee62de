"""What ranks synchronise on each step: one scalar collective (the non-finite flag with the stop
request riding on it); the metrics only on logging steps (each collective is a point where a
faster rank waits for a slower one: docs/scaling.md)."""

from __future__ import annotations

import dataclasses
import os
import signal

from foundation.train.trainer import Trainer

from .conftest import HookedData


def _counting(trainer: Trainer) -> list[tuple[int, tuple[str, ...]]]:
    calls = []
    reduce = trainer.engine.all_reduce

    def counted(values, op="mean", **kw):
        calls.append((trainer.state.step, tuple(sorted(values))))
        return reduce(values, op, **kw)

    trainer.engine.all_reduce = counted
    return calls


def test_one_scalar_collective_per_step_and_metrics_only_when_logged(tiny_run):
    trainer = Trainer(tiny_run(max_steps=8, log_every=4, val_every=100, ckpt_every=100, val_at_start=False))
    calls = _counting(trainer)
    trainer.train()
    per_step = {step: [keys for s, keys in calls if s == step] for step in range(1, 9)}
    for step in (1, 2, 3, 5, 6, 7):
        assert per_step[step] == [("nonfinite", "stop")], (step, per_step[step])
    assert per_step[4][0] == ("nonfinite", "stop") and any("loss" in keys for keys in per_step[4])
    rows = [r for r in _metric_rows(trainer.run_dir) if r.get("loss")]
    assert [int(r["step"]) for r in rows] == [4, 8]  # the logged steps carry the (reduced) metrics


def test_a_signal_rides_with_the_flag_and_stops_at_the_end_of_that_step(tiny_run):
    config = tiny_run(max_steps=50, ckpt_every=100, log_every=100)

    def signal_at_3(n, batch):
        if n == 3:
            os.kill(os.getpid(), signal.SIGUSR1)

    trainer = Trainer(dataclasses.replace(config, data=HookedData(config.data, signal_at_3)))
    calls = _counting(trainer)
    result = trainer.train()
    assert result.status == "interrupted" and result.step == 3
    assert [keys for s, keys in calls if s in (1, 2, 3)] == [("nonfinite", "stop")] * 3


def _metric_rows(run_dir):
    import csv

    with open(run_dir / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))
