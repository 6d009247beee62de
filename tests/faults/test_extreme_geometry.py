"""Nothing below the geometry check can kill the process on a structure the check lets through:
a hypothesis property test (tests/faults/extreme_geometry_check.py) of extreme but allowed
structures through validation, the molecule key, collate, the neighbour list, ANI and PaiNN
forward and backward and the ASE calculator, run in a subprocess so that a signal (vesin's
SIGFPE on a flat molecule 1.7e3 Å across was one) fails the test instead of ending pytest.
Seeded (derandomized), 60 examples."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.faults.cli_forks import ENV

pytestmark = pytest.mark.integration  # a child process, so that a crash cannot take pytest down

SCRIPT = Path(__file__).with_name("extreme_geometry_check.py")
REPO = Path(__file__).resolve().parents[2]


def test_structures_at_the_limits_never_crash_and_give_finite_energies_and_forces():
    done = subprocess.run([sys.executable, str(SCRIPT), "60"], env=ENV, cwd=REPO, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode >= 0, f"killed by signal {-done.returncode}: {done.stderr[-4000:]}"
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-4000:]
