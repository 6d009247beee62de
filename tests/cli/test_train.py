"""`foundation train`: Hydra composition, one-line errors, signals, resume through the CLI."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from foundation.cli.main import main
from foundation.train.checkpoint import list_checkpoints

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def data_args(molecules_xyz):
    path, _ = molecules_xyz(n_molecules=8, n_conformers=4)
    return [f"data.path={path}", "data.energy_key=REF_energy", "data.forces_key=REF_forces",
            "data.fidelity=wb97x_631gs", "data.split=conformer"]


def test_smoke_experiment_trains_exports_and_resumes(data_args, tmp_path, capsys):
    args = ["train", "experiment=smoke", *data_args, f"out_dir={tmp_path}", "name=cli",
            "trainer.max_steps=4", "trainer.val_every=2", "trainer.ckpt_every=2"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "parameters" in out and "heads wb97x_631gs" in out and "from scratch" in out
    assert "fidelities wb97x_631gs" in out and f"run dir: {tmp_path / 'cli'}" in out
    assert (tmp_path / "cli" / "model.safetensors").is_file()

    with pytest.warns(UserWarning, match="changed config: trainer.max_steps"):
        assert main([*args[:-3], "trainer.max_steps=6", "trainer.val_every=2", "trainer.ckpt_every=2",
                     "resume=true"]) == 0
    assert "resuming from step 4" in capsys.readouterr().out
    with open(tmp_path / "cli" / "metrics.csv", newline="") as f:
        steps = [int(r["step"]) for r in csv.DictReader(f)]
    assert steps == sorted(steps) and steps[-1] == 6


@pytest.mark.parametrize("override, message", [
    ("trainer.max_stepz=5", "unknown key trainer.max_stepz in override 'trainer.max_stepz=5'; "
                            "valid keys of trainer: accumulate, allow_worse, bootstrap_draws, ckpt_every,"),
    ("+trainer.max_stepz=5", "trainer.max_stepz: unknown key; valid keys: max_steps, lr,"),
    ("data=nope", "data=nope: no such data config; available: embedded, extxyz"),
    ("trainer.max_steps=ten", "trainer.max_steps='ten': expected int"),
    ("trainer.max_steps", "Error parsing override 'trainer.max_steps'"),
])
def test_a_bad_override_is_one_line_without_traceback(override, message, capsys):
    assert main(["train", "data.path=unused.xyz", override]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


@pytest.mark.integration  # the command as a child process
def test_sigterm_writes_a_checkpoint_and_exits_0(data_args, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "foundation", "train", "experiment=smoke", *data_args,
           f"out_dir={tmp_path}", "name=sig", "trainer.max_steps=1000000", "trainer.val_every=1000000",
           "trainer.ckpt_every=1000000", "trainer.val_at_start=false", "trainer.log_every=1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    metrics = tmp_path / "sig" / "metrics.csv"
    try:
        while proc.poll() is None and not (metrics.exists() and metrics.read_text().count("\n") > 2):
            time.sleep(0.1)  # until training has taken a couple of steps
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    steps = [step for step, _ in list_checkpoints(tmp_path / "sig")]
    assert len(steps) == 1 and 0 < steps[0] < 1000000
    assert f"stopped by signal at step {steps[0]}" in out and "resume=true" in out
    assert not (tmp_path / "sig" / "model.safetensors").exists()
