"""A training process killed again and again at random moments (SIGKILL: no handler, no cleanup,
possibly half-way through writing a checkpoint or a metrics line): every checkpoint on disk
loads, each restart continues from the newest, and the run ends with exactly the weights and
losses of an uninterrupted one. Real `foundation train` processes.

Bounded: three kills, each after the run has written 1-6 new checkpoints (one per step), so every
restart makes progress and the run cannot finish early; a deadline stops the loop if something
hangs."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from foundation.train.checkpoint import list_checkpoints, read_checkpoint
from foundation.train.compose import load_run_config
from foundation.train.trainer import Trainer

from tests.conftest import cli_overrides, metric_rows

pytestmark = pytest.mark.integration  # runs SIGKILLed as child processes

REPO = Path(__file__).resolve().parents[2]
MAX_STEPS = 60
KILLS = 3
DEADLINE_S = 240  # for the whole loop; it takes ~20 s on 2 busy cores


def _overrides(xyz_path, out_dir, name):
    return [*cli_overrides(xyz_path), f"out_dir={out_dir}", f"name={name}", f"trainer.max_steps={MAX_STEPS}",
            "trainer.ckpt_every=1", "trainer.keep_checkpoints=2", "trainer.val_every=25",
            "trainer.log_every=1", "trainer.val_at_start=false"]


def _start(overrides):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "foundation", "train", *overrides, "resume=true"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)


def _newest_step(run_dir):
    found = list_checkpoints(run_dir)
    return found[-1][0] if found else 0


def _wait_for_a_checkpoint_after(proc, run_dir, step, deadline):
    while _newest_step(run_dir) <= step:
        assert proc.poll() is None, f"the run ended early: {proc.communicate()[1][-2000:]}"
        assert time.monotonic() < deadline, "no new checkpoint before the deadline"
        time.sleep(0.01)


def _check_every_checkpoint_loads(run_dir, why):
    for step, path in list_checkpoints(run_dir):  # names appear only when a file is complete
        assert read_checkpoint(path)["step"] == step, why


def test_random_sigkills_lose_nothing_and_resume_ends_with_the_uninterrupted_weights(
        xyz_path, tmp_path):
    seed = random.SystemRandom().randrange(2**32)
    rng = random.Random(seed)
    run_dir = tmp_path / "killed"
    overrides = _overrides(xyz_path, tmp_path, "killed")
    deadline = time.monotonic() + DEADLINE_S
    history = []
    for _ in range(KILLS):
        before = _newest_step(run_dir)
        proc = _start(overrides)
        try:  # a random step, then a random moment within a step (a checkpoint is written every step)
            steps, delay = rng.randint(1, 6), rng.uniform(0.0, 0.03)
            _wait_for_a_checkpoint_after(proc, run_dir, before + steps - 1, deadline)
            time.sleep(delay)
            proc.send_signal(signal.SIGKILL)
            out, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
        finally:
            proc.kill()
        history.append((steps, round(delay, 3), _newest_step(run_dir)))
        why = f"seed {seed}, (steps, delay s, newest step) of each kill so far: {history}"
        assert proc.returncode == -signal.SIGKILL, f"{why}\n{err[-2000:]}"
        _check_every_checkpoint_loads(run_dir, why)
        assert before < _newest_step(run_dir) < MAX_STEPS, why

    proc = _start(overrides)
    out, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
    assert proc.returncode == 0 and f"completed at step {MAX_STEPS}" in out, f"{history}\n{err[-2000:]}"

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the subprocesses (OMP_NUM_THREADS=1): the same arithmetic
    try:
        Trainer(load_run_config(_overrides(xyz_path, tmp_path, "straight"))).train()
    finally:
        torch.set_num_threads(threads)
    want, got = load_file(tmp_path / "straight" / "model.safetensors"), load_file(run_dir / "model.safetensors")
    assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want), history
    losses = lambda rows: [(r["step"], r["loss"], r["val/loss"]) for r in rows]  # noqa: E731
    assert losses(metric_rows(run_dir)) == losses(metric_rows(tmp_path / "straight")), history
