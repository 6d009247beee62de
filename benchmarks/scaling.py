"""Weak scaling of data-parallel training (not run in tests; `python -m benchmarks.scaling`, a few
minutes): `scaling_2proc.json`.

The same training run, `foundation train` on the embedded shards with the ANI-1x architecture
and a fixed batch per process (weak scaling: the global batch grows with the processes), is
launched with torchrun as
    ours = 2 processes, distributed=ddp (gloo on CPU, NCCL on GPUs);
    peer = 1 process, distributed=single, times 2 (perfect scaling).
Throughput is the trainer's own `atoms_per_s` (all ranks' atoms per second of wall time, over
each logging interval after the first, so start-up is excluded); ratio = ours / peer is the
parallel efficiency. One thread per process; on CPU a 2-core machine runs 2 processes.
"""

from __future__ import annotations

import csv
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

from benchmarks import common  # noqa: E402
from foundation.cli.errors import entry_point  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
REPEATS, STEPS, LOG_EVERY, MAX_ATOMS = common.sized((3, 60, 10, 512), (1, 4, 2, 64))
RUN = ["data=embedded", f"data.max_atoms_per_batch={MAX_ATOMS}", "data.shuffle_buffer=64",
       f"trainer.max_steps={STEPS}", f"trainer.log_every={LOG_EVERY}", "trainer.val_at_start=false",
       f"trainer.val_every={STEPS}", f"trainer.ckpt_every={STEPS}", f"trainer.warmup_steps={min(10, STEPS)}",
       "logger.progress_bar=false"]


def run(nproc: int, out_dir: Path, name: str) -> list[float]:
    """atoms/s of each logging interval but the first (start-up), from the run's metrics.csv."""
    engine = "ddp" if nproc > 1 else "single"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "foundation", "train", *RUN, f"distributed={engine}", f"out_dir={out_dir}", f"name={name}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    done = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    with open(out_dir / name / "metrics.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("atoms_per_s")]
    return [float(r["atoms_per_s"]) for r in rows[1:]]


def scaling_figure(work: Path) -> dict:
    one, two = [], []
    load_before = os.getloadavg()[0]
    for k in range(REPEATS):  # interleaved, so a busy spell of the machine hits both
        one.append(statistics.median(run(1, work, f"one{k}")))
        two.append(statistics.median(run(2, work, f"two{k}")))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return common.figure(
        "scaling_2proc", "atoms/s", two, [2 * x for x in one], goal=0.85, threads=1,
        inputs={"model": "ani (ANI-1x architecture)", "data": "embedded shards (wb97x_631gs + ccsdt_ccpvdz)",
                "max_atoms_per_batch_per_process": MAX_ATOMS, "steps": STEPS, "log_every": LOG_EVERY,
                "device": device, "ours": "2 processes, torchrun, distributed=ddp",
                "peer": "2 × the atoms/s of 1 process, distributed=single (perfect weak scaling)",
                "threads_per_process": 1,
                # other processes on the machine take cores from the 2-process run first
                "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)]})


def run_figures() -> list[dict]:
    with tempfile.TemporaryDirectory() as work:
        return [scaling_figure(Path(work))]


@entry_point
def main() -> None:
    common.run_and_report(run_figures)


if __name__ == "__main__":
    main()
