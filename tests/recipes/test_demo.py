"""`make demo` typed twice in one folder: the first runs, the second (nothing changed) prints the
finished result at once; both exit 0. The demo's fastest mode (`--fast --no-learning-curve
--members 1`, about 50 s on 2 busy cores), in an empty folder, as a real subprocess."""

import os
import subprocess
import sys

import pytest

from foundation.models.mace_torch import installed

pytestmark = pytest.mark.integration  # the demo as a child process, twice

DEMO = [sys.executable, "-m", "foundation.recipes.demo", "--fast", "--no-learning-curve", "--members", "1"]


def _demo(cwd):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    done = subprocess.run(DEMO, cwd=cwd, env=env, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def test_the_demo_runs_twice_in_one_folder(tmp_path):
    first = _demo(tmp_path)
    report = tmp_path / "runs" / "demo" / "report" / "report.md"
    assert report.is_file() and "== 1/5" in first
    if installed():  # MACE on its small budget, the budget in its rows' labels
        assert "| MACE (600 pretraining steps) → CC finetune |" in first
    written = report.stat().st_mtime_ns
    second = _demo(tmp_path)
    assert "runs/demo: finished on" in second.splitlines()[0] and "== 1/5" not in second
    # the ensemble's row, whichever recipe the validation molecules chose (the frontier's once labelled)
    table = [line for line in first.splitlines() if line.startswith("| ANI-1x → CC: ") and " ensemble x1 |" in line]
    assert table and table[0] in second  # the same result, shown again
    assert report.stat().st_mtime_ns == written
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["demo"]  # nothing moved aside
