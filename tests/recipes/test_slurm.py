"""SLURM without a cluster: recipes/slurm/train.sbatch and the submitit launcher
(recipes/slurm/submit.py) run real `foundation train` processes, two tasks that find each other
from the SLURM environment; only the scheduler is faked (the SLURM_* environment of a job of two
tasks, and `srun`, `scontrol` and `sbatch` stand-ins on the PATH, tests/recipes/fake_slurm/). The
requeue path is what is asserted: the signal SLURM sends before the time limit → every rank
checkpoints → the exit that requeues (`scontrol requeue <job>`) → the requeued job resumes from
that checkpoint and finishes without requeueing again."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from foundation.train.checkpoint import list_checkpoints
from tests.conftest import cli_overrides

pytestmark = pytest.mark.integration  # stand-in srun/sbatch running real foundation train tasks

REPO = Path(__file__).resolve().parents[2]
FAKE = Path(__file__).with_name("fake_slurm")
SBATCH = REPO / "recipes" / "slurm" / "train.sbatch"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def scheduler(tmp_path):
    """(state folder of the stand-ins, the environment a job of two tasks on one node sees)."""
    state = tmp_path / "slurm"
    state.mkdir()
    env = {**os.environ, "PATH": f"{FAKE}:{Path(sys.executable).parent}:{os.environ['PATH']}",
           "FAKE_SLURM_DIR": str(state), "FAKE_SLURM_NTASKS": "2", "MASTER_PORT": str(_free_port()),
           "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "OUT_DIR": str(tmp_path / "runs")}
    return state, env


def _run(xyz_path, name: str, *extra: str) -> list[str]:
    return [*cli_overrides(xyz_path), f"name={name}", "trainer.device=cpu", "trainer.log_every=1",
            "trainer.val_at_start=false", "trainer.val_every=100000", "trainer.ckpt_every=100000",
            "logger.progress_bar=false", *extra]


def _signal_when_training(state: Path, run_dir: Path, sig: int, job, timeout: float = 240) -> None:
    """Once the run has logged a few steps, send `sig` to every task, as slurmd does; `job` (a
    Popen, or a path whose appearance ends the job) must still be running."""
    metrics, deadline = run_dir / "metrics.csv", time.monotonic() + timeout
    while not (metrics.exists() and len(metrics.read_text().splitlines()) > 3):
        running = job.poll() is None if isinstance(job, subprocess.Popen) else not job.exists()
        assert running and time.monotonic() < deadline, "the job did not start training"
        time.sleep(0.1)
    for pid in (state / "tasks").read_text().split():
        os.kill(int(pid), sig)


def test_sbatch_script_checkpoints_on_sigusr1_requeues_and_the_requeued_job_finishes(scheduler, xyz_path, tmp_path):
    state, env = scheduler
    env = {**env, "SLURM_JOB_ID": "777", "SLURM_JOB_NODELIST": "localhost", "SLURM_JOB_NUM_NODES": "1",
           "SLURM_NTASKS": "2", "SLURM_NTASKS_PER_NODE": "2"}
    run_dir = tmp_path / "runs" / "sb"
    job = subprocess.Popen(["bash", str(SBATCH), *_run(xyz_path, "sb", "trainer.max_steps=100000")], env=env,
                           cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _signal_when_training(state, run_dir, signal.SIGUSR1, job)
        out, err = job.communicate(timeout=240)
    finally:
        job.kill()
    assert job.returncode == 0, err[-3000:]
    (step,) = [s for s, _ in list_checkpoints(run_dir)]  # written on the signal, by both ranks' agreement
    assert f"stopped by signal at step {step}" in out and out.count("stopped by signal") == 1  # rank 0 prints
    assert not (run_dir / "model.safetensors").exists()
    assert (state / "scontrol.log").read_text() == "requeue 777\n"

    # The requeued job: the same script, resuming (here told to stop 2 steps later, so that it ends).
    again = subprocess.run(["bash", str(SBATCH), *_run(xyz_path, "sb", f"trainer.max_steps={step + 2}")],
                           env=env, cwd=tmp_path, capture_output=True, text=True, timeout=240)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"resuming from step {step}" in again.stdout and f"completed at step {step + 2}" in again.stdout
    assert (run_dir / "model.safetensors").exists()
    assert (state / "scontrol.log").read_text() == "requeue 777\n"  # finished: not requeued again


def test_submitit_launcher_checkpoints_on_its_signal_requeues_and_resumes(scheduler, xyz_path, tmp_path):
    pytest.importorskip("submitit")
    state, env = scheduler
    launcher = tmp_path / "launcher.yaml"
    launcher.write_text("nodes: 1\ntasks_per_node: 2\ncpus_per_task: 1\ntimeout_min: 60\nsignal_delay_s: 120\n"
                        "max_num_timeout: 3\nstderr_to_stdout: true\n")
    folder = tmp_path / "submitit"
    submit = subprocess.run([sys.executable, "-m", "foundation.recipes.slurm.submit", "--config", str(launcher),
                             "--folder", str(folder), "--", *_run(xyz_path, "st", "trainer.max_steps=200"),
                             "distributed=ddp", f"out_dir={tmp_path / 'runs'}"],
                            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert submit.returncode == 0, submit.stderr[-3000:]
    assert "submitted job 4242: 1 node(s) × 2 rank(s)" in submit.stdout
    script = next(folder.glob("*_submission.sh")).read_text()
    assert "#SBATCH --signal=USR2@120" in script and "srun" in script

    run_dir, ended = tmp_path / "runs" / "st", state / "job-4242.rc"
    _signal_when_training(state, run_dir, signal.SIGUSR2, ended)  # submitit's signal before the time limit
    _wait(ended)
    (step,) = [s for s, _ in list_checkpoints(run_dir)]
    assert 3 <= step < 200 and not (run_dir / "model.safetensors").exists()
    assert (state / "scontrol.log").read_text() == "requeue 4242\n"  # rank 0, through submitit
    assert ended.read_text().strip() != "0"  # rank 0 exits -1 after requeueing: the job is not done

    # SLURM starts the requeued job: the same script; submitit runs the checkpointed callable.
    ended.unlink()
    (state / "tasks").unlink()
    subprocess.run(["sbatch", str(next(folder.glob("*_submission.sh")))], env={**env, "FAKE_SLURM_REQUEUE": "4242"},
                   cwd=tmp_path, check=True, capture_output=True)
    _wait(ended)
    assert ended.read_text().strip() == "0", (state / "job-4242.out").read_text()[-3000:]
    assert (run_dir / "model.safetensors").exists() and [s for s, _ in list_checkpoints(run_dir)][-1] == 200
    assert (state / "scontrol.log").read_text() == "requeue 4242\n"


def _wait(path: Path, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name}: the job did not end"
        time.sleep(0.1)
