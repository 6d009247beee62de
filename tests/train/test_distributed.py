"""DDP through a real `torchrun` (2 processes, gloo on 127.0.0.1): the same weights as one process
taking the same global batch, exact resume after a SIGKILL, a checkpoint on SIGTERM, rank-0-only
logging with an offline wandb run; and the launcher environment read without launching."""

from __future__ import annotations

import csv
import math
import signal
import subprocess
import time

import pytest
import torch
from safetensors.torch import load_file

from foundation.errors import UserError
from foundation.train.checkpoint import list_checkpoints
from foundation.train.compose import load_run_config
from foundation.train.engines.ddp import DDPConfig
from foundation.train.engines.distributed_env import DistributedConfig, detect_env, first_host
from foundation.train.trainer import Trainer

from . import multiproc
from .multiproc import TINY, assert_close, final_state, reference, xyz_data


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    """One 12-step, 2-rank DDP run of the CLI, logging to wandb offline."""
    tmp = tmp_path_factory.mktemp("ddp")
    common = [*TINY, *xyz_data(multiproc.write_xyz(tmp / "train.xyz")), f"out_dir={tmp / 'runs'}"]
    done = multiproc.train([*common, "distributed=ddp", "name=straight", "logger=wandb"])
    return common, tmp / "runs", done


@pytest.mark.integration  # torchrun
def test_two_ddp_ranks_equal_one_process_with_the_same_global_batch(ddp_run):
    common, runs, _ = ddp_run
    weights, ema = final_state(runs / "straight")
    ref_weights, ref_ema = reference([*common, "name=reference"])
    assert_close(weights, ref_weights)
    assert_close(ema, ref_ema)
    rows = _rows(runs / "straight")
    assert float(rows[-1]["val/loss"]) < float(rows[0]["val/loss"])


@pytest.mark.integration  # torchrun
def test_only_rank0_logs_and_an_offline_wandb_run_is_written(ddp_run):
    _, runs, done = ddp_run
    assert done.stdout.count("completed at step 12") == 1  # rank 1 prints nothing
    rows = _rows(runs / "straight")
    assert [r["step"] for r in rows] == ["0", "3", "6", "9", "12"]  # one row per step, not per rank
    for key in ("loss/wb97x_631gs", "lr", "grad_norm", "atoms_per_s", "memory_mb"):
        assert math.isfinite(float(rows[-1][key])), key
    assert float(rows[-1]["val/wb97x_631gs/energy_mae"]) > 0
    (offline,) = (runs / "straight" / "wandb").glob("offline-run-*")
    (record,) = offline.glob("run-*.wandb")  # what `wandb sync` uploads: config, then metrics
    content = record.read_bytes()
    for key in (b"data_manifest_hash", b"world_size", b"loss/wb97x_631gs", b"grad_norm", b"memory_mb"):
        assert key in content, key


@pytest.mark.integration  # torchrun
def test_sigkill_after_a_checkpoint_then_resume_ends_with_the_uninterrupted_weights(ddp_run):
    common, runs, _ = ddp_run
    killed = multiproc.train_until_killed([*common, "distributed=ddp", "name=killed"], kill_at=8)
    assert killed.returncode != 0  # rank 1 died at step 8, after the checkpoint of step 6
    assert [s for s, _ in list_checkpoints(runs / "killed")] == [6]
    multiproc.train([*common, "distributed=ddp", "name=killed", "resume=true"])
    for got, want in zip(final_state(runs / "killed"), final_state(runs / "straight")):
        for name, value in want.items():
            assert torch.equal(got[name], value), name
    exported = load_file(runs / "killed" / "model.safetensors")
    for name, value in load_file(runs / "straight" / "model.safetensors").items():
        assert torch.equal(exported[name], value), name


@pytest.mark.integration  # torchrun
def test_sigterm_writes_a_checkpoint_before_the_ranks_exit(tmp_path):
    common = [*TINY, *xyz_data(multiproc.write_xyz(tmp_path / "train.xyz")), f"out_dir={tmp_path}",
              "distributed=ddp", "name=sig", "trainer.max_steps=100000", "trainer.log_every=1",
              "trainer.val_at_start=false", "trainer.val_every=100000", "trainer.ckpt_every=100000"]
    proc = subprocess.Popen(multiproc.torchrun(["-m", "foundation", "train", *common]), env=multiproc.env(),
                            cwd=multiproc.REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        metrics = tmp_path / "sig" / "metrics.csv"
        deadline = time.monotonic() + 240
        while not (metrics.exists() and len(metrics.read_text().splitlines()) > 3):
            assert proc.poll() is None and time.monotonic() < deadline, "the run did not start training"
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)  # to torchrun, as SLURM does at the time limit
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    steps = [step for step, _ in list_checkpoints(tmp_path / "sig")]
    assert len(steps) == 1 and 3 <= steps[0] < 100000, err[-3000:]
    assert f"stopped by signal at step {steps[0]}" in out
    assert not (tmp_path / "sig" / "model.safetensors").exists()


