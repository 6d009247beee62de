"""One rank of the scaling benchmark (started by `torchrun` from `benchmarks/scaling.py`; not a
benchmark by itself): `foundation train` with the given overrides, timing where each step's
wall time goes, written to OUT_DIR/timing-rank<r>.json.

    scaling_rank.py OVERRIDES_JSON OUT_DIR

Per optimiser step (the trainer's own loop, unchanged; only timers around its parts):
- `data_ms`: waiting for the stream's next batch (all `trainer.accumulate` of them);
- `step_ms`: the trainer's `train_step` (forward, forces, backward, gradient all-reduce, clip,
  AdamW, EMA, and the one small all-reduce it does: the non-finite flag with the stop request);
- `grad_reduce_ms`: each gradient bucket's all-reduce, from the moment DDP hands it over (its
  gradients are ready) to its completion, through a comm hook that does what DDP's default one
  does (mean over ranks), timed; it includes waiting for the slower rank;
- `grad_exposed_ms`: the part of the backward pass spent waiting for those all-reduces after this
  rank's last gradient was ready (what overlapping could not hide);
- `scalar_sync_in_step_ms`, `scalar_sync_loop_ms`: the trainer's all-reduces of scalars (the
  flags in `train_step`; on logging steps the metrics and memory, and validation, in the
  loop), each a synchronisation point of all ranks;
- `wall_ms`: from this step's first batch request to the next one's.
Before training, `pure_reduce_ms`: the median all-reduce of a tensor as large as the gradients right
after a barrier, the transfer alone, without waiting for another rank.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

_now = time.perf_counter


class Timeline:
    def __init__(self):
        self.steps: list[dict] = []
        self._open: dict | None = None
        self.in_step = False  # inside train_step

    def batch_requested(self, start: float, waited: float) -> None:
        if self._open is None:
            self._open = {"start": start, "data_ms": 0.0, "step_ms": 0.0, "grad_reduce_ms": 0.0,
                          "grad_exposed_ms": 0.0, "scalar_sync_in_step_ms": 0.0, "scalar_sync_loop_ms": 0.0,
                          "ready": [], "atoms": 0}
            if self.steps:
                self.steps[-1]["wall_ms"] = 1e3 * (start - self.steps[-1]["start"])
        self._open["data_ms"] += 1e3 * waited

    @property
    def current(self) -> dict:
        return self._open if self._open is not None else (self.steps[-1] if self.steps else {})

    def step_done(self) -> None:
        if self._open is not None:
            self.steps.append(self._open)
            self._open = None


@dataclasses.dataclass
class TimedData:
    """The run's data config, whose training stream reports how long each batch took to come."""

    inner: Any
    timeline: Any

    def __str__(self) -> str:  # config.yaml and the checkpoint show the data they wrap
        return str(self.inner)

    def build(self):
        data = self.inner.build()
        make_stream, timeline = data.train_stream, self.timeline

        class Timed:
            def __init__(self, stream):
                self.stream = stream

            def __iter__(self):
                batches = iter(self.stream)
                while True:
                    start = _now()
                    batch = next(batches)
                    timeline.batch_requested(start, _now() - start)
                    timeline.current["atoms"] += batch.n_atoms
                    yield batch

            def state_dict(self):
                return self.stream.state_dict()

            def load_state_dict(self, state):
                self.stream.load_state_dict(state)

        data.train_stream = lambda seed, rank=0, world_size=1: Timed(make_stream(seed, rank, world_size))
        return data


def instrument(trainer, timeline: Timeline) -> None:
    """Timers around the trainer's parts (see the module doc); the computation is unchanged."""
    engine = trainer.engine
    train_step, backward, all_reduce = trainer.train_step, engine.backward, engine.all_reduce

    def timed_train_step(batch):
        start, timeline.in_step = _now(), True
        try:
            return train_step(batch)
        finally:
            timeline.in_step = False
            timeline.current["step_ms"] += 1e3 * (_now() - start)
            timeline.step_done()

    def timed_backward(loss):
        backward(loss)
        ready = timeline.current.get("ready")
        if ready:  # this backward handed gradients to the all-reduce: the wait after the last one
            timeline.current["grad_exposed_ms"] += 1e3 * (_now() - max(ready))
            ready.clear()

    def timed_all_reduce(values, op="mean", **kw):
        start, key = _now(), "scalar_sync_in_step_ms" if timeline.in_step else "scalar_sync_loop_ms"
        try:
            return all_reduce(values, op, **kw)
        finally:
            timeline.current[key] = timeline.current.get(key, 0.0) + 1e3 * (_now() - start)

    trainer.train_step, engine.backward, engine.all_reduce = timed_train_step, timed_backward, timed_all_reduce
    ddp = getattr(engine, "ddp", None)
    if ddp is not None and engine.world_size > 1:
        ddp.register_comm_hook(timeline, _timed_mean_hook)


def _timed_mean_hook(timeline: Timeline, bucket):
    """DDP's default all-reduce hook (the mean over ranks), with the bucket's time recorded."""
    start = _now()
    timeline.current["ready"].append(start)
    record = timeline.current
    tensor = bucket.buffer().div_(dist.get_world_size())

    def done(fut):
        record["grad_reduce_ms"] += 1e3 * (_now() - start)
        return fut.value()[0]

    return dist.all_reduce(tensor, async_op=True).get_future().then(done)


def pure_reduce_ms(numel: int, repeats: int = 20) -> float:
    x = torch.zeros(numel)
    times = []
    for _ in range(repeats + 3):
        dist.barrier()
        start = _now()
        dist.all_reduce(x)
        times.append(1e3 * (_now() - start))
    return statistics.median(times[3:])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("overrides")
    parser.add_argument("out")
    args = parser.parse_args()
    torch.set_num_threads(1)

    from foundation.train.compose import load_run_config
    from foundation.train.trainer import Trainer

    timeline = Timeline()
    config = load_run_config(json.loads(args.overrides))
    trainer = Trainer(dataclasses.replace(config, data=TimedData(config.data, timeline)))
    instrument(trainer, timeline)
    rank, world = trainer.engine.rank, trainer.engine.world_size
    numel = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    pure = pure_reduce_ms(numel) if world > 1 else None  # before training: the group closes with it
    trainer.train()
    result = {"rank": rank, "world_size": world, "accumulate": trainer.config.accumulate, "grad_numel": numel,
              "pure_reduce_ms": pure,
              "steps": [{k: v for k, v in s.items() if k not in ("start", "ready")} for s in timeline.steps]}
    out = Path(args.out) / f"timing-rank{rank}.json"
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(json.dumps(result))
    os.replace(tmp, out)


if __name__ == "__main__":
    main()
