"""Two nodes, one lost: a multi-node pretraining run rehearsed end to end on one machine
(`python -m benchmarks.two_nodes`, about a minute; the test `tests/train/test_two_nodes.py` runs
the same): `two_nodes_restart.json`.

Two `torchrun` agents on 127.0.0.1, as on two nodes (`--nnodes=2 --nproc_per_node=1`, c10d
rendezvous hosted by the first, `--max-restarts=2`), train `distributed=ddp` on streamed shards
written with the library's shard writer (real molecules of the embedded data, DFT labels):

    peer = the run uninterrupted;
    ours = the same run in which rank 1's worker SIGKILLs itself mid-epoch: both agents tear down
           their workers, meet again at the rendezvous and restart them with `resume=true`, which
           continues from the newest checkpoint.

Checks: the final weights (model and EMA) and the exported model equal the uninterrupted run's
(CPU: to 1e-6), and every sample is delivered exactly once per epoch across ranks, counted from
each rank's sample log (`two_nodes_rank.py`): for each step the batch of the attempt that trained
it for good (a killed attempt's steps after its last checkpoint are trained again). The figure is
wall time (uninterrupted / with the loss; ratio < 1 is what losing a node costs here).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from benchmarks.common import figure, run_and_report, sized
from foundation.errors import entry_point

REPO = Path(__file__).resolve().parents[1]
RANK_SCRIPT = Path(__file__).with_name("two_nodes_rank.py")
EMBEDDED = REPO / "foundation" / "data" / "embedded"
FIDELITY = "wb97x_631gs"
TINY_MODEL = ["model.elements=[1,6,7,8]", "model.radial_num_shifts=8", "model.angular_num_shifts=2",
              "model.angular_num_sections=4", "model.hidden={H:[16,8],C:[16,8],N:[16,8],O:[16,8]}"]


@dataclasses.dataclass(frozen=True)
class Settings:
    n_train: int = 32  # samples, in shards of `per_shard`: 4 shards per rank per epoch
    per_shard: int = 4
    n_val: int = 8
    max_atoms: int = 24  # per batch: ~3 molecules, ~5 steps per epoch
    steps: int = 12
    ckpt_every: int = 4  # mid-epoch 0 (steps 1-6)
    kill_step: int = 7  # rank 1 dies drawing this step's batch: mid-epoch 1, after the checkpoint of 4
    engine: str = "ddp"  # or deepspeed (ZeRO-2)
    timeout: float = 240.0  # seconds per launch


def write_shards(out: Path, settings: Settings) -> Path:
    """The first embedded DFT-labelled molecules as shards on disk, with the library's writer."""
    from foundation.data import iter_samples, load_manifest, write_manifest, write_shards as write

    embedded = load_manifest(str(EMBEDDED))
    shards = []
    for split, n in (("train", settings.n_train), ("val", settings.n_val)):
        samples = [s for s in iter_samples(embedded, split) if FIDELITY in s.forces][:n]
        for s in samples:
            s.energies = {FIDELITY: s.energies[FIDELITY]}  # one label set: one stream, no mixing
        shards += write(samples, out, split, max_samples_per_shard=settings.per_shard)
    write_manifest(out, shards, command="benchmarks.two_nodes")
    return out


def overrides(shards: Path, runs: Path, name: str, settings: Settings) -> list[str]:
    return [*TINY_MODEL, "data=shards", f"data.path={shards}", f"data.max_atoms_per_batch={settings.max_atoms}",
            "data.shuffle_buffer=4", f"trainer.max_steps={settings.steps}", "trainer.lr=1e-2",
            "trainer.warmup_steps=2", f"trainer.val_every={settings.steps}", "trainer.val_at_start=false",
            f"trainer.ckpt_every={settings.ckpt_every}", f"trainer.log_every={settings.steps}",
            "trainer.ema_decay=0.9", "trainer.device=cpu", "logger.progress_bar=false",
            f"distributed={settings.engine}", *(["distributed.zero_stage=2"] if settings.engine == "deepspeed" else []),
            f"out_dir={runs}", f"name={name}", "resume=true"]


