"""Worker processes that do not outlive the process that started them.

A pool worker (a PySCF calculation, a training) runs its task to the end even when its parent
is gone: killed with SIGKILL, the parent cannot stop it, and a CCSD(T) calculation or a member's
training then keeps a core busy for minutes with nobody to take its result (seen: the labeller
workers of a killed `foundation adapt` run kept both cores of a restarted one busy). On Linux a
worker asks the kernel to send it SIGKILL when its parent dies (prctl PR_SET_PDEATHSIG): not
SIGTERM, which a training catches to stop cleanly after its step, and its worker would then take
the next queued task. A killed worker leaves no half-written file: every file is written to a
temporary name and renamed. Elsewhere nothing changes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Call first thing in a worker process (a pool's initializer)."""
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            return
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before the request was in place
        os.kill(os.getpid(), signal.SIGKILL)
