"""Independent trainings side by side, one process per core.

A recipe's trainings often share nothing but their inputs (the points of a learning curve, the
members of an ensemble, the candidate recipes), and one small-model training keeps one core busy,
so on an n-core machine n of them at once finish about n times sooner. Each is its own seeded run,
so the results are those of running them one after another. `FOUNDATION_JOBS=1` runs them in
this process, one after another (and so does a single job).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from foundation.side_by_side import side_by_side
from foundation.threads import parallel_jobs

Job = tuple  # (recipe or None, start model or None, overrides): the arguments of ensemble.train_member


def default_workers() -> int:
    """FOUNDATION_JOBS, else the cores this process may use (`foundation.threads.parallel_jobs`)."""
    return parallel_jobs()


def train_all(jobs: Sequence[Job], quiet: bool = True, workers: int | None = None) -> list:
    """The TrainResult of each job, in the order given: this process trains too, beside n - 1
    spawned one-thread workers (`foundation.side_by_side`: an error stops them, a broken pool's
    jobs train here)."""
    jobs = list(jobs)
    n = min(workers or default_workers(), len(jobs))
    return side_by_side(len(jobs), functools.partial(_train_job, jobs, quiet),
                        functools.partial(_train_job, jobs, quiet), workers=n - 1)


def _train_job(jobs: list, quiet: bool, k: int):
    from foundation.recipes.ensemble import train_member

    recipe, source, overrides = jobs[k]
    return train_member(recipe, source, list(overrides), quiet)