def env() -> dict[str, str]:
    # Each restart round needs a fresh store for the workers' process group: torchrun's shared
    # one keeps the dead round's addresses (pytorch/pytorch#135712; docs/multinode.md).
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(REPO),
            "TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1"}


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(run_overrides: list[str], log_dir: Path, nnodes: int = 2, nproc: int = 1, kill_step: int = 0,
           kill_rank: int = 1, max_restarts: int = 2, timeout: float = 240.0) -> dict:
    """`nnodes` torchrun agents on 127.0.0.1 (the first hosts the c10d rendezvous), each with
    `nproc` workers running `two_nodes_rank.py`; waits for all. Returns their exit codes,
    outputs and the wall time."""
    log_dir.mkdir(parents=True, exist_ok=True)
    port, start = free_port(), time.perf_counter()
    agents = []
    for node in range(nnodes):
        cmd = [sys.executable, "-m", "torch.distributed.run", f"--nnodes={nnodes}", f"--nproc_per_node={nproc}",
               "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{port}", "--rdzv-id=two-nodes",
               f"--rdzv-conf=is_host={int(node == 0)}", "--local-addr=127.0.0.1", f"--max-restarts={max_restarts}",
               "--monitor-interval=0.2", str(RANK_SCRIPT), json.dumps(run_overrides), str(log_dir),
               f"--kill-step={kill_step}", f"--kill-rank={kill_rank}"]
        agents.append(subprocess.Popen(cmd, env=env(), cwd=REPO, stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, text=True, start_new_session=True))
    outputs = []
    try:
        for agent in agents:
            out, err = agent.communicate(timeout=max(1.0, timeout - (time.perf_counter() - start)))
            outputs.append({"returncode": agent.returncode, "stdout": out, "stderr": err})
    finally:
        for agent in agents:
            if agent.poll() is None:
                os.killpg(agent.pid, 9)
    return {"agents": outputs, "wall_s": time.perf_counter() - start}


def committed(log_dir: Path) -> dict[int, list[dict]]:
    """Per rank, the batches that trained each step for good: step s was trained for good by the
    attempt that resumed last before s (a killed attempt's steps after its checkpoint are
    trained again by the next), whatever the number of ranks of each attempt."""
    lines = [json.loads(line) for path in sorted(log_dir.glob("samples-rank*.jsonl"))
             for line in path.read_text().splitlines()]
    starts = {line["resumed_from"] or 0 for line in lines}
    best: dict[tuple[int, int], dict] = {}
    for line in sorted(lines, key=lambda line: line["time"]):  # a later attempt from the same start wins
        if (line["resumed_from"] or 0) == max(s for s in starts if s < line["step"]):
            best[line["rank"], line["step"]] = line
    ranks: dict[int, list[dict]] = {}
    for (rank, _), line in sorted(best.items()):
        ranks.setdefault(rank, []).append(line)
    return ranks


def epoch_counts(ranks: dict[int, list[dict]]) -> dict[int, Counter]:
    counts: dict[int, Counter] = {}
    for lines in ranks.values():
        for line in lines:
            for sample, epoch in zip(line["ids"], line["epochs"]):
                counts.setdefault(epoch, Counter())[sample] += 1
    return counts


def coverage(ranks: dict[int, list[dict]], n_samples: int) -> dict:
    """Every epoch but the last (partly run) has each sample exactly once; the last at most once."""
    counts = epoch_counts(ranks)
    last = max(counts)
    complete = {e: len(c) == n_samples and set(c.values()) == {1} for e, c in counts.items() if e != last}
    return {"epochs_complete": sorted(complete), "exactly_once": bool(complete) and all(complete.values()),
            "last_epoch_at_most_once": set(counts[last].values()) == {1},
            "samples_per_epoch": {str(e): sum(c.values()) for e, c in sorted(counts.items())}}


