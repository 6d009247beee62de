"""foundation.children: a pool worker ends when the process that started it is killed."""

import os
import signal
import subprocess
import sys
import time

import pytest

PARENT = """
import sys, time
from concurrent.futures import ProcessPoolExecutor
import multiprocessing
from foundation.children import die_with_parent

def work(_):
    import os
    print(os.getpid(), flush=True)
    time.sleep(120)

if __name__ == "__main__":
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"), initializer=die_with_parent) as pool:
        pool.submit(work, 0)
        time.sleep(120)
"""


@pytest.mark.integration
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux's")
def test_a_worker_ends_when_its_parent_is_killed(tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    worker = int(parent.stdout.readline())
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    for _ in range(100):
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            return
        try:  # reaped by init once it exits; a zombie still answers kill(0)
            if open(f"/proc/{worker}/stat").read().split()[2] == "Z":
                return
        except FileNotFoundError:
            return
        time.sleep(0.1)
    os.kill(worker, signal.SIGKILL)
    pytest.fail("the worker outlived its killed parent")
