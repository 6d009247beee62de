"""A stream position saved by one number of ranks (or workers) and restored by another is
re-split: across the change every sample is delivered exactly once per epoch, counted sample by
sample. The ranks run here in one process, as separate streams whose saved positions are merged
the way `state_dict` gathers them under torch.distributed (test_stream_torchrun.py does it for real)."""

from __future__ import annotations

from collections import Counter

import pytest

from foundation.data import stream_position
from foundation.data.shards.manifest import write_manifest
from foundation.data.shards.writer import write_shards
from foundation.data.stream import ShardStream
from foundation.pipelines.synthetic import synthetic_samples

N, PER_SHARD, ATOMS = 48, 6, 4  # 8 shards; 3 samples (12 atoms) per batch


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    out = tmp_path_factory.mktemp("resplit")
    write_manifest(out, write_shards(synthetic_samples(N, atoms=(ATOMS, ATOMS)), out, "train",
                                     max_samples_per_shard=PER_SHARD))
    return out


class Ledger:
    """Sample ids delivered per epoch, over every rank and every layout of one run."""

    def __init__(self):
        self.epochs: dict[int, Counter] = {}

    def take(self, stream: ShardStream, n: int) -> None:
        """`n` batches of `stream`; each sample's epoch from the reader's position around it."""
        batches = iter(stream)
        for _ in range(n):
            before = dict(stream.positions)
            batch = next(batches)
            (reader,) = [r for r, p in stream.positions.items() if p is not before.get(r)]
            start = before.get(reader, {"streams": {"": [0, 0]}})["streams"][""]
            epoch, taken = stream.positions[reader]["streams"][""]
            ids = batch.source
            if epoch != start[0]:  # the batch crosses into a new epoch: its last `taken` are in it
                assert epoch == start[0] + 1 or taken == len(ids)
                self._add(start[0], ids[:len(ids) - taken])
                ids = ids[len(ids) - taken:]
            self._add(epoch, ids)

    def _add(self, epoch, ids):
        self.epochs.setdefault(epoch, Counter()).update(ids)

    def assert_exactly_once(self, epochs):
        every = {f"synthetic:{i}" for i in range(N)}
        for epoch in epochs:
            counts = self.epochs[epoch]
            assert set(counts) == every and set(counts.values()) == {1}, (epoch, counts)


def _layout(shards, world, workers=0):
    return [ShardStream(shards, seed=3, rank=r, world_size=world, max_atoms=3 * ATOMS, shuffle_buffer=4,
                        num_workers=workers) for r in range(world)]


def _saved(streams):
    """The position every rank would gather (`state_dict` under torch.distributed)."""
    states = [s.state_dict() for s in streams]
    return {**states[0], "ranks": {k: v for s in states for k, v in s["ranks"].items()}}


def _resume(shards, state, world, workers=0):
    streams = _layout(shards, world, workers)
    for s in streams:
        s.load_state_dict(state)
    return streams


def test_two_ranks_resumed_on_one_deliver_each_sample_once_per_epoch(shards):
    ledger = Ledger()
    two = _layout(shards, 2)
    ledger.take(two[0], 3)  # the ranks stop at different points of their shares (8 batches each)
    ledger.take(two[1], 5)
    (one,) = _resume(shards, _saved(two), 1)
    assert one.resplit == ("data position saved by 2 rank(s) × 1 reader(s) re-split over 1 × 1: the samples "
                           "not yet delivered in epoch 0 are shared out, none repeated or skipped")
    ledger.take(one, (N - 24) // 3 + N // 3)  # the rest of epoch 0, then all of epoch 1
    ledger.assert_exactly_once([0, 1])


def test_one_rank_resumed_on_two_then_on_three_mid_plan(shards):
    ledger = Ledger()
    (one,) = _layout(shards, 1)
    ledger.take(one, 5)  # 15 of epoch 0's 48 samples
    two = _resume(shards, _saved([one]), 2)
    ledger.take(two[0], 2)
    ledger.take(two[1], 4)
    three = _resume(shards, _saved(two), 3)  # re-split again while epoch 0's plan runs
    for stream in three:
        ledger.take(stream, 12)
    ledger.assert_exactly_once([0, 1])


@pytest.mark.integration  # DataLoader worker processes
def test_dataloader_workers_changed_on_resume(shards):
    ledger = Ledger()
    (two_workers,) = _layout(shards, 1, workers=2)
    ledger.take(two_workers, 3)  # batches alternate between the two workers' readers
    (plain,) = _resume(shards, _saved([two_workers]), 1)
    ledger.take(plain, (N - 9) // 3 + N // 3)
    ledger.assert_exactly_once([0, 1])


def test_a_re_split_position_resumes_exactly_on_its_own_layout(shards):
    two = _layout(shards, 2)
    for stream, n in zip(two, (3, 5)):
        _first(stream, n)
    (one,) = _resume(shards, _saved(two), 1)
    _first(one, 4)
    state = _saved([one])
    expected = [b.source for b in _first(one, 10)]
    (again,) = _resume(shards, state, 1)
    assert again.resplit is None and [b.source for b in _first(again, 10)] == expected


def _first(stream, n):
    batches = iter(stream)
    return [next(batches) for _ in range(n)]


def test_consumed_sets_stay_small():
    c = stream_position.advance(stream_position.consumed(), 2, [5, 7])  # two sub-readers dealt items alternately
    assert c == {"prefix": 10, "extra": [11, 13], "all": False}
    assert list(stream_position.left(c, range(16))) == [10, 12, 14, 15]
    assert stream_position.advance(c, 1, [None])["all"]
    assert stream_position.parts(1, 4, 2) == [(1, 0, 1), (3, 0, 1)] and stream_position.parts(3, 2, 5) == [(1, 1, 2)]
