"""One `torchrun` rank of the scale rehearsal (started by `benchmarks/scale_rehearsal.py`; not a
benchmark by itself). Each rank streams its share of the shards through `ShardStream` with
DataLoader workers, as `foundation train data=shards` does, with no model step: the data path
alone, at the rate it can go.

    scale_rehearsal_rank.py first SHARDS OUT ...  time to the first batch, then (--allreduce) the
                                                  time of all-reducing gradients of the given sizes
    scale_rehearsal_rank.py head  SHARDS OUT ...  epoch 0 up to half of this rank's share; save the
                                                  stream position (all ranks: a collective) to
                                                  OUT/state.json; note the next --check batches; exit
    scale_rehearsal_rank.py tail  SHARDS OUT ...  a new job: restore OUT/state.json, check that the
                                                  first batches are the noted ones, stream the rest
                                                  of epoch 0

Epoch accounting: the stream is endless, and DataLoader workers take turns (batch j of a run
comes from logical reader (j + offset) % workers), each reader holding a known share of epoch 0's
shards. So the first `share` samples a reader delivers are its epoch-0 samples, and a batch that
straddles the epoch boundary is split exactly. Every epoch-0 sample id is counted in a uint8
array (one byte per conformation) that the driver sums over ranks and parts: exactly once each.

Memory: a thread samples /proc every --every seconds: RSS and PSS of this rank's process and of
its workers (PSS shares the pages a forked worker has in common with its parent, so the sum of
PSS is what the rank really holds), with the samples consumed so far.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import statistics
import threading
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from foundation.errors import entry_point
from foundation.data import Manifest, load_manifest
from foundation.data.shards.reader import Reader, seed_from
from foundation.data import ShardStream
from foundation.files import write_json

_TICK = os.sysconf("SC_CLK_TCK")


def epoch0_shares(manifest: Manifest, split: str, seed: int, rank: int, world_size: int,
                  num_workers: int) -> tuple[list[int], int]:
    """(epoch-0 samples of each logical reader of this rank, shards this rank reads in epoch 0).
    Mirrors `reader.epoch_records` for an unmixed stream (salt 0): a mismatch would show as a
    coverage failure, not pass silently."""
    n = max(1, num_workers)
    order = list(manifest.shards(split))
    random.Random(seed_from(seed, 0, 0)).shuffle(order)
    readers = [Reader(rank, world_size, w, n) for w in range(n)]
    if len(order) >= world_size * n:
        return [sum(s["n_samples"] for s in r.take(order)) for r in readers], sum(len(r.take(order)) for r in readers)
    total = sum(s["n_samples"] for s in order)  # fewer shards than readers: every n-th sample
    return [sum(1 for i in range(total) if r.owns(i)) for r in readers], len(order)


class Ledger:
    """Epoch-0 samples still due from each logical reader; batch j of this run came from reader
    (j + offset) % len(left)."""

    def __init__(self, left: list[int], offset: int):
        self.left, self.offset, self.j = list(left), offset, 0
        self.taken = [0] * len(left)

    def take(self, sources: list[str]) -> np.ndarray:
        """Ids (`scale:<id>`) of this batch's epoch-0 samples, in order."""
        r = (self.j + self.offset) % len(self.left)
        self.j += 1
        k = min(self.left[r], len(sources))
        self.left[r] -= k
        self.taken[r] += k
        return np.fromiter((int(s.rsplit(":", 1)[1]) for s in sources[:k]), np.int64, k)

    @property
    def done(self) -> bool:
        return not any(self.left)


