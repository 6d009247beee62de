"""Independent tasks side by side: task 0 and whatever no worker has taken in this process, the
others in spawned one-thread worker processes (`side_by_side`).

Why task 0 here: its result may be more than a picklable value (an ensemble's member 0 keeps its
trainer: the split, the metrics). Why this process works too: on an n-core machine n - 1 workers
and this process keep every core busy. Tasks are handed out one at a time (a worker asks for the
next when it is done, this process takes from the other end), so no task waits in a queue
while a core is free. What goes wrong is not left running:
- an error or Ctrl-C in this process stops the workers at once (no queued task starts);
- a pool that breaks (a worker killed; a script without `if __name__ == "__main__":`, which
  spawned workers re-run) is given up on with one note, and its tasks run here;
- workers end with this process (`foundation.children`).
"""

from __future__ import annotations

import collections
import multiprocessing
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any


def side_by_side(count: int, here: Callable[[int], Any], elsewhere: Callable[[int], Any], workers: int,
                 done: Callable[[int], None] = lambda k: None) -> list:
    """[result of task k for k in range(count)]: `here(k)` in this process (task 0 always),
    `elsewhere(k)` (picklable: a module-level function or a partial of one) in one of `workers`
    spawned processes; `done(k)` when a worker's task k has finished."""
    if getattr(multiprocessing.current_process(), "_inheriting", False):
        # a worker still starting is re-running a script that has no `if __name__ == "__main__":`:
        # it stops here, its pool breaks, and the parent does the work
        raise RuntimeError("foundation.side_by_side called while a worker process was starting")
    if workers < 1 or count < 2:
        return [here(k) for k in range(count)]
    from foundation.threads import one_thread_worker

    pending = collections.deque(range(1, count))
    lock, futures, broken = threading.Lock(), {}, []
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=one_thread_worker)

    def hand_out(_: Future | None = None) -> None:
        with lock:
            if broken or not pending:
                return
            k = pending.popleft()
            try:
                future = futures[k] = pool.submit(elsewhere, k)
            except (BrokenProcessPool, RuntimeError) as err:  # broken, or shut down after an error here
                broken.append(k)
                _note_broken(err)
                return
        future.add_done_callback(lambda f, k=k: finished(k, f))

    def finished(k: int, future: Future) -> None:
        if future.cancelled():
            return
        if isinstance(future.exception(), BrokenProcessPool):
            with lock:
                broken.append(k)
            _note_broken(future.exception())
            return
        done(k)
        hand_out()

    def take() -> int | None:
        with lock:
            if broken:  # the pool is gone: its tasks come back here (finished ones are kept)
                pending.extendleft(reversed(broken))
                for k in broken:
                    futures.pop(k, None)
                broken.clear()
            return pending.pop() if pending else None

    results = {}
    threads = torch_threads(1)  # this process is one of the workers now
    try:
        for _ in range(workers):
            hand_out()
        results[0] = here(0)
        while True:
            k = take()
            if k is None:
                with lock:
                    outstanding = dict(futures)
                if not outstanding:
                    break
                for k, future in outstanding.items():
                    if isinstance(future.exception(), BrokenProcessPool):
                        continue  # its task comes back here (`finished`, then `take`)
                    results[k] = future.result()
                    with lock:
                        futures.pop(k, None)
                continue
            results[k] = here(k)
    except BaseException:
        _stop(pool)
        raise
    finally:
        torch_threads(threads)
    pool.shutdown(wait=True)
    return [results[k] for k in range(count)]


_noted: list = []


def torch_threads(n: int) -> int:
    """Set torch's thread count (when torch is loaded); the count before."""
    torch = sys.modules.get("torch")
    if torch is None:
        return n
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    return before


def _note_broken(error: BaseException) -> None:
    if not _noted:
        _noted.append(True)
        print(f"foundation: the worker processes stopped ({error}); the rest runs in this process, one after "
              "another (a script that calls foundation should start with `if __name__ == \"__main__\":`)",
              file=sys.stderr)


def _stop(pool: ProcessPoolExecutor) -> None:
    """No queued task starts, and running ones are ended now, not when they finish."""
    processes = list(getattr(pool, "_processes", {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for p in processes:
        if p.is_alive():
            p.kill()
