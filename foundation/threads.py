"""How many threads torch uses: chosen from the cores this process may run on, not inherited.

torch starts as many threads as the CPUs in the process's affinity mask, whatever else runs
there. On a shared workstation, or a cluster node whose job has fewer cores (a cgroup CPU quota)
than the machine shows, those OpenMP threads spin against each other and against other
processes: an 8-member ANI-1x call on an 11-atom molecule took ~1.4 s with torch's 2 threads
beside a busy process per core, ~27 ms with one. Small systems gain nothing from more threads
anyway (the matmuls are a few rows), so:

- cores = the CPUs of `os.sched_getaffinity`, capped by the cgroup quota (`cpu.max`, cgroup v2;
  `cpu.cfs_quota_us` / `cpu.cfs_period_us`, v1), shared by the processes torchrun starts on
  this node (LOCAL_WORLD_SIZE);
- threads = cores, or for a system of n atoms ceil(n / `ATOMS_PER_THREAD`) at most;
- the user's own choice wins: `--threads N` (the CLI), then FOUNDATION_THREADS=N, then
  OMP_NUM_THREADS / MKL_NUM_THREADS (torch read them at start) or a `torch.set_num_threads` call
  made before ours, which are left alone.

`configure` is called once by the CLI for every subcommand; `fit_system` by the ASE calculator
once it knows the system's size. When the count ends below what torch would have used, one line
says so (logging, once per process).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from collections.abc import Mapping
from pathlib import Path

from foundation.errors import UserError

ENV = "FOUNDATION_THREADS"
ATOMS_PER_THREAD = 256  # below this many atoms per thread, another thread costs more than it saves
CGROUP_ROOT = Path("/sys/fs/cgroup")
_USER_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")

log = logging.getLogger(__name__)
# the count we set last; whether the user chose it; the note said; (LOCAL_WORLD_SIZE, usable cores)
_state: dict = {"ours": None, "explicit": False, "noted": False, "cores": (None, 0)}


@dataclasses.dataclass(frozen=True)
class Choice:
    threads: int | None  # None: leave torch's count as it is (the user set it)
    cores: int  # usable by this process
    source: str  # --threads | FOUNDATION_THREADS | OMP_NUM_THREADS | MKL_NUM_THREADS | auto
    reason: str  # in words, for the note


def usable_cores(affinity: set[int] | None = None, cpu_max: str | None = None,
                 local_processes: int = 1) -> int:
    """CPUs this process may use: its affinity mask, capped by the cgroup quota `cpu.max`
    ("max 100000" or "<quota> <period>"; None: read it), divided among `local_processes`."""
    if affinity is None:
        affinity = _affinity()
    cores = max(1, len(affinity))
    quota = quota_cores(read_cpu_max() if cpu_max is None else cpu_max)
    if quota is not None:
        cores = min(cores, quota)
    return max(1, cores // max(1, local_processes))


def parallel_jobs() -> int:
    """How many independent trainings to run side by side (one process, one thread each):
    FOUNDATION_JOBS, else the usable cores."""
    value = os.environ.get("FOUNDATION_JOBS", "").strip()
    if value:
        if not value.isdigit() or int(value) < 1:
            from foundation.errors import UserError

            raise UserError(f"FOUNDATION_JOBS={value!r}: give a number of processes, 1 or more")
        return int(value)
    return usable_cores()


def one_thread_worker() -> None:
    """A worker process's initializer: it owns one core (more threads per process only fight
    over the cores; children it starts inherit the setting), and it ends with its parent."""
    from foundation.children import die_with_parent

    die_with_parent()
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)


def quota_cores(cpu_max: str | None) -> int | None:
    """Whole cores a cgroup quota allows ("150000 100000" -> 2: a part core still runs a thread);
    None when unlimited or unreadable."""
    if not cpu_max:
        return None
    parts = cpu_max.split()
    if len(parts) != 2 or parts[0] == "max":
        return None
    try:
        quota, period = float(parts[0]), float(parts[1])
    except ValueError:
        return None
    if quota <= 0 or period <= 0:
        return None
    return max(1, math.ceil(quota / period))


def read_cpu_max(root: Path = CGROUP_ROOT) -> str | None:
    """This process's CPU quota as cgroup v2 writes it ("<quota> <period>" or "max <period>"),
    from v2's cpu.max or v1's cfs files; None where there is none."""
    for path in _cgroup_dirs(root):
        try:
            return (path / "cpu.max").read_text().strip()
        except OSError:
            pass
        try:
            quota = (path / "cpu.cfs_quota_us").read_text().strip()
            period = (path / "cpu.cfs_period_us").read_text().strip()
            return f"{'max' if quota.startswith('-') else quota} {period}"
        except OSError:
            pass
    return None


def _cgroup_dirs(root: Path) -> list[Path]:
    """The cgroup folders that may hold this process's CPU limits, innermost first."""
    dirs = []
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, rel = line.split(":", 2)
            if controllers in ("", "cpu", "cpu,cpuacct", "cpuacct,cpu"):
                base = root if controllers == "" else root / controllers
                dirs.append(base / rel.lstrip("/"))
                if controllers != "":
                    dirs.append(base)
    except (OSError, ValueError):
        pass
    return [*dirs, root, root / "cpu"]


