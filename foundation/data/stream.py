"""The streaming training loader: webdataset shards → endless, shuffled, fidelity-mixed batches.

Per reader (one DataLoader worker of one rank) the pipeline is

    for each mix key (a fidelity, or all samples when there is no mixing), an endless record
    stream: epoch e → shards shuffled by (seed, e) identically on every rank → split by node,
    then by worker (`foundation.data.shards.reader`) → records routed to this key → shuffle buffer
    → mixing: sample j is drawn from key k with probability ratio[k] → validated (a sample that
    cannot be trained on stops the stream, or with on_error="skip" is logged and counted)
    → `group_by_atoms` (at most `max_atoms` atoms per batch) → `collate` → AtomsBatch

Batches, not samples, cross the DataLoader worker boundary. Every random choice is seeded from
(seed, epoch or draw index, reader), so a stream is a pure function of its settings and its
position. The position is small: per reader the number of draws and, per key, (epoch, records
taken in that epoch); restoring replays at most one epoch of one reader's records without building
batches, and whole epochs are skipped without reading anything. A position saved by another number
of ranks or workers is re-split (`stream_position.py`): what no reader had delivered of the epochs under
way is shared out over the new readers, so each sample is still delivered once per epoch.

Mixing keeps a separate stream per fidelity, of every sample labelled at it, each cycling at its
own pace: with {"wb97x_631gs": 0.9, "ccsdt_ccpvdz": 0.1} a tenth of the drawn samples come from the
CC-labelled ones (which bring their DFT labels too) however rare they are in the data. A sample
labelled at several fidelities of the mix is in several streams.
"""

from __future__ import annotations

import dataclasses
import logging
import random
from collections import deque
from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import torch
import torch.distributed as dist
import webdataset as wds
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from foundation.data.batch import AtomsBatch, collate
from foundation.data.batching import batches_by_atoms, group_by_atoms
from foundation.data.stream_position import left, plan_parts, resplit_readers
from foundation.data.shards.manifest import Manifest, load_manifest
from foundation.data.shards.reader import (Reader, check_on_error, checked_sample, epoch_records, iter_samples,
                                          seed_from)
from foundation.data.shards.record import record_label_set
from foundation.errors import DataError, UserError

log = logging.getLogger(__name__)
ALL = ""  # the mix key of an unmixed stream: every sample
_MIX_SALT, _SHUFFLE_SALT, _DRAW_BLOCK = 0x6D6978, 0x736875, 4096
_STATE_VERSION = 1
_LAYOUT = ("world_size", "num_workers")  # may differ on resume: the position is then re-split


@dataclasses.dataclass(frozen=True)
class StreamSpec:
    """Everything a reader needs (picklable: it travels to DataLoader workers)."""

    manifest: Manifest
    split: str
    seed: int
    rank: int
    world_size: int
    num_workers: int
    max_atoms: int
    fidelities: tuple[str, ...]  # label sets in every batch, present or masked
    mix: tuple[tuple[str, float], ...]  # (key, probability); ((ALL, 1.0),) when not mixing
    routes: Mapping[str, frozenset[str] | None]  # key -> label sets it takes (None: all)
    shards: Mapping[str, tuple[dict, ...]]  # key -> manifest entries of shards holding its samples
    shuffle_buffer: int
    on_error: str
    dtype: torch.dtype

    @property
    def n_readers_per_rank(self) -> int:
        return max(1, self.num_workers)


