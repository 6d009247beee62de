"""Helpers of the multi-process training tests (test_distributed.py, test_deepspeed.py): a tiny
run's overrides on the embedded data, a real `torchrun` on 127.0.0.1, and the one-process
reference that takes the same global batch.

Also the script torchrun runs to kill a run (not a test itself):

    multiproc.py OVERRIDES_JSON KILL_AT   # rank 1 SIGKILLs itself when it draws batch KILL_AT
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
EMBEDDED = REPO / "foundation" / "data" / "embedded"
FIDELITY = "wb97x_631gs"
TINY = ["model.elements=[1,6,7,8]", "model.radial_num_shifts=8", "model.angular_num_shifts=2",
        "model.angular_num_sections=4", "model.hidden={H:[16,8],C:[16,8],N:[16,8],O:[16,8]}",
        "trainer.max_steps=12", "trainer.lr=1e-2", "trainer.warmup_steps=2", "trainer.val_every=6",
        "trainer.ckpt_every=6", "trainer.log_every=3", "trainer.ema_decay=0.9", "trainer.device=cpu",
        "logger.progress_bar=false"]


def write_xyz(path: Path) -> Path:
    """The embedded data's DFT-labelled training structures as an extxyz file (eV, eV/Å)."""
    from foundation.data.shards.manifest import load_manifest
    from foundation.data.shards.reader import iter_samples
    from foundation.data.ase_io import write_extxyz

    samples = [s for s in iter_samples(load_manifest(str(EMBEDDED)), "train", "raise") if FIDELITY in s.forces]
    write_extxyz(path, samples, energy_key="REF_energy", forces_key="REF_forces", fidelity=FIDELITY)
    return path


def xyz_data(path: Path) -> list[str]:
    return [f"data.path={path}", "data.energy_key=REF_energy", "data.forces_key=REF_forces",
            f"data.fidelity={FIDELITY}", "data.split=conformer", "data.max_atoms_per_batch=48"]


def shard_data() -> list[str]:
    # the two label sets these tests were written for, half the draws each (the embedded data holds
    # MP2 too, and its MP2-only shards now come between: a few steps may otherwise never reach CC)
    return ["data=embedded", "data.fidelities=[wb97x_631gs,ccsdt_ccpvdz]",
            "data.fidelity_ratios={wb97x_631gs: 0.5, ccsdt_ccpvdz: 0.5}", "data.max_atoms_per_batch=48",
            "data.shuffle_buffer=16"]


def env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(REPO),
            "WANDB_MODE": "offline", "WANDB_SILENT": "true",
            "TORCH_EXTENSIONS_DIR": str(REPO / ".cache" / "torch_extensions")}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(args: list[str], nproc: int = 2) -> list[str]:
    """A one-node torchrun with a c10d rendezvous on 127.0.0.1 (as on a cluster, with one node)."""
    return [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}", "--nnodes=1",
            "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{free_port()}", "--max-restarts=0", *args]


def train(overrides: list[str], nproc: int = 2, timeout: float = 300) -> subprocess.CompletedProcess:
    done = subprocess.run(torchrun(["-m", "foundation", "train", *overrides], nproc), env=env(), cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return done


def train_until_killed(overrides: list[str], kill_at: int, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(torchrun([__file__, json.dumps(overrides), str(kill_at)]), env=env(), cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


def final_state(run_dir: Path) -> tuple[dict, dict]:
    """(model weights, EMA weights) of the newest checkpoint in `run_dir`."""
    from foundation.train.checkpoint import latest_checkpoint

    _, saved = latest_checkpoint(run_dir)
    return saved["engine"]["model"], saved["ema"]["shadow"]


def reference(overrides: list[str], world_size: int = 2, accumulate: int = 1) -> tuple[dict, dict]:
    """The one-process run with the same global batch: each step takes the batches the ranks
    would draw (`accumulate` each), accumulates their losses divided by `world_size × accumulate`,
    then clips and steps once. One thread, as each rank has (OMP_NUM_THREADS=1): with more, the sums
    are added in another order and the weights drift apart by up to 1e-2 in 12 steps."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _reference(overrides, world_size, accumulate)
    finally:
        torch.set_num_threads(threads)


def _reference(overrides: list[str], world_size: int, accumulate: int) -> tuple[dict, dict]:
    from foundation.models.prediction import predict
    from foundation.train.compose import load_run_config
    from foundation.train.loss import energy_force_loss
    from foundation.train.trainer import Trainer

    trainer = Trainer(load_run_config([*overrides, "distributed=single", "trainer.accumulate=1"]))
    tc, engine = trainer.config, trainer.engine
    streams = [iter(trainer.data.train_stream(seed=tc.seed, rank=r, world_size=world_size))
               for r in range(world_size)]
    params = list(engine.model.parameters())
    for step in range(1, tc.max_steps + 1):
        trainer.schedule.set_step(step)
        ranks = []  # each rank's accumulated gradient, then their sum as the all-reduce adds them
        for stream in streams:
            for _ in range(accumulate):
                batch = next(stream).to(engine.device, trainer.dtype)
                force_heads = trainer.loss_config.force_heads(batch, trainer.heads)
                pred = predict(engine.model, batch, trainer.heads, force_heads, create_graph=True)
                loss, _ = energy_force_loss(pred, batch, trainer.loss_config)
                (loss / (world_size * accumulate)).backward()
            ranks.append([p.grad for p in params])
            engine.optimizer.zero_grad(set_to_none=True)
        for p, grads in zip(params, zip(*ranks)):
            present = [g for g in grads if g is not None]
            p.grad = sum(present[1:], present[0]) if present else None
        engine.clip_grad_norm(tc.grad_clip)
        engine.step()
        trainer.ema.update(trainer.model)
    trainer.close()
    return trainer.model.state_dict(), trainer.ema.state_dict()["shadow"]


def assert_close(got: dict, want: dict, atol: float = 1e-5) -> None:
    assert set(got) == set(want)
    for name, value in want.items():
        diff = (got[name].double() - value.double()).abs().max().item()
        assert diff <= atol, f"{name}: differs by {diff:.3g}"


def _kill_run(overrides: list[str], kill_at: int) -> None:
    """Train; rank 1 dies by SIGKILL (no handler, no cleanup) on drawing batch `kill_at`."""
    import dataclasses

    sys.path.insert(0, str(Path(__file__).parent))
    from conftest import HookedData

    from foundation.train.compose import load_run_config
    from foundation.train.trainer import Trainer

    def kill(n, batch):
        if n == kill_at and int(os.environ["RANK"]) == 1:
            os.kill(os.getpid(), signal.SIGKILL)

    config = load_run_config(overrides)
    Trainer(dataclasses.replace(config, data=HookedData(config.data, kill))).train()


if __name__ == "__main__":
    torch.set_num_threads(1)
    _kill_run(json.loads(sys.argv[1]), int(sys.argv[2]))