def _affinity() -> set[int]:
    try:
        return os.sched_getaffinity(0)
    except (AttributeError, OSError):  # not Linux
        return set(range(os.cpu_count() or 1))


def choose(requested: int | None = None, environ: Mapping[str, str] | None = None,
           cores: int | None = None, n_atoms: int | None = None) -> Choice:
    """The thread count for this process (see the module doc). `requested`: `--threads`;
    `environ`: the environment (default os.environ); `cores`: usable cores (default
    `usable_cores()`); `n_atoms`: the system's size, when known."""
    env = os.environ if environ is None else environ
    if cores is None:
        local = _int(env.get("LOCAL_WORLD_SIZE"), 1)
        if _state.get("cores", (None,))[0] != local:  # read once: files under /sys and /proc
            _state["cores"] = (local, usable_cores(local_processes=local))
        cores = _state["cores"][1]
    if requested is not None:
        return Choice(_positive(requested, "--threads"), cores, "--threads", "asked for with --threads")
    if env.get(ENV, "").strip():
        return Choice(_positive(env[ENV], ENV), cores, ENV, f"asked for with {ENV}")
    for key in _USER_ENV:
        if env.get(key, "").strip():
            return Choice(None, cores, key, f"{key} is set")
    if n_atoms is None:
        return Choice(cores, cores, "auto", f"{cores} usable core{'s' if cores != 1 else ''}")
    wanted = max(1, math.ceil(n_atoms / ATOMS_PER_THREAD))
    threads = min(cores, wanted)
    why = f"{n_atoms} atoms" if threads < cores else f"{cores} usable core{'s' if cores != 1 else ''}"
    return Choice(threads, cores, "auto", why)


def configure(requested: int | None = None) -> Choice:
    """Set torch's thread count for this process (the CLI, before any subcommand computes)."""
    choice = choose(requested)
    _apply(choice, explicit=choice.source != "auto")
    return choice


def fit_system(n_atoms: int) -> Choice | None:
    """Fit the thread count to a system of `n_atoms` (the calculator), unless the user chose the
    count: `--threads`, FOUNDATION_THREADS, OMP/MKL_NUM_THREADS, or their own
    `torch.set_num_threads` (a count that is neither torch's default nor ours). None then."""
    import torch

    current = torch.get_num_threads()
    if _state["explicit"] or current not in (_state["ours"], len(_affinity())):
        return None
    choice = choose(n_atoms=n_atoms)
    if choice.threads is None or choice.source != "auto":
        return None
    _apply(choice, explicit=False)
    return choice


def _apply(choice: Choice, explicit: bool) -> None:
    import torch

    _state["explicit"] = explicit
    if choice.threads is None:
        return
    before = torch.get_num_threads()
    if choice.threads != before:
        torch.set_num_threads(choice.threads)
    _state["ours"] = choice.threads
    if choice.threads < before and not explicit and not _state["noted"]:
        _state["noted"] = True
        log.warning("foundation: %d thread%s of %d (%s; --threads N or %s=N to choose)", choice.threads,
                    "" if choice.threads == 1 else "s", before, choice.reason, ENV)


def _positive(value, what: str) -> int:
    try:
        n = int(str(value).strip())
    except ValueError:
        n = 0
    if n < 1:
        raise UserError(f"{what}={value!r}: the number of threads must be a whole number >= 1")
    return n


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value else default
    except ValueError:
        return default
