"""A disk that fills up while a file is being written: the previous file survives whole, no partial
file is left, and training resumes from the last checkpoint once there is room again.

The full disk is simulated in-process (no root, no tmpfs needed): the temporary file a writer
opens gets a file object that takes a few KiB and then fails every write with ENOSPC, exactly the
OSError a full filesystem raises, part-way through the real serialisation code."""

from __future__ import annotations

import builtins
import contextlib
import errno
import io
import os
from pathlib import Path

import pytest
import torch

from foundation.cli.main import main
from foundation.data.shards.manifest import load_manifest, write_manifest
from foundation.data.shards.writer import write_shards
from foundation.hub.format import read_header, save_model
from foundation.models import build_model
from foundation.pipelines.synthetic import synthetic_samples
from foundation.train.checkpoint import list_checkpoints, read_checkpoint

from tests.conftest import TINY_MODEL, cli_overrides

NO_SPACE = os.strerror(errno.ENOSPC)


class _FullDisk:
    """A writable file with `room` bytes left on its disk."""

    def __init__(self, f, room: int):
        self._f, self._room = f, room

    def write(self, data):
        if len(data) > self._room:
            self._f.write(data[: self._room])
            self._room = 0
            raise OSError(errno.ENOSPC, NO_SPACE)
        self._room -= len(data)
        return self._f.write(data)

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()


@contextlib.contextmanager
def full_disk(prefix: str, room: int = 4096, after: int = 0):
    """Files whose name starts with `prefix` (the writers' temp files), opened for writing, get a
    full disk with `room` bytes left; the first `after` of them are written normally."""
    real_open = builtins.open
    seen = [0]

    def open_(file, mode="r", *args, **kwargs):
        f = real_open(file, mode, *args, **kwargs)
        if isinstance(file, (str, os.PathLike)) and Path(file).name.startswith(prefix) and "w" in mode:
            seen[0] += 1
            if seen[0] > after:
                return _FullDisk(f, room)
        return f

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(builtins, "open", open_)
        mp.setattr(io, "open", open_)
        yield


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_a_full_disk_while_checkpointing_keeps_the_previous_checkpoint_and_resume_continues(
        xyz_path, tmp_path, capsys):
    args = ["train", *cli_overrides(xyz_path), f"out_dir={tmp_path}", "name=full", "trainer.max_steps=12",
            "trainer.ckpt_every=6", "trainer.val_every=6", "trainer.val_at_start=false"]
    run_dir = tmp_path / "full"
    with full_disk(".ckpt-", after=1):  # the checkpoint of step 6 fits, that of step 12 does not
        assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"ckpt-00000012.pt: cannot write the checkpoint ({NO_SPACE})" in err
    assert [step for step, _ in list_checkpoints(run_dir)] == [6]
    assert read_checkpoint(run_dir / "ckpt-00000006.pt")["step"] == 6
    assert _leftovers(run_dir) == [] and not (run_dir / "model.safetensors").exists()

    assert main([*args, "resume=true"]) == 0  # room again: continue from step 6 to the end
    assert "resuming from step 6" in capsys.readouterr().out
    assert [step for step, _ in list_checkpoints(run_dir)] == [6, 12]
    assert (run_dir / "model.safetensors").is_file()


def test_a_full_disk_while_writing_a_manifest_keeps_the_previous_one(tmp_path):
    shards = write_shards(synthetic_samples(10), tmp_path, "train")
    before = write_manifest(tmp_path, shards, command="first").read_bytes()
    with full_disk(".manifest.json.", room=100), pytest.raises(OSError, match=NO_SPACE):
        write_manifest(tmp_path, shards, command="second")
    assert (tmp_path / "manifest.json").read_bytes() == before
    assert load_manifest(tmp_path).data["generator"]["command"] == "first"
    assert _leftovers(tmp_path) == [] and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_full_disk_while_exporting_a_model_keeps_the_previous_file(tmp_path, monkeypatch):
    import safetensors.torch

    model = build_model({**TINY_MODEL, "heads": ["wb97x_631gs"]})
    path = save_model(model, tmp_path / "model.safetensors", {"metrics": {"step": 1}})
    before = path.read_bytes()
    real_save = safetensors.torch.save_file

    def save_file_on_a_full_disk(tensors, filename, metadata=None):
        real_save(tensors, filename, metadata=metadata)
        with open(filename, "r+b") as f:  # what reached the disk before it filled up
            f.truncate(os.path.getsize(filename) // 2)
        raise OSError(errno.ENOSPC, NO_SPACE)

    monkeypatch.setattr(safetensors.torch, "save_file", save_file_on_a_full_disk)
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    with pytest.raises(OSError, match=NO_SPACE):
        save_model(model, path, {"metrics": {"step": 2}})
    assert path.read_bytes() == before and read_header(path)["metrics"] == {"step": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]
