"""Stop cleanly when the scheduler asks: SIGTERM (SLURM's time limit, a pre-empted node), SIGUSR1
(SLURM's `--signal=USR1@90` warning, as recipes/slurm/train.sbatch asks) or SIGUSR2 (submitit's
`--signal=USR2@…`, recipes/slurm/submit.py) sets a flag; the loop finishes its step, writes a
checkpoint and returns, and the process exits 0 so the job can be requeued with `resume=true`."""

from __future__ import annotations

import signal
import threading

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2)


class StopRequest:
    """Context manager installing the handlers (main thread only) and restoring the old ones."""

    def __init__(self):
        self.signum: int | None = None
        self._previous: dict = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def _handle(self, signum, frame) -> None:
        self.signum = signum

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
