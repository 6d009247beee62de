"""`make bench`: run every benchmark script in benchmarks/, each in its own process, then print
the Markdown table of benchmarks/results/*.json (docs/benchmarks.md shows it) and write it to
benchmarks/results/TABLE.md.

    python -m benchmarks.run_all                 # every script but the long ones, then the table
    python -m benchmarks.run_all --all           # the long ones too (about 2 h more)
    python -m benchmarks.run_all --only md       # some scripts, then the table
    python -m benchmarks.run_all --table         # only the table, from the results on disk
    python -m benchmarks.run_all --quick         # every script at a tiny size (~2 min), results in a temp folder

A benchmark script is any module of benchmarks/ with a `__main__` block, except the helpers
other scripts start (`HELPERS`). `LONG` ones are left out of `make bench`, which must stay under
10 minutes on 2 cores; their last results still appear in the table. `--quick` runs every script,
long ones too, at a tiny size (FOUNDATION_BENCH_QUICK=1, see `common.sized`) and writes their JSON
to a scratch folder (FOUNDATION_BENCH_RESULTS), never to benchmarks/results/: the check, in the
tests, that no benchmark script is broken. Its numbers mean nothing.

Every child gets one thread (OMP/MKL_NUM_THREADS=1) and the same glibc malloc settings
(`MALLOC_ENV`): without them, each large tensor is a fresh mmap whose pages fault in again on
every step, which on small VMs costs ~20% of a step; ours and the peer share each process, so
both get the same settings, and every figure records them under "environment".
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from foundation.files import write_text_atomic
from foundation.errors import entry_point

HERE = Path(__file__).parent
RESULTS = HERE / "results"
NOT_BENCHMARKS = {"__init__", "common", "run_all"}
HELPERS = {"scale_rehearsal_rank": "one rank of scale_rehearsal", "scale_data": "the shard writer of scale_rehearsal",
           "two_nodes_rank": "one rank of two_nodes", "scaling_rank": "one rank of scaling"}
LONG = {"active_learning": "~13 minutes on 2 cores", "scale_rehearsal": "~20 minutes on 2 cores",
        "peers_mace": "~55 minutes on 2 cores (`make bench-peers`)",
        "peers_mace_transfer": "~65 minutes on 2 cores after peers_mace (`make bench-peers`)"}
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "33554432", "MALLOC_TRIM_THRESHOLD_": "4294967296"}
TIMEOUT_S, LONG_TIMEOUT_S = 600, 3 * 3600  # a stuck script is stopped; the long ones need hours at most


def scripts(include_long: bool = True) -> list[str]:
    names = []
    for path in sorted(HERE.glob("*.py")):
        name = path.stem
        if name in NOT_BENCHMARKS or name in HELPERS or name.startswith("_") or (name in LONG and not include_long):
            continue
        if '__name__ == "__main__"' in path.read_text():
            names.append(name)
    return names


def run(name: str, quick_results: Path | None = None) -> tuple[int, float]:
    """Run `python -m benchmarks.<name>` with one thread (at a tiny size, results in
    `quick_results`, when that is given); (exit code, seconds)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TORCHANI_NO_WARN_EXTENSIONS": "1",
           **MALLOC_ENV}
    if quick_results is not None:
        env.update(FOUNDATION_BENCH_QUICK="1", FOUNDATION_BENCH_RESULTS=str(quick_results),
                   FOUNDATION_BENCH_WORK=str(quick_results / "work"))  # what one trains, a later one starts from
    limit = LONG_TIMEOUT_S if name in LONG and quick_results is None else TIMEOUT_S
    start = time.perf_counter()
    print(f"== benchmarks.{name}", flush=True)
    code = run_group([sys.executable, "-m", f"benchmarks.{name}"], env, limit)
    if code == 124:
        print(f"benchmarks.{name}: stopped after {limit} s", flush=True)
    return code, time.perf_counter() - start


def run_group(command: list[str], env: dict, limit: float) -> int:
    """Run `command` in its own process group; its exit code, or 124 when it ran past `limit`
    seconds, the group killed: a script stopped for time takes the trainings it started with it."""
    child = subprocess.Popen(command, cwd=HERE.parent, env=env, start_new_session=True)
    try:
        return child.wait(timeout=limit)
    except BaseException as stop:  # the time limit, or Ctrl-C (which the child's group does not get)
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
        if not isinstance(stop, subprocess.TimeoutExpired):
            raise
        return 124


