"""Samples to webdataset `.tar` shards of bounded size: `<split>-000000.tar`, `<split>-000001.tar`, …

Each sample is one tar member `<key>.msgpack` (see `record.py`); `<key>` is the sample's index in
its split. A shard is written to a hidden temp file in the output folder and renamed when complete,
so a crash never leaves a truncated shard under a real name. The writer knows nothing about where
samples come from (converters, the labeller's JSONL, …): it takes any iterable of `Sample`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import webdataset as wds

from foundation.data.sample import Sample
from foundation.data.shards.record import MEMBER, encode_sample, label_set
from foundation.errors import UserError

DEFAULT_SHARD_BYTES = 64 * 2**20
_TAR_BLOCK = 512
_TAR_RECORD = 10240  # tar pads the archive to a multiple of this
_SPLIT_NAME = re.compile(r"^[a-z0-9_]+$")


@dataclasses.dataclass
class ShardInfo:
    """What the manifest records of one shard."""

    name: str
    split: str
    sha256: str
    n_samples: int
    bytes: int
    n_atoms: int
    elements: list[int]
    label_sets: dict[str, int]  # e.g. {"ccsdt_ccpvdz+wb97x_631gs": 10, "wb97x_631gs": 90}
    fidelities: dict[str, dict[str, int]]  # fid -> {"energy": count, "forces": count}
    # structures by total charge and by spin multiplicity, e.g. {"0": 90, "1": 10}, {"1": 95, "2": 5}
    charges: dict[str, int] = dataclasses.field(default_factory=dict)
    multiplicities: dict[str, int] = dataclasses.field(default_factory=dict)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


class _HashingFile:
    """A write-only file that hashes and counts what passes through it."""

    def __init__(self, f):
        self.f, self.sha = f, hashlib.sha256()
        self.bytes = 0

    def write(self, data) -> int:
        self.sha.update(data)
        self.bytes += len(data)
        return self.f.write(data)

    def flush(self):
        self.f.flush()


class ShardWriter:
    """Write one split's samples to shards of at most `max_shard_bytes` (a single larger sample
    gets a shard of its own) and at most `max_samples_per_shard` samples. Use as a context
    manager, or call `close()` (returns the shards written) or `abort()`."""

    def __init__(self, out_dir: str | os.PathLike, split: str, max_shard_bytes: int = DEFAULT_SHARD_BYTES,
                 max_samples_per_shard: int | None = None, validate: bool = True):
        if not _SPLIT_NAME.match(split):
            raise UserError(f"split name {split!r}: use lower-case letters, digits and '_'")
        if max_shard_bytes < 4 * _TAR_RECORD:
            raise UserError(f"max_shard_bytes={max_shard_bytes} is too small (at least {4 * _TAR_RECORD})")
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.split, self.max_bytes = split, max_shard_bytes
        self.max_samples = max_samples_per_shard or 2**62
        self.validate = validate
        self.shards: list[ShardInfo] = []
        self.n_samples = 0  # in the split, over all shards: the next sample's key
        self._file = self._tar = self._tmp = None

    def write(self, sample: Sample) -> None:
        data = encode_sample(sample.validate() if self.validate else sample)
        member = _TAR_BLOCK + -(-len(data) // _TAR_BLOCK) * _TAR_BLOCK
        if self._tar is not None and (self._n >= self.max_samples
                                      or self._size + member + 2 * _TAR_BLOCK + _TAR_RECORD > self.max_bytes):
            self._finish()
        if self._tar is None:
            self._start()
        self._tar.write({"__key__": f"{self.n_samples:09d}", MEMBER: data})
        self._size += member
        self._n += 1
        self.n_samples += 1
        self._atoms += sample.n_atoms
        self._elements.update(int(z) for z in set(sample.numbers.tolist()))
        self._label_sets[label_set(sample.fidelities)] += 1
        self._charges[str(int(sample.charge))] += 1
        self._multiplicities[str(int(sample.multiplicity))] += 1
        for fid in sample.energies:
            self._fids.setdefault(fid, Counter())["energy"] += 1
        for fid in sample.forces:
            self._fids.setdefault(fid, Counter())["forces"] += 1

    def close(self) -> list[ShardInfo]:
        if self._tar is not None:
            self._finish()
        return self.shards

    def abort(self) -> None:
        if self._tar is not None:
            try:  # close the tar stream now, or its finaliser writes to the closed file later
                self._tar.close()
            finally:
                self._file.f.close()
                os.unlink(self._tmp)
            self._file = self._tar = None

    def __enter__(self) -> "ShardWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def _start(self) -> None:
        self._name = f"{self.split}-{len(self.shards):06d}.tar"
        self._tmp = self.out_dir / f".{self._name}.tmp"
        self._file = _HashingFile(open(self._tmp, "wb"))
        # fixed mtime and owner: the same samples give byte-identical shards and hashes
        self._tar = wds.TarWriter(self._file, encoder=False, mtime=0, user="foundation", group="foundation")
        self._size = self._n = self._atoms = 0
        self._elements: set[int] = set()
        self._label_sets: Counter = Counter()
        self._charges: Counter = Counter()
        self._multiplicities: Counter = Counter()
        self._fids: dict[str, Counter] = {}

    def _finish(self) -> None:
        self._tar.close()
        self._file.f.flush()
        os.fsync(self._file.f.fileno())
        self._file.f.close()
        os.replace(self._tmp, self.out_dir / self._name)
        self.shards.append(ShardInfo(
            name=self._name, split=self.split, sha256=self._file.sha.hexdigest(), n_samples=self._n,
            bytes=self._file.bytes, n_atoms=self._atoms, elements=sorted(self._elements),
            label_sets=dict(sorted(self._label_sets.items())),
            fidelities={f: {"energy": c["energy"], "forces": c["forces"]} for f, c in sorted(self._fids.items())},
            charges=_sorted_counts(self._charges), multiplicities=_sorted_counts(self._multiplicities)))
        self._file = self._tar = None


def _sorted_counts(counts: Counter) -> dict[str, int]:
    return {k: counts[k] for k in sorted(counts, key=int)}


def write_shards(samples: Iterable[Sample], out_dir: str | os.PathLike, split: str,
                 max_shard_bytes: int = DEFAULT_SHARD_BYTES,
                 max_samples_per_shard: int | None = None) -> list[ShardInfo]:
    """Write `samples` (any iterable, consumed once, never held in memory) to shards of `split`
    in `out_dir`; returns what `manifest.write_manifest` needs to describe them."""
    with ShardWriter(out_dir, split, max_shard_bytes, max_samples_per_shard) as writer:
        for sample in samples:
            writer.write(sample)
    return writer.shards
