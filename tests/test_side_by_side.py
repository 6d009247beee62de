"""foundation.side_by_side: tasks in this process and in spawned workers, results in order; an
error here stops the workers; a broken pool's tasks come back here."""

import subprocess
import sys
import time

import pytest

from foundation.side_by_side import side_by_side


def test_without_workers_everything_runs_here_in_order():
    assert side_by_side(4, lambda k: k * 10, None, workers=0) == [0, 10, 20, 30]


SCRIPT = """
import os, sys, time
from foundation.side_by_side import side_by_side

def elsewhere(k):
    open(os.path.join(sys.argv[1], f"elsewhere{k}"), "w").close()
    time.sleep(float(sys.argv[2]))
    return ("elsewhere", k, os.getpid())

def here(k):
    if sys.argv[3] == "fail" and k == 0:
        time.sleep(4)  # the worker has started its first task by then
        raise ValueError("boom")
    time.sleep(float(sys.argv[2]))
    return ("here", k, os.getpid())

GUARD
    done = []
    try:
        out = side_by_side(6, here, elsewhere, workers=1, done=done.append)
    except ValueError:
        print("raised", flush=True)
        sys.exit(3)
    print(repr((out, sorted(done), os.getpid())), flush=True)
"""


def _run(tmp_path, guarded=True, mode="ok", seconds=0.3):
    body = SCRIPT.replace("GUARD", 'if __name__ == "__main__":' if guarded else "if True:")
    script = tmp_path / "script.py"
    script.write_text(body)
    return subprocess.run([sys.executable, str(script), str(tmp_path), str(seconds), mode],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.integration
def test_results_in_order_task_0_here_the_worker_and_this_process_share_the_rest(tmp_path):
    done = _run(tmp_path)
    assert done.returncode == 0, done.stderr
    out, finished_elsewhere, parent = eval(done.stdout.strip().splitlines()[-1])
    assert [k for _, k, _ in out] == list(range(6))
    assert out[0][0] == "here" and out[0][2] == parent
    elsewhere = {k for where, k, _ in out if where == "elsewhere"}
    assert elsewhere and any(where == "here" for where, k, _ in out[1:])  # both kept working
    assert sorted(elsewhere) == finished_elsewhere


@pytest.mark.integration
def test_an_error_here_stops_the_workers_and_starts_no_queued_task(tmp_path):
    start = time.perf_counter()
    done = _run(tmp_path, mode="fail", seconds=30)
    assert done.returncode == 3 and "raised" in done.stdout
    assert time.perf_counter() - start < 20  # not the 30 s of the task in flight, nor the queued ones
    assert len(list(tmp_path.glob("elsewhere*"))) == 1  # one worker, one task handed out


@pytest.mark.integration
def test_a_script_without_a_main_guard_runs_everything_here_with_a_note(tmp_path):
    done = _run(tmp_path, guarded=False, seconds=0.05)
    assert done.returncode == 0, done.stderr
    out, _, parent = eval(done.stdout.strip().splitlines()[-1])
    assert [k for _, k, _ in out] == list(range(6)) and all(pid == parent for _, _, pid in out)
    assert "the rest runs in this process" in done.stderr
