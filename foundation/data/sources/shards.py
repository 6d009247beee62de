"""Streamed shards as a `DataModule` (Hydra group `data=shards`): pretraining-scale data that does
not fit in memory, from a local folder, `http(s)://` or any fsspec URL.

    foundation train data=shards data.path=shards/ani1x \\
        data.fidelity_ratios='{wb97x_631gs: 0.9, ccsdt_ccpvdz: 0.1}' data.num_workers=4
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from foundation.data.batch import AtomsBatch
from foundation.data.shards.manifest import Manifest, load_manifest, verify_shards
from foundation.data.shards.reader import ON_ERROR, iter_samples
from foundation.data.stream import ShardStream, single_pass
from foundation.dtypes import DTYPES
from foundation.errors import DataError, UserError



@dataclasses.dataclass
class ShardDataConfig:
    """`path`: a shard folder, its manifest.json, or their URL. `fidelity_ratios`: how often a
    training sample is drawn from the samples labelled at each fidelity, e.g. {wb97x_631gs: 0.9,
    ccsdt_ccpvdz: 0.1} (null: samples as they come). `on_error`: raise on a corrupt shard or a
    sample that cannot be trained on, or skip (log and count) it."""

    path: str | None = None
    fidelities: list[str] | None = None  # train on these label sets only (null: all in the data)
    fidelity_ratios: dict[str, float] | None = None
    max_atoms_per_batch: int = 512
    shuffle_buffer: int = 1000  # samples per reader; more mixes better, costs memory
    num_workers: int = 0  # DataLoader workers per rank, each reading its own shards
    on_error: str = "raise"  # raise | skip
    train_split: str = "train"
    val_split: str = "val"
    test_split: str = "test"
    verify: bool = False  # check every shard's sha256 when building (reads all shards once)
    dtype: str = "float32"  # of positions and forces in batches; energies are always float64

    def __post_init__(self):
        if not self.path:
            raise UserError("data.path is required: a shard folder, its manifest.json, or their URL")
        self.path = str(self.path)
        if self.fidelity_ratios is not None:
            if not isinstance(self.fidelity_ratios, Mapping):
                raise UserError(f"data.fidelity_ratios={self.fidelity_ratios!r}: expected a mapping "
                                "fidelity -> ratio, e.g. {wb97x_631gs: 0.9, ccsdt_ccpvdz: 0.1}")
            self.fidelity_ratios = {str(k): float(v) for k, v in self.fidelity_ratios.items()}
        if self.fidelities is not None:
            self.fidelities = [str(f) for f in self.fidelities]
            if self.fidelity_ratios is None and len(self.fidelities) == 1:
                # draw only samples labelled at the one fidelity (e.g. the CC subset for fine-tuning)
                self.fidelity_ratios = {self.fidelities[0]: 1.0}
        for name in ("max_atoms_per_batch",):
            if getattr(self, name) <= 0:
                raise UserError(f"data.{name}={getattr(self, name)}: must be > 0")
        for name in ("shuffle_buffer", "num_workers"):
            if getattr(self, name) < 0:
                raise UserError(f"data.{name}={getattr(self, name)}: must be ≥ 0")
        if self.on_error not in ON_ERROR:
            raise UserError(f"data.on_error={self.on_error!r}: must be one of {', '.join(ON_ERROR)}")
        if self.dtype not in DTYPES:
            raise UserError(f"data.dtype={self.dtype!r}: must be one of {', '.join(DTYPES)}")

    def build(self) -> "ShardData":
        manifest = load_manifest(self.path)
        if self.verify:
            verify_shards(manifest)
        return ShardData(manifest, self)


class ShardData:
    """The `DataModule` over a shard set (see `foundation.data.sources.protocol`). `manifest_hash` (the
    sha256 of manifest.json) is the training-data hash that checkpoints record."""

    def __init__(self, manifest: Manifest, config: ShardDataConfig):
        if config.train_split not in manifest.splits or not manifest.counts(config.train_split)["n_samples"]:
            raise DataError(f"{manifest.location}: no training split {config.train_split!r} "
                            f"(splits: {', '.join(manifest.splits) or 'none'})")
        self.manifest, self.config = manifest, config
        self.dtype = DTYPES[config.dtype]
        self.fidelities = manifest.fidelities()
        if config.fidelities is not None:
            unknown = sorted(set(config.fidelities) - set(self.fidelities))
            if unknown:
                raise UserError(f"data.fidelities: {', '.join(unknown)} not in {manifest.location} "
                                f"(has {', '.join(self.fidelities)})")
            self.fidelities = list(config.fidelities)
        self.elements = manifest.elements(config.train_split)
        self._references: dict[str, tuple[list[np.ndarray], np.ndarray]] | None = None

    @property
    def manifest_hash(self) -> str:
        return self.manifest.sha256

    def train_stream(self, seed: int, rank: int = 0, world_size: int = 1) -> ShardStream:
        c = self.config
        return ShardStream(self.manifest, c.train_split, seed=seed, rank=rank, world_size=world_size,
                           max_atoms=c.max_atoms_per_batch, fidelities=self.fidelities,
                           ratios=c.fidelity_ratios, shuffle_buffer=c.shuffle_buffer,
                           num_workers=c.num_workers, on_error=c.on_error, dtype=self.dtype)

    def val_batches(self) -> Iterator[AtomsBatch]:
        return self._batches(self.config.val_split)

    def test_batches(self) -> Iterator[AtomsBatch]:
        return self._batches(self.config.test_split)

    def reference_data(self, fidelity: str) -> tuple[list[np.ndarray], np.ndarray]:
        """One pass over the training shards (the first call) collects every fidelity's
        (atomic numbers, energy in eV); later calls reuse it."""
        if self._references is None:
            numbers: dict[str, list[np.ndarray]] = {f: [] for f in self.fidelities}
            energies: dict[str, list[float]] = {f: [] for f in self.fidelities}
            for sample in iter_samples(self.manifest, self.config.train_split, self.config.on_error):
                for fid, energy in sample.energies.items():
                    numbers.setdefault(fid, []).append(sample.numbers)
                    energies.setdefault(fid, []).append(energy)
            self._references = {f: (numbers[f], np.asarray(energies[f], np.float64)) for f in numbers}
        if fidelity not in self._references:
            raise UserError(f"no fidelity {fidelity!r} in {self.manifest.location} "
                            f"(has {', '.join(self.fidelities)})")
        return self._references[fidelity]

    def summary(self) -> dict[str, Any]:
        counts = {split: self.manifest.counts(split)["n_samples"] for split in self.manifest.splits}
        return {"source": self.manifest.location, "manifest_hash": self.manifest.sha256,
                "fidelities": self.fidelities, "elements": self.elements,
                **{f"{split}_structures": n for split, n in counts.items()}}

    def _batches(self, split: str) -> Iterator[AtomsBatch]:
        if split not in self.manifest.splits:
            return iter(())
        return single_pass(self.manifest, split, self.config.max_atoms_per_batch, self.fidelities,
                           self.config.on_error, dtype=self.dtype)
