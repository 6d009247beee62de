"""`python -m benchmarks.…` reports a user error as `foundation …` does: one line, exit code 2
(a real subprocess: a benchmark's work folder whose shard manifest is not JSON)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration  # the entry points as child processes

REPO = Path(__file__).resolve().parents[2]


def test_a_benchmark_user_error_is_one_line_and_exit_2(tmp_path):
    (tmp_path / "data").mkdir()
    manifest = tmp_path / "data" / "manifest.json"
    manifest.write_text("not json")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "FOUNDATION_DEBUG": ""}
    done = subprocess.run([sys.executable, "-m", "benchmarks.active_learning", "--work", str(tmp_path)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"benchmarks.active_learning: error: {manifest}: not a JSON manifest")
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
