"""Weak scaling of data-parallel training, and where the time goes (not run in tests;
`python -m benchmarks.scaling`, a few minutes): `scaling_2proc.json`.

The same training run, `foundation train` on the embedded shards with the ANI-1x architecture
and a fixed batch per process (weak scaling: the global batch grows with the processes), is
launched with torchrun as
    ours = 2 processes, distributed=ddp (gloo on CPU, NCCL on GPUs);
    peer = 1 process, distributed=single, times 2 (perfect scaling).
Throughput is the trainer's own `atoms_per_s` (all ranks' atoms per second of wall time, over
each logging interval after the first, so start-up is excluded); ratio = ours / peer is the
parallel efficiency. One thread per process; on CPU a 2-core machine runs 2 processes.

Each rank runs `scaling_rank.py` (the trainer unchanged, with timers around its parts), so the
figure also says where a step's wall time goes, for 1 and 2 processes (`parts`, medians over the
steps after warm-up, then over ranks): waiting for data, compute (forward, forces, backward, clip,
AdamW, EMA), the gradient all-reduce left exposed after the backward pass (and the all-reduce's own
duration, and the same all-reduce timed alone after a barrier: the transfer without waiting for the
slower rank), the all-reduces of scalars (flags and metrics, each a synchronisation of all ranks),
and the loop's bookkeeping. `explained` gives each part's share of the step time that 2 processes
lose against 1. `accumulation`: the same efficiency with `trainer.accumulate=N` (N batches per
optimiser step, the gradient all-reduced once per N), the same number of batches in each run.
"""

from __future__ import annotations

import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

from benchmarks import common  # noqa: E402
from foundation.errors import entry_point  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RANK_SCRIPT = Path(__file__).with_name("scaling_rank.py")
REPEATS, STEPS, LOG_EVERY, MAX_ATOMS, SWEEP = common.sized((3, 60, 10, 512, (2, 4)), (1, 4, 2, 64, (2,)))
PARTS = ("wall_ms", "data_ms", "compute_ms", "grad_exposed_ms", "scalar_sync_ms", "other_ms", "grad_reduce_ms")


