"""Independent trainings side by side, one process per core.

A recipe's trainings often share nothing but their inputs (the points of a learning curve, the
members of an ensemble, the candidate recipes), and one small-model training keeps one core busy,
so on an n-core machine n of them at once finish about n times sooner. Each is its own seeded run,
so the results are those of running them one after another. `FOUNDATION_JOBS=1` runs them in
this process, one after another (and so does a single job).
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor

from foundation.threads import one_thread_worker, parallel_jobs

Job = tuple  # (recipe or None, start model or None, overrides): the arguments of ensemble.train_member


def default_workers() -> int:
    """FOUNDATION_JOBS, else the cores this process may use (`foundation.threads.parallel_jobs`)."""
    return parallel_jobs()


def train_all(jobs: Sequence[Job], quiet: bool = True, workers: int | None = None) -> list:
    """The TrainResult of each job, in the order given."""
    n = min(workers or default_workers(), len(jobs))
    if n <= 1:
        return [_train(job, quiet) for job in jobs]
    # spawn, not fork: a forked child would inherit torch's thread pools and the parent's locks
    with ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("spawn"), initializer=one_thread_worker) as pool:
        return list(pool.map(_train, jobs, [quiet] * len(jobs)))


def _train(job: Job, quiet: bool):
    from foundation.recipes.ensemble import train_member

    recipe, source, overrides = job
    return train_member(recipe, source, list(overrides), quiet)
