"""Training checkpoints: atomic writes, pruning, safe loading, RNG round trips."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from foundation.errors import CheckpointError
from foundation.train.checkpoint import (latest_checkpoint, list_checkpoints, read_checkpoint, rng_state,
                                        save_checkpoint, set_rng_state)


def test_saves_atomically_and_keeps_the_newest(tmp_path):
    for step in (3, 6, 9, 12):
        save_checkpoint(tmp_path, step, {"weights": torch.full((2,), float(step))}, keep=2)
    assert [s for s, _ in list_checkpoints(tmp_path)] == [9, 12]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt-00000009.pt", "ckpt-00000012.pt"]
    path, state = latest_checkpoint(tmp_path)
    assert path.name == "ckpt-00000012.pt" and state["step"] == 12
    assert torch.equal(state["weights"], torch.full((2,), 12.0))


def test_a_failed_write_leaves_the_previous_checkpoints_and_no_partial_file(tmp_path):
    save_checkpoint(tmp_path, 1, {"x": torch.zeros(1)})
    with pytest.raises(Exception):
        save_checkpoint(tmp_path, 2, {"x": lambda: None})  # cannot be pickled: fails mid-write
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt-00000001.pt"]


class Payload:
    """An arbitrary class: unpickling it would mean running code named by the file."""


def test_loading_never_unpickles_objects(tmp_path):
    path = tmp_path / "ckpt-00000001.pt"
    torch.save({"format": "foundation-train-checkpoint", "version": 1, "step": 1,
                "payload": Payload()}, path)
    with pytest.raises(CheckpointError, match="not a readable training checkpoint"):
        read_checkpoint(path)


def test_a_corrupt_newest_checkpoint_is_skipped_with_a_warning(tmp_path):
    save_checkpoint(tmp_path, 4, {"x": torch.ones(1)})
    (tmp_path / "ckpt-00000008.pt").write_bytes(b"not a checkpoint")
    with pytest.warns(UserWarning, match="ckpt-00000008"):
        path, state = latest_checkpoint(tmp_path)
    assert state["step"] == 4
    assert latest_checkpoint(tmp_path / "absent") is None
    with pytest.raises(CheckpointError, match="not a Foundation training checkpoint"):
        torch.save({"weights": torch.ones(1)}, tmp_path / "other.pt")
        read_checkpoint(tmp_path / "other.pt")


def test_rng_states_survive_a_checkpoint(tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    save_checkpoint(tmp_path, 1, {"rng": rng_state()})
    expected = (random.random(), np.random.rand(), torch.rand(1))
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    set_rng_state(read_checkpoint(tmp_path / "ckpt-00000001.pt")["rng"])
    assert (random.random(), np.random.rand()) == expected[:2]
    assert torch.equal(torch.rand(1), expected[2])
