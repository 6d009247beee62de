"""`python -m foundation.pipelines.…` builders report a user error as `foundation …` does: one
line, exit code 2 (a real subprocess: the CC set's selection refused over labels already made)."""

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration  # the entry points as child processes


def test_a_pipeline_user_error_is_one_line_and_exit_2(tmp_path):
    (tmp_path / "labels.jsonl").write_text("")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "FOUNDATION_DEBUG": ""}
    done = subprocess.run([sys.executable, "-m", "foundation.pipelines.cc_set.select", "--out", str(tmp_path)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"foundation.pipelines.cc_set.select: error: {tmp_path}/labels.jsonl exists")
    assert "pass --force" in done.stderr and done.stderr.count("\n") == 1
