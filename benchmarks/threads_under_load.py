"""`foundation md` with `ani-1x` beside a busy process on every core: the thread count the CLI
chooses against one thread (`python -m benchmarks.threads_under_load`, ~2 minutes).

A user on a shared workstation, or a cluster node with fewer cores than it shows, runs MD while
other processes keep the cores busy. torch's inherited default (one thread per CPU of the mask)
then spins OpenMP threads against those processes (issue 29: an ani-1x call ~1.4 s instead of
~27 ms). The CLI now chooses (`foundation.threads`); this measures that choice under load:
  ours = `foundation md ibuprofen.xyz --model ani-1x` as a user types it (no OMP_NUM_THREADS,
         MKL_NUM_THREADS or FOUNDATION_THREADS in its environment);
  peer = the same with `--threads 1`.
Both while one busy Python loop per usable core runs (started here, stopped at the end; each
also stops itself after `LOAD_LIMIT_S`). Steps/s from the wall time of the command's MD loop,
timed inside the process (start-up, imports and loading the model take seconds under load and
would drown the steps), the settings interleaved over `REPEATS` runs. Goal: no slower than one
thread (ratio >= 0.95: both may well pick one thread, and wall time under load is noisy). For
context, `inherited` runs torch's default count (OMP_NUM_THREADS set to the usable cores, which
the CLI leaves alone) for a few steps.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import common
from foundation.errors import entry_point

STEPS, INHERITED_STEPS, REPEATS = common.sized((100, 10, 3), (3, 0, 1))  # quick: no inherited run
LOAD_LIMIT_S = 900
_USER_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "FOUNDATION_THREADS")


def busy(cores: int) -> list[subprocess.Popen]:
    """One busy loop per core, each stopping itself after LOAD_LIMIT_S."""
    loop = f"import time\nend = time.time() + {LOAD_LIMIT_S}\nwhile time.time() < end:\n    pass\n"
    return [subprocess.Popen([sys.executable, "-c", loop]) for _ in range(cores)]


# `foundation md` exactly as `python -m foundation` runs it (the console entry point), with its MD
# loop timed from inside (start-up, imports and loading the model are seconds under load, and
# would drown the steps).
_TIMED_CLI = """
import runpy, sys, time
import foundation.calculators.md as md
inner = md.run_md
def timed(*args, **kwargs):
    start = time.perf_counter()
    try:
        return inner(*args, **kwargs)
    finally:
        print(f"MD_SECONDS {time.perf_counter() - start}", file=sys.stderr)
md.run_md = timed
sys.argv = ["foundation", *sys.argv[1:]]
runpy.run_module("foundation", run_name="__main__")
"""


def steps_per_s(structure: Path, steps: int, extra: list[str], environ: dict) -> float:
    """Steps/s of the MD loop of one `foundation md` run (wall time; the first force call included)."""
    cmd = [sys.executable, "-c", _TIMED_CLI, "md", str(structure), "--model", "ani-1x", "--steps", str(steps),
           "--device", "cpu", *extra]
    done = subprocess.run(cmd, env=environ, capture_output=True, text=True)
    lines = [line for line in done.stderr.splitlines() if line.startswith("MD_SECONDS ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"foundation md {' '.join(cmd[3:])} failed:\n{done.stderr[-2000:]}")
    return steps / float(lines[-1].split()[1])


def run() -> list[dict]:
    from benchmarks.md import SMILES, molecule
    from foundation.threads import usable_cores

    cores = usable_cores()
    user = {k: v for k, v in os.environ.items() if k not in _USER_THREAD_VARIABLES}  # as a user types it
    with tempfile.TemporaryDirectory() as tmp:
        structure = Path(tmp) / "ibuprofen.xyz"
        molecule().write(structure)
        load = busy(cores)
        try:
            time.sleep(1.0)
            ours, peer = [], []
            for _ in range(REPEATS):  # interleaved, so a change of load hits both
                ours.append(steps_per_s(structure, STEPS, [], user))
                peer.append(steps_per_s(structure, STEPS, ["--threads", "1"], user))
            inherited = steps_per_s(structure, INHERITED_STEPS, [], {**user, "OMP_NUM_THREADS": str(cores)}) \
                if INHERITED_STEPS else None
            load_average = os.getloadavg()[0]
        finally:
            for proc in load:
                proc.kill()
                proc.wait()
    fig = common.figure(
        "md_threads_under_load", "steps/s", ours, peer, goal=0.95,
        inputs={"command": "foundation md ibuprofen.xyz --model ani-1x --device cpu (float64, NVE)",
                "molecule": f"ibuprofen {SMILES} ({len(molecule())} atoms)", "usable_cores": cores,
                "load": f"{cores} busy Python loops (one per usable core) beside the runs",
                "ours": "no thread setting in the environment: the count foundation.threads chooses",
                "peer": "--threads 1", "steps": STEPS,
                "basis": "wall time of the MD loop inside the command (start-up excluded), STEPS steps"},
        note="under load by construction; goal: no slower than one thread (0.95 allows for wall-time noise)",
        inherited_torch_default={"threads": cores, "steps": INHERITED_STEPS, "steps_per_s": inherited},
        load_average_1min=round(load_average, 2))
    common.explain(fig, "wall time beside busy processes is noisy (see spread)")
    return [fig]


@entry_point
def main() -> None:
    common.run_and_report(run)


if __name__ == "__main__":
    main()
