"""Training checkpoints: a dict of the run's stateful parts (model and optimiser via the engine,
schedule, EMA, data-stream position, RNG states, step, best metric), so that `resume=true`
continues exactly where an uninterrupted run would be.

Each is written to a temporary file in the run directory, flushed to disk, then renamed over
`ckpt-<step>.pt`: a crash or a full disk mid-write leaves the previous checkpoints intact and no
truncated file under a checkpoint's name. An engine that shards its state over ranks (ZeRO) has each rank write
`ckpt-<step>.rank<r>.pt` first; rank 0 writes `ckpt-<step>.pt` once all are on disk, so a
checkpoint that exists is complete. The newest `keep` are kept. Loading uses `weights_only=True`, so the
file may hold only tensors and plain Python values (no pickled objects): RNG states are
converted accordingly. These files are for resuming; the distributable model is the
`.safetensors` export (`foundation.hub.format`)."""

from __future__ import annotations

import random
import re
import warnings
from pathlib import Path

import numpy as np
import torch

from foundation.files import replacing
from foundation.errors import CheckpointError

FORMAT = "foundation-train-checkpoint"
VERSION = 1
_NAME = re.compile(r"^ckpt-(\d+)\.pt$")
_SHARD = re.compile(r"^ckpt-(\d+)\.rank\d+\.pt$")


def checkpoint_path(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / f"ckpt-{step:08d}.pt"


def list_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """(step, path) of the checkpoints in `run_dir`, oldest first."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in run_dir.iterdir() if (m := _NAME.match(p.name))]
    return sorted(found)


def save_checkpoint(run_dir: Path, step: int, state: dict, keep: int = 3) -> Path:
    """Write `state` (plus format tags and the step) atomically; prune to the newest `keep`
    (with their shards, and shards left by a checkpoint that was never completed)."""
    run_dir = Path(run_dir)
    path = checkpoint_path(run_dir, step)
    _write(path, {"format": FORMAT, "version": VERSION, "step": step, **state})
    for _, old in list_checkpoints(run_dir)[:-keep]:
        old.unlink(missing_ok=True)
    kept = {s for s, _ in list_checkpoints(run_dir)}
    for shard in run_dir.glob("ckpt-*.rank*.pt"):
        m = _SHARD.match(shard.name)
        if m and int(m.group(1)) not in kept and int(m.group(1)) < step:
            shard.unlink(missing_ok=True)
    return path


def shard_path(run_dir: Path, step: int, rank: int) -> Path:
    return Path(run_dir) / f"ckpt-{step:08d}.rank{rank:05d}.pt"


def save_shard(run_dir: Path, step: int, rank: int, state: dict) -> Path:
    """One rank's part of a sharded state (ZeRO optimiser states), written by that rank before
    rank 0 writes the checkpoint itself: a checkpoint that exists has all its shards."""
    path = shard_path(run_dir, step, rank)
    _write(path, {"format": FORMAT, "version": VERSION, "step": step, "rank": rank, **state})
    return path


def read_shard(run_dir: Path, step: int, rank: int, map_location="cpu") -> dict:
    return read_checkpoint(shard_path(run_dir, step, rank), map_location)


def _write(path: Path, obj: dict) -> None:
    try:
        with replacing(path, durable=True) as tmp, open(tmp, "wb") as f:
            torch.save(obj, f)  # through a Python file: torch writes a path from C++, out of our reach
    except BaseException as e:
        failed = _os_error(e)
        if failed is not None:  # a full disk or a lost mount: say so in one line
            raise CheckpointError(f"{path}: cannot write the checkpoint ({failed.strerror or failed}); the "
                                  f"earlier checkpoints in {path.parent} are untouched") from None
        raise


def _os_error(e: BaseException | None) -> OSError | None:
    """The OSError behind `e`: torch.save reports a failed write as its own RuntimeError (raised
    while closing the half-written archive), with the OSError as its context."""
    while e is not None and not isinstance(e, OSError):
        e = e.__cause__ or e.__context__
    return e


def read_checkpoint(path: Path, map_location="cpu") -> dict:
    """Load a training checkpoint without unpickling objects; CheckpointError if it is not one."""
    path = Path(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint") from None
    except Exception as e:  # torch raises several types for a corrupt or foreign file
        raise CheckpointError(f"{path}: not a readable training checkpoint ({type(e).__name__}: "
                              f"{str(e).splitlines()[0] if str(e) else ''})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a Foundation training checkpoint")
    if state.get("version", 0) > VERSION:
        raise CheckpointError(f"{path}: checkpoint format {state['version']} is newer than this "
                              f"library reads ({VERSION}); upgrade foundation")
    return state


def latest_checkpoint(run_dir: Path, map_location="cpu") -> tuple[Path, dict] | None:
    """The newest checkpoint in `run_dir` that loads (an unreadable one is skipped with a warning:
    renames are atomic, but a disk can still corrupt a file), or None when there is none."""
    for _, path in reversed(list_checkpoints(run_dir)):
        try:
            return path, read_checkpoint(path, map_location)
        except CheckpointError as e:
            warnings.warn(f"skipping {e}", stacklevel=2)
    return None


def rng_state() -> dict:
    """Python, NumPy, torch (and CUDA) generator states, as tensors and plain values."""
    np_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": (np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