class _KeyStream:
    """One mix key's endless records for one reader; `position` = (epoch, records taken in it).
    An epoch with a plan (a position re-split from another layout, `stream_position.py`) is the rest of
    the logical readers the plan gives this reader; `parts` counts what it took of each, and
    `done` keeps those counts of the planned epochs it finished (for a further re-split)."""

    def __init__(self, spec: StreamSpec, key: str, salt: int, reader: Reader, position, failed,
                 plans: dict | None = None, parts: list | None = None, done: dict | None = None):
        self.spec, self.key, self.salt, self.reader, self.failed = spec, key, salt, reader, failed
        self.position = tuple(position)
        self.plans = plans or {}  # str(epoch) -> plan; never changed here, so shared, not copied
        self.parts = list(parts or self._zero_parts(self.position[0]))
        self.done = dict(done or {})
        self._records = self._generate(*self.position)

    def next(self) -> tuple[str, dict]:
        epoch, index, part, item = next(self._records)
        if epoch != self.position[0]:
            self._finish(self.position[0], epoch)
        if part is not None:
            self.parts[part] += 1
        self.position = (epoch, index + 1)
        return item

    def _finish(self, old: int, new: int) -> None:
        """Record the part counts of the planned epochs from `old` up to `new` (empty ones too)."""
        for epoch in range(old, new):
            if str(epoch) in self.plans:
                self.done[str(epoch)] = self.parts if epoch == old else self._zero_parts(epoch)
        self.parts = self._zero_parts(new)

    def _zero_parts(self, epoch: int) -> list[int]:
        plan = self.plans.get(str(epoch))
        return [] if plan is None else [0] * len(plan_parts(plan, self.reader.index, self.reader.count))

    def _generate(self, epoch: int, skip: int):
        while True:
            plan = self.plans.get(str(epoch))
            records = ((None, r) for r in self._records_of(self.reader, epoch)) if plan is None \
                else self._planned(plan, epoch)
            n = 0
            for part, item in records:
                if n >= skip:  # fast-forward on restore: records are read, no sample is built
                    yield epoch, n, part, item
                n += 1
            if n == 0 and plan is None:
                what = f"samples of fidelity {self.key!r}" if self.key else "samples"
                raise DataError(f"{self.spec.manifest.location}: reader {self.reader.index} of {self.reader.count} "
                                f"(world_size × workers) got no {what} in split {self.spec.split!r}; use fewer "
                                f"workers or ranks, or more data")
            epoch, skip = epoch + 1, 0

    def _planned(self, plan: dict, epoch: int):
        """(part, record): this reader's share of the rest of each logical reader of the plan."""
        world, per_rank = plan["layout"]
        for q, (i, a, cnt) in enumerate(plan_parts(plan, self.reader.index, self.reader.count)):
            logical = Reader(i // per_rank, world, i % per_rank, per_rank)
            for k, item in enumerate(left(plan["consumed"][i], self._records_of(logical, epoch))):
                if k % cnt == a:
                    yield q, item

    def _records_of(self, reader: Reader, epoch: int):
        """`reader`'s records of one epoch: its shards, routed to this key, shuffled."""
        spec, route = self.spec, self.spec.routes[self.key]
        records = epoch_records(spec.manifest, spec.shards[self.key], reader, spec.seed, epoch,
                                self.salt, spec.on_error, self.failed)
        if route is not None:
            records = (r for r in records if record_label_set(r[1]) in route)
        if spec.shuffle_buffer > 1:
            rng = _rng(spec.seed, _SHUFFLE_SALT, self.salt, epoch, reader.index)
            records = wds.shuffle(spec.shuffle_buffer, spec.shuffle_buffer, rng=rng)(records)
        return records


class _ReaderPipeline:
    """One reader's endless batches, each with the reader's position after it."""

    def __init__(self, spec: StreamSpec, reader: Reader, state: dict | None):
        state = state or {}
        self.spec, self.reader = spec, reader
        self.drawn = int(state.get("drawn", 0))
        self.failed: dict[str, int] = dict(state.get("failed", {}))  # shard url -> times skipped
        self.skipped = int(state.get("skipped", 0))  # samples that failed validation (on_error=skip)
        self._skips_in_a_row = 0
        positions, plans = state.get("streams", {}), state.get("plans", {})
        parts, done = state.get("parts", {}), state.get("done", {})
        self.streams = [_KeyStream(spec, key, salt, reader, positions.get(key, (0, 0)), self._note_failure,
                                   plans.get(key), parts.get(key), done.get(key))
                        for salt, (key, _) in enumerate(spec.mix)]

    def _note_failure(self, url: str) -> None:
        self.failed[url] = self.failed.get(url, 0) + 1

    def position(self) -> dict:
        position = {"drawn": self.drawn, "failed": dict(self.failed), "skipped": self.skipped,
                    "streams": {s.key: list(s.position) for s in self.streams}}
        if any(s.plans for s in self.streams):  # a re-split position (stream_position.py)
            position |= {"plans": {s.key: s.plans for s in self.streams},
                         "parts": {s.key: list(s.parts) for s in self.streams},
                         "done": {s.key: dict(s.done) for s in self.streams}}
        return position

    def _sample(self, record: dict, where: str):
        """The record as a validated sample, or None when it is skipped (on_error=skip)."""
        try:
            sample = checked_sample(record, where)
        except DataError as e:
            if self.spec.on_error != "skip":
                raise
            self.skipped += 1
            self._skips_in_a_row += 1
            log.warning("skipping sample (%d so far on reader %d): %s", self.skipped, self.reader.index, e)
            n = self.spec.manifest.counts(self.spec.split)["n_samples"]
            if self._skips_in_a_row > n:  # an endless stream of nothing but bad samples
                raise DataError(f"{self.spec.manifest.location}: no usable sample in split {self.spec.split!r} "
                                f"({self._skips_in_a_row} skipped in a row; the last: {e})") from None
            return None
        self._skips_in_a_row = 0
        return sample

    def samples(self):
        """Endless (sample, position after it): draws by ratio from the key streams."""
        spec = self.spec
        p = np.array([w for _, w in spec.mix])
        while True:
            block, start = divmod(self.drawn, _DRAW_BLOCK)
            if len(self.streams) == 1:
                choices = np.zeros(_DRAW_BLOCK, np.int64)
            else:  # draws come in seeded blocks, so draw j is known without replaying draws < j
                rng = np.random.default_rng(seed_from(spec.seed, _MIX_SALT, self.reader.index, block))
                choices = rng.choice(len(p), size=_DRAW_BLOCK, p=p)
            for c in choices[start:]:
                where, record = self.streams[c].next()
                self.drawn += 1
                sample = self._sample(record, where)
                if sample is not None:
                    yield sample, self.position()

    def batches(self) -> Iterator[tuple[AtomsBatch, dict]]:
        # group_by_atoms looks one sample ahead; the position after a batch is that of its last
        # sample, so positions wait in a queue until their sample's batch is out.
        pending: deque = deque()

        def samples():
            for sample, position in self.samples():
                pending.append(position)
                yield sample

        for group in group_by_atoms(samples(), self.spec.max_atoms):
            for _ in group:
                position = pending.popleft()
            yield collate(group, self.spec.fidelities, dtype=self.spec.dtype), position


class _ReaderDataset(IterableDataset):
    """Runs one `_ReaderPipeline` per DataLoader worker. Physical worker i plays logical reader
    (i + offset) % n: a restored stream starts the DataLoader's round-robin where it stopped."""

    def __init__(self, spec: StreamSpec, states: dict[int, dict], offset: int):
        self.spec, self.states, self.offset = spec, states, offset

    def __iter__(self):
        info = get_worker_info()
        n = self.spec.n_readers_per_rank
        logical = ((info.id if info is not None else 0) + self.offset) % n
        reader = Reader(self.spec.rank, self.spec.world_size, logical, n)
        try:
            for batch, position in _ReaderPipeline(self.spec, reader, self.states.get(logical)).batches():
                yield batch, logical, position
        except DataError as e:  # one clean line in the main process, not a worker traceback
            yield None, logical, str(e)


def _as_is(x):
    return x


class ShardStream:
    """Endless training batches for one rank from a shard folder or URL (`BatchStream`).

    `ratios`: fidelity -> share of drawn samples, e.g. {"wb97x_631gs": 0.9, "ccsdt_ccpvdz": 0.1};
    None draws samples as they come. `fidelities`: the label sets every batch carries (default:
    all in the split). Iterating again continues from the current position; `state_dict()` is that
    position (with DataLoader workers the next batches were prefetched, but only consumed ones
    count)."""

    def __init__(self, manifest: Manifest | str, split: str = "train", *, seed: int = 0, rank: int = 0,
                 world_size: int = 1, max_atoms: int = 1024, fidelities: Sequence[str] | None = None,
                 ratios: Mapping[str, float] | None = None, shuffle_buffer: int = 1000,
                 num_workers: int = 0, on_error: str = "raise", dtype: torch.dtype = torch.float32):
        manifest = manifest if isinstance(manifest, Manifest) else load_manifest(manifest)
        check_on_error(on_error)
        _check_ints(seed=(seed, 0), world_size=(world_size, 1), max_atoms=(max_atoms, 1),
                    num_workers=(num_workers, 0), shuffle_buffer=(shuffle_buffer, 0))
        if not 0 <= rank < world_size:
            raise UserError(f"rank {rank} is outside 0..{world_size - 1}")
        mix, routes, shards = mix_plan(manifest, split, ratios)
        self.spec = StreamSpec(manifest, split, seed, rank, world_size, num_workers, max_atoms,
                               tuple(fidelities or manifest.fidelities(split)), mix, routes, shards,
                               shuffle_buffer, on_error, dtype)
        self.batches = 0
        self._readers: dict[int, dict] = {}
        self.resplit: str | None = None  # set when a position of another layout was re-split

    @property
    def positions(self) -> dict[int, dict]:
        """This rank's readers' positions after the last batch taken (no collective): per reader,
        per mix key, (epoch, records taken in it)."""
        return {k: v for k, v in self._readers.items()}

    @property
    def skipped_samples(self) -> int:
        """Samples that failed validation and were skipped (`on_error="skip"`) by this rank's
        readers so far."""
        return sum(int(state.get("skipped", 0)) for state in self._readers.values())

    @property
    def failed_shards(self) -> dict[str, int]:
        """Shards skipped (with `on_error="skip"`) by this rank's readers: url -> times skipped
        (once per epoch that reached it)."""
        failed: dict[str, int] = {}
        for state in self._readers.values():
            for url, n in state["failed"].items():
                failed[url] = failed.get(url, 0) + n
        return failed

    def __iter__(self) -> Iterator[AtomsBatch]:
        spec = self.spec
        dataset = _ReaderDataset(spec, dict(self._readers), self.batches % spec.n_readers_per_rank)
        items = iter(dataset) if spec.num_workers == 0 else iter(DataLoader(
            dataset, batch_size=None, num_workers=spec.num_workers, collate_fn=_as_is))
        for batch, logical, position in items:
            if batch is None:
                raise DataError(position)
            self._readers[logical] = position
            self.batches += 1
            yield batch

    def state_dict(self) -> dict:
        """The position of every rank. Under torch.distributed with world_size > 1 this is a
        collective (every rank must call it, as the trainer's `save` does): it gathers all ranks'
        positions, so the checkpoint that rank 0 writes resumes every rank exactly."""
        mine = {"batches": self.batches, "readers": {str(k): v for k, v in sorted(self._readers.items())}}
        ranks = [(self.spec.rank, mine)]
        if self.spec.world_size > 1 and dist.is_available() and dist.is_initialized():
            ranks = [None] * dist.get_world_size()
            dist.all_gather_object(ranks, (self.spec.rank, mine))
        return {**self._identity(), "ranks": {str(r): s for r, s in sorted(ranks)}}

    def load_state_dict(self, state: dict) -> None:
        """Restore a position saved by `state_dict`. Saved by another number of ranks or workers, it
        is re-split (`stream_position.py`): the samples not yet delivered in the epochs under way are shared
        out over this layout, none repeated or skipped, and `self.resplit` says so in one line."""
        mine = self._identity()
        differ = [k for k in mine if k not in _LAYOUT and state.get(k) != mine[k]]
        if differ:
            raise UserError("cannot resume the data stream: " + ", ".join(
                f"{k} was {state.get(k)!r}, now {mine[k]!r}" for k in differ)
                + " (resume with the same data, seed and batching)")
        spec = self.spec
        if (int(state["world_size"]), max(1, int(state["num_workers"]))) != (spec.world_size, spec.n_readers_per_rank):
            readers, self.resplit = resplit_readers(state, [k for k, _ in spec.mix], spec.world_size,
                                                    spec.n_readers_per_rank)
            first = spec.rank * spec.n_readers_per_rank
            self.batches = 0
            self._readers = {w: readers[first + w] for w in range(spec.n_readers_per_rank)}
            return
        saved = state["ranks"].get(str(spec.rank))
        if saved is None:
            raise UserError(f"cannot resume the data stream: the checkpoint holds the positions of "
                            f"ranks {', '.join(state['ranks'])}, not of rank {spec.rank}")
        self.batches = int(saved["batches"])
        self._readers = {int(k): v for k, v in saved["readers"].items()}

    def _identity(self) -> dict:
        s = self.spec
        return {"version": _STATE_VERSION, "manifest_sha256": s.manifest.sha256, "split": s.split,
                "seed": s.seed, "world_size": s.world_size, "num_workers": s.num_workers,
                "max_atoms": s.max_atoms, "mix": [[k, w] for k, w in s.mix], "shuffle_buffer": s.shuffle_buffer}


def single_pass(manifest: Manifest | str, split: str, max_atoms: int, fidelities: Sequence[str] | None = None,
                on_error: str = "raise", rank: int = 0, world_size: int = 1,
                dtype: torch.dtype = torch.float32) -> Iterator[AtomsBatch]:
    """One finite pass over `split` in stored order (validation, evaluation); with `world_size`
    > 1 each rank gets a disjoint share."""
    manifest = manifest if isinstance(manifest, Manifest) else load_manifest(manifest)
    fidelities = list(fidelities or manifest.fidelities(split))
    samples = iter_samples(manifest, split, on_error, Reader(rank, world_size))
    return batches_by_atoms(samples, max_atoms, fidelities, dtype=dtype)


def mix_plan(manifest: Manifest, split: str, ratios: Mapping[str, float] | None):
    """(mix, routes, shards): each key's draw probability, the label sets its stream takes (every
    one that includes the fidelity) and the shards holding them."""
    counts = manifest.counts(split)
    all_shards = tuple(manifest.shards(split))
    if not ratios:
        return ((ALL, 1.0),), {ALL: None}, {ALL: all_shards}
    present = counts["fidelities"]
    for fid, w in ratios.items():
        if fid not in present:
            raise UserError(f"fidelity ratio for {fid!r}, but split {split!r} of {manifest.location} "
                            f"has only {', '.join(sorted(present)) or 'no labels'}")
        if not (w > 0):
            raise UserError(f"fidelity ratio for {fid!r} is {w}; ratios must be > 0")
    keys = sorted(ratios)
    routes = {fid: frozenset(ls for ls in counts["label_sets"] if fid in ls.split("+")) for fid in keys}
    shards = {fid: tuple(s for s in all_shards if routes[fid] & set(s["label_sets"])) for fid in keys}
    total = sum(ratios.values())
    return tuple((fid, ratios[fid] / total) for fid in keys), routes, shards


def _rng(*parts: int) -> random.Random:
    return random.Random(seed_from(*parts))


def _check_ints(**values: tuple[int, int]) -> None:
    for name, (value, least) in values.items():
        if not isinstance(value, (int, np.integer)) or value < least:
            raise UserError(f"{name}={value!r}: must be an integer ≥ {least}")