def _proc(pid: int) -> tuple[int, int, float] | None:
    """(RSS bytes, PSS bytes, CPU seconds) of a process, None if it is gone."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            kb = {line.split(":")[0]: int(line.split()[1]) for line in f if line.startswith(("Rss:", "Pss:"))}
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return kb["Rss"] * 1024, kb["Pss"] * 1024, (int(fields[11]) + int(fields[12])) / _TICK
    except (OSError, KeyError, IndexError, ValueError):
        return None


def _children() -> list[int]:
    pids = []
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/children") as f:
                pids += [int(p) for p in f.read().split()]
        except OSError:
            pass
    return pids


class MemorySampler(threading.Thread):
    """Samples memory of this process and its children every `every` s into `self.points`:
    [wall time, samples so far, RSS main, PSS main + children, RSS main + children, children]."""

    def __init__(self, every: float, progress):
        super().__init__(daemon=True)
        self.every, self.progress, self.points = every, progress, []
        self.worker_cpu: dict[int, float] = {}  # pid -> last CPU seconds seen
        self._stop_event = threading.Event()

    def tick(self) -> None:
        me = _proc(os.getpid())
        kids = [(pid, _proc(pid)) for pid in _children()]
        kids = [(pid, p) for pid, p in kids if p is not None]
        for pid, p in kids:
            self.worker_cpu[pid] = p[2]
        if me is not None:
            self.points.append([time.time(), self.progress(), me[0], me[1] + sum(p[1] for _, p in kids),
                                me[0] + sum(p[0] for _, p in kids), len(kids)])

    def run(self) -> None:
        while not self._stop_event.wait(self.every):
            self.tick()

    def stop(self) -> None:
        self._stop_event.set()
        self.join()
        self.tick()


def _stream(args) -> ShardStream:
    return ShardStream(args.shards, args.split, seed=args.seed, rank=dist.get_rank(),
                       world_size=dist.get_world_size(), max_atoms=args.max_atoms,
                       shuffle_buffer=args.shuffle_buffer, num_workers=args.num_workers)


def run(args) -> dict:
    rank, world = dist.get_rank(), dist.get_world_size()
    out = Path(args.out)
    manifest = load_manifest(args.shards)
    shares, shards = epoch0_shares(manifest, args.split, args.seed, rank, world, args.num_workers)
    counts = np.zeros(manifest.counts(args.split)["n_samples"], np.uint8)
    seen = {"samples": 0, "atoms": 0, "batches": 0}
    sampler = MemorySampler(args.every, lambda: seen["samples"])
    sampler.start()
    times = {"launched": args.launched, "started": args.started, "built": time.time()}
    cpu = time.process_time()
    stream = _stream(args)
    ledger = Ledger(shares, 0)
    noted = None
    if args.mode == "tail":
        state = json.loads((out / "state.json").read_text())
        stream.load_state_dict(state)
        saved = state["ranks"][str(rank)]
        taken = [_taken(saved["readers"].get(str(r))) for r in range(len(shares))]
        ledger = Ledger([max(0, s - t) for s, t in zip(shares, taken)], saved["batches"] % len(shares))
        noted = json.loads((out / f"noted-rank{rank}.json").read_text())
    batches = iter(stream)
    half = sum(shares) // 2
    check = []
    for batch in batches:
        if seen["batches"] == 0:
            times["first_batch"] = time.time()
            if args.mode == "first":
                break
        if noted is not None and len(check) < len(noted):
            check.append(batch.source)
        ids = ledger.take(batch.source)
        np.add.at(counts, ids, 1)
        seen["samples"] += len(ids)
        seen["atoms"] += batch.n_atoms
        seen["batches"] += 1
        if ledger.done or (args.mode == "head" and sum(ledger.taken) >= half):
            break
    times["last_batch"] = time.time()
    result = {"rank": rank, "world_size": world, "mode": args.mode, "times": times, **seen,
              "epoch_share": {"samples": sum(shares), "shards": shards, "per_reader": shares},
              "settings": {k: getattr(args, k) for k in ("seed", "max_atoms", "shuffle_buffer", "num_workers")}}
    if args.mode == "head":
        state = stream.state_dict()  # every rank calls it: it gathers all ranks' positions
        mine = state["ranks"][str(rank)]
        result["position_matches_count"] = ledger.taken == [
            _taken(mine["readers"].get(str(r))) for r in range(len(shares))]
        write_json(out / f"noted-rank{rank}.json", [b.source for b in itertools.islice(batches, args.check)])
        if rank == 0:
            write_json(out / "state.json", state)
    if args.mode == "tail":
        result["resumed_equal"] = check == noted
        result["resumed_compared_batches"] = len(check)
    sampler.stop()  # the last tick still sees the workers' CPU time
    result["cpu_s"] = {"main": time.process_time() - cpu, "workers": sum(sampler.worker_cpu.values())}
    result["memory"] = {"columns": ["time", "samples", "rss_main", "pss_total", "rss_total", "workers"],
                        "points": sampler.points}
    del batches  # stops the workers: the all-reduce timing below has the cores to itself
    if args.mode != "first":
        np.save(out / f"{args.mode}-rank{rank}.npy", counts)
    elif args.allreduce:
        result["allreduce_s"] = {name: allreduce_seconds(int(numel)) for name, numel in
                                 (item.split("=") for item in args.allreduce.split(","))}
    return result


def allreduce_seconds(numel: int, repeats: int = 20) -> float:
    """Median seconds of one all-reduce of `numel` float32 (a model's gradients) over all ranks."""
    x = torch.zeros(numel)
    for _ in range(3):
        dist.all_reduce(x)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        dist.all_reduce(x)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _taken(reader_state: dict | None) -> int:
    """Epoch-0 records a reader had taken at a saved position (all of them if it is past epoch 0)."""
    if reader_state is None:
        return 0
    epoch, taken = reader_state["streams"][""]
    return taken if epoch == 0 else 2**62


@entry_point
def main() -> None:
    started = time.time()
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=("first", "head", "tail"))
    parser.add_argument("shards")
    parser.add_argument("out")
    parser.add_argument("--split", default="train")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-atoms", type=int, default=2048)
    parser.add_argument("--shuffle-buffer", type=int, default=1000)
    parser.add_argument("--num-workers", type=int, default=2)
    parser.add_argument("--check", type=int, default=32, help="batches compared after restoring")
    parser.add_argument("--every", type=float, default=1.0, help="seconds between memory samples")
    parser.add_argument("--launched", type=float, default=started, help="wall time torchrun was started")
    parser.add_argument("--tag", default="", help="suffix of the result file")
    parser.add_argument("--allreduce", default="", help="first: time all-reduces of NAME=NUMEL,... float32")
    args = parser.parse_args()
    args.started = started
    dist.init_process_group("gloo")
    result = run(args)
    write_json(Path(args.out) / f"{args.mode}{args.tag}-rank{result['rank']}.json", result)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
