"""What every converter shares: split fractions, the output folder check, and one shard writer
per split that skips (and counts) samples that cannot be trained on."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from foundation.data import Sample
from foundation.data.shards.manifest import MANIFEST, write_manifest
from foundation.data.shards.writer import DEFAULT_SHARD_BYTES, ShardWriter
from foundation.errors import DataError, UserError

log = logging.getLogger(__name__)
DEFAULT_FRACTIONS = {"train": 0.8, "val": 0.1, "test": 0.1}


def parse_fractions(text: str) -> dict[str, float]:
    """`"train=0.8,val=0.1,test=0.1"` → {"train": 0.8, "val": 0.1, "test": 0.1}."""
    fractions = {}
    for item in text.split(","):
        name, sep, value = item.strip().partition("=")
        try:
            fractions[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise UserError(f"--split {text!r}: use NAME=FRACTION,…, e.g. train=0.8,val=0.1,test=0.1")
    return check_fractions(fractions)


def check_fractions(fractions: Mapping[str, float] | None) -> dict[str, float]:
    """Fractions ≥ 0 that sum to 1 (± 1e-6); zero ones are dropped."""
    fractions = dict(DEFAULT_FRACTIONS if fractions is None else fractions)
    if any(not (f >= 0) for f in fractions.values()) or abs(sum(fractions.values()) - 1) > 1e-6:
        raise UserError(f"split fractions {fractions}: need values ≥ 0 that sum to 1")
    if "train" not in fractions or fractions["train"] == 0:
        raise UserError(f"split fractions {fractions}: a 'train' split with a fraction > 0 is needed")
    return {k: v for k, v in fractions.items() if v > 0}


def check_out_dir(out_dir: str | os.PathLike) -> None:
    """Refuse a folder that already holds shards: stale shards beside new ones mislead."""
    out = Path(out_dir)
    if out.exists() and ((out / MANIFEST).exists() or any(out.glob("*.tar"))):
        raise UserError(f"{out}: already holds shards or a {MANIFEST}; choose an empty or new folder")


class SplitWriters:
    """One `ShardWriter` per split; a sample that fails validation is skipped and counted."""

    def __init__(self, out_dir: str | os.PathLike, splits: Sequence[str], max_shard_bytes: int | None = None):
        self.out_dir = Path(out_dir)
        self.writers = {s: ShardWriter(out_dir, s, max_shard_bytes or DEFAULT_SHARD_BYTES) for s in splits}
        self.skipped = 0
        self.first_skip = ""

    def write(self, split: str, sample: Sample) -> None:
        try:
            self.writers[split].write(sample)
        except DataError as e:
            self.skipped += 1
            self.first_skip = self.first_skip or str(e)
            log.warning("skipping sample: %s", e)

    def finish(self, levels: Mapping[str, Mapping], command: Sequence[str] | str | None,
               extra: Mapping | None = None) -> Path:
        shards = [info for writer in self.writers.values() for info in writer.close()]
        if not shards:
            raise DataError(f"{self.out_dir}: no sample could be converted"
                            + (f" (first problem: {self.first_skip})" if self.first_skip else ""))
        return write_manifest(self.out_dir, shards, levels, command,
                              {**(extra or {}), "skipped_samples": self.skipped})

    def __enter__(self) -> "SplitWriters":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:  # leave no shards without a manifest: a rerun would refuse the folder
            for writer in self.writers.values():
                writer.abort()
                for info in writer.shards:
                    (self.out_dir / info.name).unlink(missing_ok=True)
