"""`python -m foundation.recipes.…` reports a user error as `foundation …` does: one line naming
the module and the fix, exit code 2, the traceback only with FOUNDATION_DEBUG=1 (a real
subprocess, from an empty folder)."""

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration  # the entry points as child processes


def _run(cwd, *args, debug=""):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "FOUNDATION_DEBUG": debug}
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def test_a_recipe_user_error_is_one_line_and_exit_2(tmp_path):
    done = _run(tmp_path, "foundation.recipes.ensemble", "--members", "0")
    assert done.returncode == 2, done.stderr
    assert done.stderr == "foundation.recipes.ensemble: error: --members 0: need at least one member\n"


def test_foundation_debug_shows_the_recipe_traceback(tmp_path):
    done = _run(tmp_path, "foundation.recipes.ensemble", "--members", "0", debug="1")
    assert done.returncode == 1 and "Traceback" in done.stderr
    assert done.stderr.rstrip().endswith("UserError: --members 0: need at least one member")