def test_ddp_in_one_process_runs_unchanged_and_matches_the_single_engine(tmp_path):
    common = [*TINY, *xyz_data(multiproc.write_xyz(tmp_path / "train.xyz")), f"out_dir={tmp_path}",
              "trainer.max_steps=4", "trainer.val_every=4", "trainer.ckpt_every=4"]
    single = Trainer(load_run_config([*common, "name=single"]))
    single.train()
    ddp = Trainer(load_run_config([*common, "name=ddp", "distributed=ddp"]))
    assert isinstance(ddp.run.distributed, DDPConfig) and ddp.engine.world_size == 1
    ddp.train()
    for name, value in single.model.state_dict().items():
        assert torch.equal(ddp.model.state_dict()[name], value), name


@pytest.mark.integration  # torchrun
def test_accumulating_batches_on_two_ranks_equals_one_process_with_the_same_global_batch(tmp_path):
    common = [*TINY, *xyz_data(multiproc.write_xyz(tmp_path / "train.xyz")), f"out_dir={tmp_path}",
              "trainer.max_steps=6", "trainer.val_every=6", "trainer.ckpt_every=6"]
    multiproc.train([*common, "distributed=ddp", "trainer.accumulate=2", "name=acc"])
    weights, ema = final_state(tmp_path / "acc")
    ref_weights, ref_ema = reference([*common, "name=reference"], accumulate=2)
    assert_close(weights, ref_weights)
    assert_close(ema, ref_ema)


def test_accumulation_all_reduces_once_per_step_not_per_batch(tmp_path):
    common = [*TINY, *xyz_data(multiproc.write_xyz(tmp_path / "train.xyz")), f"out_dir={tmp_path}",
              "trainer.max_steps=2", "trainer.val_every=2", "trainer.ckpt_every=2", "distributed=ddp"]
    trainer = Trainer(load_run_config([*common, "trainer.accumulate=3", "name=acc"]))
    reduced = []

    def counting(state, bucket):  # DDP's default hook (mean over ranks), counted
        reduced.append(bucket.index())
        return _allreduce(bucket)

    trainer.engine.ddp.register_comm_hook(None, counting)
    trainer.train()
    assert len(reduced) == 2  # one bucket (the tiny model's gradients) per step, 2 steps of 3 batches


def _allreduce(bucket):
    import torch.distributed as dist

    tensor = bucket.buffer().div_(dist.get_world_size())
    return dist.all_reduce(tensor, async_op=True).get_future().then(lambda f: f.value()[0])


def test_launcher_environments_are_read():
    torchrun = {"RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "4",
                "MASTER_ADDR": "node1", "MASTER_PORT": "29500"}
    env = detect_env(torchrun)
    assert (env.rank, env.world_size, env.local_rank, env.master_addr, env.master_port, env.launcher) == \
        (3, 8, 1, "node1", 29500, "torchrun")
    slurm = {"SLURM_PROCID": "5", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1", "SLURM_NTASKS_PER_NODE": "4(x2)",
             "SLURM_JOB_NODELIST": "gpu[007-008]", "SLURM_JOB_ID": "123456"}
    env = detect_env(slurm)
    assert (env.rank, env.world_size, env.local_rank, env.local_world_size, env.master_addr, env.launcher) == \
        (5, 8, 1, 4, "gpu007", "slurm")
    assert env.master_port == detect_env(slurm).master_port  # every task derives the same port
    assert detect_env({}).world_size == 1 and detect_env({"SLURM_PROCID": "0", "SLURM_NTASKS": "1"}).world_size == 1
    assert first_host("cn12,cn13") == "cn12" and first_host("a[01,05-07]b") == "a01"
    with pytest.raises(UserError, match="RANK='x'"):
        detect_env({"RANK": "x", "WORLD_SIZE": "2"})


def test_learning_rate_scaling_and_config_checks():
    assert DistributedConfig(lr_scaling="linear", base_world_size=2).lr_scale(8) == 4.0
    assert DistributedConfig(lr_scaling="sqrt").lr_scale(4) == 2.0
    assert DistributedConfig().lr_scale(64) == 1.0
    with pytest.raises(UserError, match="distributed.lr_scaling='cubic'"):
        DistributedConfig(lr_scaling="cubic")
    with pytest.raises(UserError, match="distributed.bucket_cap_mb=0"):
        DDPConfig(bucket_cap_mb=0)
    with pytest.raises(UserError, match="distributed='mpi'"):
        load_run_config(["data.path=x.xyz", "distributed=ddp", "distributed.name=mpi"])


def _rows(run_dir):
    with open(run_dir / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))
