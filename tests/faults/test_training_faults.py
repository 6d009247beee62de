"""Training faults not covered beside the trainer's own tests: a gradient that is not finite
while the loss is, SIGUSR1 through the command line, and resuming a run on data that changed
underneath it."""

from __future__ import annotations

import itertools
import math
import os
import signal
import threading

import pytest
import torch

from foundation.cli.main import main
from foundation.data.shards.manifest import write_manifest
from foundation.data.shards.writer import write_shards
from foundation.data.stream import ShardStream
from foundation.errors import UserError
from foundation.pipelines.synthetic import synthetic_samples
from foundation.train.checkpoint import list_checkpoints
from foundation.train.trainer import Trainer

from tests.conftest import cli_overrides


def test_a_step_with_an_infinite_gradient_and_a_finite_loss_is_skipped_and_counted(tiny_run):
    trainer = Trainer(tiny_run())
    batches = iter(trainer.stream)
    weight = trainer.model.get_parameter("networks.C.layers.0.weight")
    hook = weight.register_hook(lambda grad: grad + math.inf)  # e.g. an overflow in one layer's backward
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    metrics = trainer.train_step(next(batches))
    hook.remove()
    assert metrics == {"nonfinite_steps": 1} and trainer.state.nonfinite_run == 1
    assert all(torch.equal(before[n], p) for n, p in trainer.model.named_parameters())
    metrics = trainer.train_step(next(batches))
    assert math.isfinite(metrics["loss"]) and trainer.state.nonfinite_run == 0


def test_resuming_a_data_stream_on_changed_data_is_refused(tmp_path):
    for name, seed in (("before", 0), ("after", 1)):
        write_manifest(tmp_path / name, write_shards(synthetic_samples(20, seed=seed), tmp_path / name, "train"))
    stream = ShardStream(tmp_path / "before", max_atoms=40)
    list(itertools.islice(iter(stream), 3))
    with pytest.raises(UserError, match=r"cannot resume the data stream: manifest_sha256 was '[0-9a-f]{64}', now"):
        ShardStream(tmp_path / "after", max_atoms=40).load_state_dict(stream.state_dict())


def test_sigusr1_through_the_command_line_checkpoints_and_exits_0(xyz_path, tmp_path, capsys):
    """SLURM's `--signal=USR1@90` before a time limit, to `foundation train` (here in this process:
    the signal goes to the main thread as it would in the command's own process)."""
    metrics = tmp_path / "usr1" / "metrics.csv"
    done = threading.Event()

    def signal_once_training_runs():  # a row of step >= 1 is logged inside the loop, handlers set
        while not done.wait(0.02):
            if metrics.exists() and metrics.read_text().count("\n") >= 3:
                os.kill(os.getpid(), signal.SIGUSR1)
                return

    previous = signal.signal(signal.SIGUSR1, lambda *_: None)  # outside the loop, pytest must survive it
    sender = threading.Thread(target=signal_once_training_runs, daemon=True)
    sender.start()
    try:
        code = main(["train", *cli_overrides(xyz_path), f"out_dir={tmp_path}", "name=usr1",
                     "trainer.max_steps=5000", "trainer.val_every=1000000", "trainer.ckpt_every=1000000",
                     "trainer.val_at_start=false", "trainer.log_every=1"])
    finally:
        done.set()
        sender.join()
        signal.signal(signal.SIGUSR1, previous)
    assert code == 0
    (step,) = [s for s, _ in list_checkpoints(tmp_path / "usr1")]
    assert 2 <= step < 5000 and f"stopped by signal at step {step}" in capsys.readouterr().out
    assert not (tmp_path / "usr1" / "model.safetensors").exists()