def max_difference(run_a: Path, run_b: Path) -> float:
    """The largest difference between the two runs' final weights, EMA and exported model."""
    from safetensors.torch import load_file

    from foundation.train.checkpoint import latest_checkpoint

    (_, a), (_, b) = latest_checkpoint(run_a), latest_checkpoint(run_b)
    pairs = [(a["engine"]["model"], b["engine"]["model"]), (a["ema"]["shadow"], b["ema"]["shadow"]),
             (load_file(run_a / "model.safetensors"), load_file(run_b / "model.safetensors"))]
    worst = 0.0
    for x, y in pairs:
        assert set(x) == set(y)
        worst = max([worst, *((x[k].double() - y[k].double()).abs().max().item() for k in x)])
    return worst


def rehearse(work: Path, settings: Settings = Settings()) -> dict:
    """Both runs in `work`; the figure, with the checks and what a test asserts."""
    shards = write_shards(work / "shards", settings)
    runs = work / "runs"
    straight = launch(overrides(shards, runs, "straight", settings), work / "log-straight", timeout=settings.timeout)
    killed = launch(overrides(shards, runs, "killed", settings), work / "log-killed", kill_step=settings.kill_step,
                    timeout=settings.timeout)
    ranks = committed(work / "log-killed")
    resumed = sorted({line["resumed_from"] for lines in ranks.values() for line in lines if line["resumed_from"]})
    checks = {
        "exit_codes": {"straight": [a["returncode"] for a in straight["agents"]],
                       "killed": [a["returncode"] for a in killed["agents"]]},
        "worker_processes": len(list((work / "log-killed").glob("*.jsonl"))),  # 2 at the start, 2 restarted
        "resumed": _span(ranks, resumed),
        "steps_trained": {str(r): [line["step"] for line in lines] for r, lines in ranks.items()},
        "kill": _span(ranks, [settings.kill_step], "step"),
        "coverage": coverage(ranks, settings.n_train),
        "coverage_straight": coverage(committed(work / "log-straight"), settings.n_train),
        "max_abs_weight_difference": max_difference(runs / "killed", runs / "straight"),
    }
    name = "two_nodes_restart" + ("" if settings.engine == "ddp" else f"_{settings.engine}")
    inputs = {**dataclasses.asdict(settings), "agents": 2, "workers_per_agent": 1, "backend": "gloo",
              "ours": "the run with rank 1's worker SIGKILLed mid-epoch, agents restarting it",
              "peer": "the same run uninterrupted", "ratio": "peer / ours wall time"}
    return figure(name, "s (wall)", [killed["wall_s"]], [straight["wall_s"]], goal=None,
                  ratio=straight["wall_s"] / killed["wall_s"], inputs=inputs,
                  note="a rehearsal: the checks are the result; the wall times say what the restart cost here",
                  load_average_1min=round(os.getloadavg()[0], 2), checks=checks,
                  outputs={"killed": [a["stdout"][-2000:] + a["stderr"][-3000:] for a in killed["agents"]]})


def _span(ranks: dict[int, list[dict]], steps: list[int], name: str = "from_step") -> dict:
    """The (one) step in `steps`, the epoch of its samples and the steps that epoch spans: mid-epoch
    when both ends lie beyond it."""
    (step,) = steps
    epoch = max(e for lines in ranks.values() for line in lines if line["step"] == step for e in line["epochs"])
    spans = [line["step"] for lines in ranks.values() for line in lines if epoch in line["epochs"]]
    return {name: step, "epoch": epoch, "epoch_steps": [min(spans), max(spans)],
            "mid_epoch": min(spans) < step < max(spans)}


def run_figures() -> list[dict]:
    figures = []
    for engine in sized(("ddp", "deepspeed"), ("ddp",)):
        work = Path(tempfile.mkdtemp(prefix="two_nodes."))
        try:
            figures.append(rehearse(work, Settings(engine=engine)))
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return figures


@entry_point
def main() -> None:
    run_and_report(run_figures)


if __name__ == "__main__":
    main()
