"""foundation.files: a result file is the old one or the new one, never half of one."""

import os
import stat

import pytest

from foundation.files import replacing, write_json, write_text_atomic


def test_a_finished_write_replaces_the_file_with_the_permissions_open_would_give(tmp_path):
    target = tmp_path / "sub" / "model.bin"
    old = os.umask(0o022)
    try:
        with replacing(target, durable=True) as tmp:
            assert tmp.parent == target.parent and tmp != target
            tmp.write_bytes(b"new")
    finally:
        os.umask(old)
    assert target.read_bytes() == b"new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644  # mkstemp alone gives 0600
    assert [p.name for p in target.parent.iterdir()] == ["model.bin"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp_file(tmp_path):
    target = tmp_path / "report.md"
    write_text_atomic(target, "old ✓")
    with pytest.raises(RuntimeError):
        with replacing(target) as tmp:
            tmp.write_text("half of the new")
            raise RuntimeError("killed mid-write")
    assert target.read_text(encoding="utf-8") == "old ✓"
    assert [p.name for p in tmp_path.iterdir()] == ["report.md"]


def test_write_json_writes_numpy_and_torch_numbers_as_numbers_and_paths_as_strings(tmp_path):
    import json

    import numpy as np
    import torch

    value = {"mae": np.float32(0.5), "counts": np.arange(3), "loss": torch.tensor(2.0), "run": tmp_path / "run"}
    path = write_json(tmp_path / "out" / "results.json", value)
    assert json.loads(path.read_text()) == {"mae": 0.5, "counts": [0, 1, 2], "loss": 2.0, "run": str(tmp_path / "run")}
    assert path.read_text().endswith("}\n") and [p.name for p in path.parent.iterdir()] == ["results.json"]