def load_figures(results: Path = RESULTS) -> list[dict]:
    figures = []
    for path in sorted(results.glob("*.json")):
        try:
            figures.append(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError) as err:
            print(f"{path}: unreadable ({err}); left out of the table", file=sys.stderr)
    return figures


def _num(x) -> str:
    if x is None:
        return "-"
    return f"{x:.3g}" if abs(x) < 1000 else f"{x:,.0f}"


def table(figures: list[dict]) -> str:
    """Markdown: one row per figure, then the machines, thread counts and settings they ran with."""
    rows = ["| Figure | Unit | Ours | Peer | Ratio (ours/peer) | Goal | Met | Notes |",
            "|---|---|---:|---:|---:|---:|:---:|---|"]
    for f in figures:
        met = {True: "yes", False: "**no**", None: "-"}[f.get("goal_met", _met(f))]
        note = f.get("shortfall", "")
        if f.get("limits"):
            note += f"; limited by {f['limits']}"
        note = note or f.get("note", "")
        spread = f.get("spread", {})
        ours = _num(f.get("ours"))
        if isinstance(spread.get("ours"), dict):
            ours += f" ({_num(spread['ours']['min'])}-{_num(spread['ours']['max'])})"
        rows.append(f"| {f['name']} | {f.get('unit', '')} | {ours} | {_num(f.get('peer'))} | "
                    f"{_num(f.get('ratio'))} | {_num(f.get('goal'))} | {met} | {note} |")
    machines = sorted({f.get("machine", "?") for f in figures})
    threads = sorted({str(f.get("threads", "?")) for f in figures})
    envs = sorted({", ".join(f"{k}={v}" for k, v in f.get("environment", {}).items() if k.startswith("MALLOC"))
                   for f in figures} - {""})
    rows += ["", f"Machine: {'; '.join(machines)}. Threads per process: {', '.join(threads)}.",
             "`*_vs_torchani`: ours and TorchANI run in the same process, in turns, on identical weights; "
             "ratios use CPU process time, median of the repeats (ours' min-max in brackets)."
             + (f" malloc settings, the same for both sides: {'; '.join(envs)}." if envs else "")]
    return "\n".join(rows) + "\n"


def _met(f: dict):
    goal, ratio = f.get("goal"), f.get("ratio")
    return None if goal is None or ratio is None else ratio >= goal


def write_table(text: str, results: Path = RESULTS) -> Path:
    return write_text_atomic(results / "TABLE.md", text)


@entry_point
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", metavar="NAME", help=f"scripts to run (of {', '.join(scripts())})")
    parser.add_argument("--all", action="store_true", help=f"also the long ones ({', '.join(LONG)})")
    parser.add_argument("--table", action="store_true", help="only print the table of the results on disk")
    parser.add_argument("--quick", action="store_true",
                        help="every script (or --only ones) at a tiny size, results in a scratch folder")
    parser.add_argument("--out", type=Path, help="with --quick: the results folder (default: a new temp folder)")
    args = parser.parse_args(argv)
    results = RESULTS
    if args.quick:
        results = args.out or Path(tempfile.mkdtemp(prefix="foundation-bench-quick-"))
        results.mkdir(parents=True, exist_ok=True)
        print(f"quick run: every script at a tiny size (the numbers mean nothing), results in {results}", flush=True)
    failed = []
    if not args.table:
        failed = _run_scripts(parser, args, results if args.quick else None)
    text = table(load_figures(results))
    print("\n" + text)
    print(f"-> {write_table(text, results)}")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


def _run_scripts(parser, args, quick_results: Path | None) -> list[str]:
    """Run the chosen scripts one after another; the names of those that failed."""
    chosen = args.only or scripts(include_long=args.all or args.quick)
    if not (args.only or args.all or args.quick):
        print("left out (run them with --all or --only): " +
              ", ".join(f"{n} ({why})" for n, why in LONG.items() if n in scripts()), flush=True)
    unknown = sorted(set(chosen) - set(scripts()))
    if unknown:
        parser.error(f"no benchmark script {', '.join(unknown)} in {HERE}")
    failed, start = [], time.perf_counter()
    for name in chosen:
        code, seconds = run(name, quick_results)
        print(f"-- benchmarks.{name}: {'ok' if code == 0 else f'FAILED (exit {code})'} in {seconds:.0f} s",
              flush=True)
        if code:
            failed.append(name)
    print(f"-- all benchmarks in {time.perf_counter() - start:.0f} s", flush=True)
    return failed


if __name__ == "__main__":
    sys.exit(main())
