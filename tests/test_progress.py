"""Progress bars: redrawn in place on a terminal; through a pipe, whole lines at each tenth.
Real pipes and a real pseudo-terminal, in child processes."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = """
from foundation.progress import progress_bar
bar = progress_bar(total=95, desc="work", unit="step")
for _ in range(95):
    bar.update(1)
    bar.set_postfix(loss=0.5, refresh=True)  # as the trainer does at every logging step
bar.close()
stopped = progress_bar(total=50, desc="stopped")
stopped.update(7)
stopped.close()
progress_bar(total=10, desc="failed").close()
"""


@pytest.mark.integration  # a child process
def test_through_a_pipe_a_line_at_each_tenth_and_no_carriage_return():
    err = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True).stderr
    assert "\r" not in err
    work = [line for line in err.splitlines() if line.startswith("work")]
    percents = [int(re.search(r"(\d+)%", line).group(1)) for line in work]
    assert len(work) == 10 and 10 <= percents[0] < 20 and percents[-1] == 100, err
    assert percents == sorted(percents) and all(b - a >= 9 for a, b in zip(percents, percents[1:]))
    stopped = [line for line in err.splitlines() if line.startswith("stopped")]
    assert stopped[-1].startswith("stopped:  14%") and " 7/50 " in stopped[-1]  # where it stopped, once
    assert len(stopped) == 1
    failed = [line for line in err.splitlines() if line.startswith("failed")]
    assert failed == []  # no progress, no line: a command failing on its input prints only its error


@pytest.mark.integration  # a child process
def test_on_a_terminal_the_bar_is_redrawn_in_place():
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # 24 rows, 100 columns
    try:
        child = subprocess.Popen([sys.executable, "-c", SCRIPT], stderr=follower, stdout=subprocess.DEVNULL)
        os.close(follower)
        out = b""
        while True:  # read while it writes: a full terminal buffer would block the child
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the child has gone and everything is read
                break
            if not chunk:
                break
            out += chunk
        assert child.wait(timeout=60) == 0
    finally:
        os.close(leader)
    text = out.decode()
    assert "\r" in text and "100%" in text


@pytest.mark.integration  # a child process
def test_the_md_command_through_a_pipe(tmp_path):
    from ase.build import molecule

    molecule("CH4").write(tmp_path / "ch4.xyz")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "foundation", "md", str(tmp_path / "ch4.xyz"), "--model",
                           "ani-cc-mini", "--steps", "40"], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    bar = [line for line in done.stderr.splitlines() if line.startswith("md nve")]
    assert "\r" not in done.stderr and 2 <= len(bar) <= 12 and "40/40" in bar[-1], done.stderr


def test_every_bar_comes_from_the_one_factory():
    """tqdm is imported only by foundation/progress.py, so no bar forgets the pipe."""
    found = [str(p.relative_to(REPO)) for folder in ("foundation", "recipes", "data_pipelines")
             for p in (REPO / folder).rglob("*.py")
             if p.name != "progress.py" and re.search(r"^\s*(from|import) tqdm", p.read_text(), re.M)]
    assert found == []
