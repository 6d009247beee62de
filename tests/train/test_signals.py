"""SIGUSR1/SIGTERM: finish the step, write a checkpoint, return (SIGTERM through the real CLI
process is in tests/cli/test_train.py)."""

from __future__ import annotations

import dataclasses
import os
import signal

from foundation.train.checkpoint import list_checkpoints
from foundation.train.signals import StopRequest
from foundation.train.trainer import Trainer

from .conftest import HookedData


def test_stop_request_catches_the_signals_and_restores_the_old_handlers():
    previous = signal.getsignal(signal.SIGUSR1)
    with StopRequest() as stop:
        assert not stop.requested
        os.kill(os.getpid(), signal.SIGUSR1)
        assert stop.requested and stop.signum == signal.SIGUSR1
    assert signal.getsignal(signal.SIGUSR1) is previous


def test_sigusr1_mid_run_checkpoints_that_step_and_stops(tiny_run):
    config = tiny_run(max_steps=50, ckpt_every=100)

    def signal_at_4(n, batch):  # as SLURM does before a time limit
        if n == 4:
            os.kill(os.getpid(), signal.SIGUSR1)

    trainer = Trainer(dataclasses.replace(config, data=HookedData(config.data, signal_at_4)))
    result = trainer.train()
    assert result.status == "interrupted" and result.step == 4 and result.model_path is None
    assert [step for step, _ in list_checkpoints(result.run_dir)] == [4]
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL
