"""foundation.files: a result file is the old one or the new one, never half of one."""

import os
import stat

import pytest

from foundation.files import replacing, write_text_atomic


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
