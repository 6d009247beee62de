"""One rank of a rehearsed multi-node run (started by `torchrun` from `benchmarks/two_nodes.py` and
the tests; not a benchmark by itself): `foundation train` with the given overrides, plus

- a sample log: each training batch this rank draws, one JSON line in
  `LOG_DIR/samples-rank<r>-<pid>.jsonl`: the step it trains, the sample ids and each sample's
  epoch (from the stream's position), so a driver can count every epoch's samples over ranks,
  restarts and world sizes;
- `--kill-step K --kill-rank R`: in a run started from scratch (not a resumed one), rank R
  SIGKILLs itself on drawing the batch of step K: no handler, no cleanup, as a node dies.

    two_nodes_rank.py OVERRIDES_JSON LOG_DIR [--kill-step K] [--kill-rank R]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import time
from pathlib import Path
from typing import Any, Callable

import torch


@dataclasses.dataclass
class LoggedData:
    """The run's data config, whose training streams call `on_batch(batch, epochs)` after each
    batch, `epochs` the epoch of each of its samples."""

    inner: Any
    on_batch: Callable

    def build(self):
        data = self.inner.build()
        make_stream = data.train_stream
        data.train_stream = lambda seed, rank=0, world_size=1: _Logged(make_stream(seed, rank, world_size),
                                                                      self.on_batch)
        return data


class _Logged:
    def __init__(self, stream, on_batch):
        self.stream, self.on_batch = stream, on_batch

    def __iter__(self):
        before = dict(getattr(self.stream, "positions", {}))  # where it starts: restored, or fresh
        for batch in self.stream:
            self.on_batch(batch, sample_epochs(self.stream, before, len(batch.source)))
            before = dict(getattr(self.stream, "positions", {}))
            yield batch

    def state_dict(self):
        return self.stream.state_dict()

    def load_state_dict(self, state):
        self.stream.load_state_dict(state)

    def __getattr__(self, name):
        if name == "stream":
            raise AttributeError(name)
        return getattr(self.stream, name)


def sample_epochs(stream, before: dict, n: int) -> list[int]:
    """The epoch of each of the `n` samples of the batch just drawn: a shard stream's reader
    position before and after it (a batch may run into the next epoch: its last `taken` samples
    are of the new one), or an in-memory stream's epoch (its batches never cross one)."""
    if not hasattr(stream, "positions"):
        return [int(stream.epoch)] * n
    after = stream.positions
    (reader,) = [r for r, p in after.items() if p is not before.get(r)]
    (key,) = after[reader]["streams"]  # an unmixed stream: one key
    start = before.get(reader, {"streams": {key: [0, 0]}})["streams"][key][0]
    epoch, taken = after[reader]["streams"][key]
    if epoch == start:
        return [epoch] * n
    return [start] * (n - taken) + [epoch] * taken


class SampleLog:
    def __init__(self, log_dir: Path, rank: int):
        self.path = Path(log_dir) / f"samples-rank{rank}-{os.getpid()}.jsonl"
        self.rank, self.trainer, self.kill = rank, None, None

    def __str__(self) -> str:  # what config.yaml and the checkpoint's run config show: one per run
        return f"sample log in {self.path.parent}"

    def __call__(self, batch, epochs: list[int]) -> None:
        step = self.trainer.state.step + 1  # drawn before the trainer counts the step
        line = {"step": step, "rank": self.rank, "world_size": self.trainer.engine.world_size, "pid": os.getpid(),
                "time": time.time(), "resumed_from": self.trainer.resumed_from, "ids": list(batch.source),
                "epochs": epochs}
        with open(self.path, "a") as f:
            f.write(json.dumps(line) + "\n")
            f.flush()
        if self.kill is not None and step == self.kill and self.trainer.resumed_from is None:
            os.kill(os.getpid(), signal.SIGKILL)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("overrides")
    parser.add_argument("log_dir")
    parser.add_argument("--kill-step", type=int, default=0)
    parser.add_argument("--kill-rank", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(1)

    from foundation.train.compose import load_run_config
    from foundation.train.trainer import Trainer

    rank = int(os.environ.get("RANK", "0"))
    log = SampleLog(Path(args.log_dir), rank)
    config = load_run_config(json.loads(args.overrides))
    trainer = Trainer(dataclasses.replace(config, data=LoggedData(config.data, log)))
    log.trainer = trainer
    if args.kill_step and rank == args.kill_rank:
        log.kill = args.kill_step
    if trainer.engine.is_rank0 and trainer.resumed_from is not None:
        print(f"resuming from step {trainer.resumed_from} on {trainer.engine.world_size} rank(s)"
              + (f": {trainer.resplit}" if trainer.resplit else ""), flush=True)
    result = trainer.train()
    if trainer.engine.is_rank0:
        print(f"{result.status} at step {result.step}", flush=True)


if __name__ == "__main__":
    main()
