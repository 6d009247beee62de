"""Reading shards: records out of webdataset tar files, and which shards each reader reads.

A *reader* is one DataLoader worker of one rank. Each epoch the shard list is shuffled with a seed
that depends on the epoch only (the same on every rank), then split by node (rank) and by worker,
so that readers never share a shard and read different shards each epoch. With fewer shards than
readers (a small fine-tuning set), every reader reads all shards and keeps every n-th sample
instead: still disjoint and complete.

A shard that is corrupt or truncated (fewer samples than the manifest says) raises `DataError`
naming it, or with `on_error="skip"` is logged, counted and skipped from that point on. Each
sample is validated as it is read (`checked_sample`, which is `Sample.validate`: positions and cell
first, as `foundation.data.geometry` checks them everywhere, then finite labels, atoms ≥ 0.5 Å
apart, …), with the same choice between stopping and skipping.
"""

from __future__ import annotations

import dataclasses
import logging
import random
from collections.abc import Callable, Iterator, Sequence

import numpy as np
from webdataset.filters import reraise_exception
from webdataset.tariterators import group_by_keys, tar_file_expander

from foundation.data.sample import Sample
from foundation.data.shards import location
from foundation.data.shards.manifest import Manifest
from foundation.data.shards.record import MEMBER, decode_record, record_to_sample
from foundation.errors import DataError, UserError

log = logging.getLogger(__name__)
ON_ERROR = ("raise", "skip")


@dataclasses.dataclass(frozen=True)
class Reader:
    """One reader's place among all: `rank` of `world_size` processes, `worker` of `num_workers`
    DataLoader workers in that process (`num_workers` is 1 when reading in the main process)."""

    rank: int = 0
    world_size: int = 1
    worker: int = 0
    num_workers: int = 1

    @property
    def index(self) -> int:
        return self.rank * self.num_workers + self.worker

    @property
    def count(self) -> int:
        return self.world_size * self.num_workers

    def take(self, items: Sequence) -> list:
        """This reader's share of `items`: split by node, then by worker."""
        return list(items[self.rank::self.world_size][self.worker::self.num_workers])

    def owns(self, i: int) -> bool:
        """Whether item `i` of a sequence split the same way as `take` falls to this reader."""
        return i % self.world_size == self.rank and (i // self.world_size) % self.num_workers == self.worker


def iter_shard_records(url: str, expected: int | None = None) -> Iterator[tuple[str, dict]]:
    """(where, raw record) for each sample of one shard in stored order; `where` is
    `"<shard>:<key>"`. Raises `DataError` naming the shard if it cannot be read whole."""
    n = 0
    try:
        with location.open_binary(url) as stream:
            files = tar_file_expander([{"url": url, "stream": stream}], handler=reraise_exception)
            for sample in group_by_keys(files, handler=reraise_exception):
                where = f"{url}:{sample['__key__']}"
                if MEMBER not in sample:
                    raise DataError(f"{where}: sample has no .{MEMBER} member (not a Foundation shard?)")
                n += 1
                yield where, decode_record(sample[MEMBER], where)
    except DataError:
        raise
    except Exception as e:  # tarfile, webdataset, fsspec and network errors: all mean "bad shard"
        # webdataset appends " @ <stream repr>" to messages; the shard is named already
        message = f"{type(e).__name__}: {str(e.args[0]).split(' @ ')[0]}" if e.args else type(e).__name__
        raise DataError(f"{url}: corrupt or truncated shard after {n} samples ({message}); "
                        f"re-download or regenerate it") from None
    if expected is not None and n != expected:
        raise DataError(f"{url}: truncated or altered shard: read {n} samples, the manifest says {expected}")


def iter_records(manifest: Manifest, shards: Sequence[dict], on_error: str = "raise",
                 failed: Callable[[str], None] | None = None) -> Iterator[tuple[str, dict]]:
    """Records of `shards` (manifest entries) in order. With `on_error="skip"` a bad shard is
    logged, reported to `failed(url)` and skipped from where it broke."""
    for shard in shards:
        url = manifest.url(shard["name"])
        try:
            yield from iter_shard_records(url, shard["n_samples"])
        except DataError as e:
            if on_error != "skip":
                raise
            log.warning("skipping the rest of shard: %s", e)
            if failed is not None:
                failed(url)


def epoch_records(manifest: Manifest, shards: Sequence[dict], reader: Reader, seed: int | None, epoch: int = 0,
                  salt: int = 0, on_error: str = "raise",
                  failed: Callable[[str], None] | None = None) -> Iterator[tuple[str, dict]]:
    """This reader's records of one epoch: shards shuffled by (seed, salt, epoch) — identically on
    every rank — then split by node and worker (or, with fewer shards than readers, all shards
    read and every sample `i` kept by the reader that `owns(i)`). `seed=None`: stored order."""
    order = list(shards)
    if seed is not None:
        random.Random(seed_from(seed, salt, epoch)).shuffle(order)
    if len(order) >= reader.count:
        yield from iter_records(manifest, reader.take(order), on_error, failed)
        return
    for i, item in enumerate(iter_records(manifest, order, on_error, failed)):
        if reader.owns(i):
            yield item


def iter_samples(manifest: Manifest, split: str, on_error: str = "raise",
                 reader: Reader = Reader()) -> Iterator[Sample]:
    """One pass over a split in stored order, as validated `Sample`s (validation, evaluation,
    statistics); with `on_error="skip"` a sample that cannot be used is logged and left out."""
    check_on_error(on_error)
    for where, record in epoch_records(manifest, manifest.shards(split), reader, None, on_error=on_error):
        try:
            yield checked_sample(record, where)
        except DataError as e:
            if on_error != "skip":
                raise
            log.warning("skipping sample: %s", e)


def checked_sample(record: dict, where: str) -> Sample:
    """A raw record as a `Sample` that can be trained on; `DataError` naming the shard and key
    (`where`) and the sample's own source otherwise."""
    sample = record_to_sample(record, where)
    try:
        return sample.validate()
    except DataError as e:
        raise DataError(f"{where}: {e}") from None


def check_on_error(on_error: str) -> None:
    if on_error not in ON_ERROR:
        raise UserError(f"on_error={on_error!r}: use one of {', '.join(ON_ERROR)}")


def seed_from(*parts: int) -> int:
    """A well-mixed 64-bit seed from several integers (seed, salt, epoch, reader, …)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1, np.uint64)[0])