def overrides(nproc: int, out_dir: Path, name: str, accumulate: int) -> list[str]:
    steps = max(2, STEPS // accumulate)  # the same number of batches whatever the accumulation
    log_every = max(1, LOG_EVERY // accumulate)
    return ["data=embedded", f"data.max_atoms_per_batch={MAX_ATOMS}", "data.shuffle_buffer=64",
            f"trainer.max_steps={steps}", f"trainer.log_every={log_every}", "trainer.val_at_start=false",
            f"trainer.val_every={steps}", f"trainer.ckpt_every={steps}", f"trainer.warmup_steps={min(10, steps)}",
            f"trainer.accumulate={accumulate}", "logger.progress_bar=false",
            f"distributed={'ddp' if nproc > 1 else 'single'}", f"out_dir={out_dir}", f"name={name}"]


def run(nproc: int, out_dir: Path, name: str, accumulate: int = 1) -> dict:
    """One run: atoms/s of each logging interval but the first (start-up), from metrics.csv, and
    the ranks' step timings."""
    timing = out_dir / f"{name}-timing"
    timing.mkdir(parents=True)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           str(RANK_SCRIPT), json.dumps(overrides(nproc, out_dir, name, accumulate)), str(timing)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    done = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    with open(out_dir / name / "metrics.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("atoms_per_s")]
    ranks = [json.loads(p.read_text()) for p in sorted(timing.glob("timing-rank*.json"))]
    return {"atoms_per_s": [float(r["atoms_per_s"]) for r in rows[1:]], "ranks": ranks}


def step_parts(rank: dict) -> dict[str, float]:
    """Median of each part over the steps after warm-up (the first sixth) but the last (which
    validates and checkpoints). wall = data + compute + grad_exposed + scalar_sync + other."""
    steps = rank["steps"][:-1]
    steps = steps[max(1, len(steps) // 6):] or rank["steps"]
    rows = []
    for s in steps:
        if "wall_ms" not in s:
            continue
        sync = s["scalar_sync_in_step_ms"] + s["scalar_sync_loop_ms"]
        compute = s["step_ms"] - s["grad_exposed_ms"] - s["scalar_sync_in_step_ms"]
        rows.append({"wall_ms": s["wall_ms"], "data_ms": s["data_ms"], "compute_ms": compute,
                     "grad_exposed_ms": s["grad_exposed_ms"], "scalar_sync_ms": sync,
                     "other_ms": s["wall_ms"] - s["data_ms"] - s["step_ms"] - s["scalar_sync_loop_ms"],
                     "grad_reduce_ms": s["grad_reduce_ms"], "atoms": s["atoms"]})
    return {k: statistics.median(r[k] for r in rows) for k in (*PARTS, "atoms")} if rows else {}


def parts(runs: list[dict]) -> dict:
    """Per part, the mean over ranks of the medians over steps, then the median over repeats."""
    per_run = []
    for r in runs:
        ranks = [p for p in (step_parts(rank) for rank in r["ranks"]) if p]
        per_run.append({k: statistics.fmean(p[k] for p in ranks) for k in ranks[0]})
    out = {k: round(statistics.median(p[k] for p in per_run), 3) for k in per_run[0]}
    pure = [rank["pure_reduce_ms"] for r in runs for rank in r["ranks"] if rank.get("pure_reduce_ms") is not None]
    if pure:
        out["pure_reduce_ms"] = round(statistics.median(pure), 3)
    return out


def explained(one: dict, two: dict) -> dict:
    """What each part adds to a 2-process step against a 1-process one, and its share of the
    efficiency lost (efficiency from the step times: t1 / t2 at the same batch per process)."""
    lost = two["wall_ms"] - one["wall_ms"]
    added = {k: round(two[k] - one.get(k, 0.0), 3)
             for k in ("data_ms", "compute_ms", "grad_exposed_ms", "scalar_sync_ms", "other_ms")}
    shares = {k: round(v / lost, 3) for k, v in added.items()} if lost > 0 else {}
    return {"efficiency_from_step_times": round(one["wall_ms"] / two["wall_ms"], 3),
            "ms_added_per_step": added, "share_of_the_loss": shares}


def scaling_figure(work: Path) -> dict:
    one, two, runs = [], [], {1: [], 2: []}
    load_before = os.getloadavg()[0]
    for k in range(REPEATS):  # interleaved, so a busy spell of the machine hits both
        for nproc, rates in ((1, one), (2, two)):
            result = run(nproc, work, f"p{nproc}-{k}")
            rates.append(statistics.median(result["atoms_per_s"]))
            runs[nproc].append(result)
    measured = {str(n): parts(r) for n, r in runs.items()}
    sweep = [{"accumulate": 1, "one_atoms_per_s": statistics.median(one), "two_atoms_per_s": statistics.median(two),
              "efficiency": statistics.median(two) / (2 * statistics.median(one))}]
    for n in SWEEP:
        a, b = (statistics.median(run(p, work, f"acc{n}-p{p}", accumulate=n)["atoms_per_s"]) for p in (1, 2))
        sweep.append({"accumulate": n, "one_atoms_per_s": a, "two_atoms_per_s": b, "efficiency": b / (2 * a)})
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return common.figure(
        "scaling_2proc", "atoms/s", two, [2 * x for x in one], goal=0.85, threads=1,
        inputs={"model": "ani (ANI-1x architecture)", "data": "embedded shards (wb97x_631gs + ccsdt_ccpvdz)",
                "max_atoms_per_batch_per_process": MAX_ATOMS, "steps": STEPS, "log_every": LOG_EVERY,
                "device": device, "ours": "2 processes, torchrun, distributed=ddp",
                "peer": "2 × the atoms/s of 1 process, distributed=single (perfect weak scaling)",
                "threads_per_process": 1, "timers": "benchmarks/scaling_rank.py (the gradient all-reduce "
                "through a Python comm hook doing what DDP's default one does)",
                # other processes on the machine take cores from the 2-process run first
                "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)]},
        parts={"per_step_ms": measured, "explained": explained(measured["1"], measured["2"])},
        accumulation=sweep)


def run_figures() -> list[dict]:
    with tempfile.TemporaryDirectory() as work:
        return [scaling_figure(Path(work))]


@entry_point
def main() -> None:
    common.run_and_report(run_figures)


if __name__ == "__main__":
    main()
