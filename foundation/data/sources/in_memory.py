"""Users' files held in memory: the `DataModule` for fine-tuning on a few hundred to a few hundred
thousand structures (beyond that, convert to shards and stream).

`FileDataConfig` (Hydra group `data=extxyz`) names one file or several `sources`, each with its own
label keys and fidelity, so DFT and CC files can be combined: structures with the same atoms at
the same positions in several files become one sample carrying every fidelity.
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from foundation.data import stream_position
from foundation.data.ase_io import ON_ERROR, read_samples
from foundation.data.batch import AtomsBatch, collate
from foundation.data.batching import batches_by_atoms, group_by_atoms
from foundation.data.sample import Sample
from foundation.data.split import split_by_conformer, split_by_molecule
from foundation.dtypes import DTYPES
from foundation.errors import DataError, UserError

log = logging.getLogger(__name__)

SPLITS = ("molecule", "conformer", "auto")
AUTO_MIN_MOLECULES = 10  # split="auto": fewer distinct molecules than this → split by conformer


@dataclasses.dataclass
class FileSource:
    """One labelled file: which keys hold the labels and which fidelity they are."""

    path: str
    energy_key: str = "energy"
    forces_key: str | None = None
    fidelity: str = "dft"
    index: str = ":"  # ASE index syntax, e.g. ":1000"
    group_key: str | None = None  # info key naming each structure's molecule, if the file has one
    energy_unit: str | None = None  # eV | hartree | kcal/mol | kJ/mol; None: eV, refused if they look otherwise
    length_unit: str = "angstrom"  # angstrom | bohr (forces: energy unit / length unit)

    def read(self, on_error: str = "raise", skipped: list[str] | None = None) -> list[Sample]:
        return read_samples(self.path, self.energy_key, self.forces_key, self.fidelity, self.index,
                            self.group_key, on_error, skipped, self.energy_unit, self.length_unit)


@dataclasses.dataclass
class FileDataConfig:
    """`path` (with `energy_key`, `forces_key`, `fidelity`) for one file, and/or `sources`, a list
    of {path, energy_key, forces_key, fidelity, index, group_key, energy_unit, length_unit}. Split by
    molecule by default. `energy_unit`/`length_unit`: the file's units, converted on read.
    `on_error`: a structure that cannot be trained on (missing key, NaN label, atoms closer than
    0.5 Å) stops the run (raise), or is left out, logged and counted (skip)."""

    path: str | None = None
    energy_key: str = "energy"
    forces_key: str | None = None
    fidelity: str = "dft"
    index: str = ":"
    group_key: str | None = None
    energy_unit: str | None = None
    length_unit: str = "angstrom"
    sources: list[Any] = dataclasses.field(default_factory=list)
    val_fraction: float = 0.1
    test_fraction: float = 0.0
    split: str = "molecule"  # molecule | conformer | auto
    seed: int = 0  # of the split; the training order is seeded by the trainer
    max_atoms_per_batch: int = 512
    dtype: str = "float32"  # of positions and forces in batches; energies are always float64
    on_error: str = "raise"  # raise | skip

    def __post_init__(self):
        self.sources = [_source(s, i) for i, s in enumerate(self.sources)]
        if self.path is not None:
            self.sources.insert(0, FileSource(str(self.path), self.energy_key, self.forces_key,
                                              self.fidelity, self.index, self.group_key, self.energy_unit,
                                              self.length_unit))
        if not self.sources:
            raise UserError("data.path is required (or data.sources, a list of files)")
        for name in ("val_fraction", "test_fraction"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise UserError(f"data.{name}={getattr(self, name)}: must be in [0, 1)")
        if self.val_fraction + self.test_fraction >= 1.0:
            raise UserError(f"data.val_fraction + data.test_fraction = "
                            f"{self.val_fraction + self.test_fraction}: leaves nothing to train on")
        if self.split not in SPLITS:
            raise UserError(f"data.split={self.split!r}: must be one of {', '.join(SPLITS)}")
        if self.max_atoms_per_batch <= 0:
            raise UserError(f"data.max_atoms_per_batch={self.max_atoms_per_batch}: must be > 0")
        if self.dtype not in DTYPES:
            raise UserError(f"data.dtype={self.dtype!r}: must be one of {', '.join(DTYPES)}")
        if self.on_error not in ON_ERROR:
            raise UserError(f"data.on_error={self.on_error!r}: must be one of {', '.join(ON_ERROR)}")

    def build(self) -> "InMemoryData":
        skipped: list[str] = []
        samples = merge_fidelities([s for source in self.sources for s in source.read(self.on_error, skipped)])
        fractions = {"train": 1.0 - self.val_fraction - self.test_fraction,
                     "val": self.val_fraction, "test": self.test_fraction}
        how = self.split
        if how == "auto":
            n_molecules = len({s.molecule for s in samples})
            how = "molecule" if n_molecules >= AUTO_MIN_MOLECULES else "conformer"
            log.info("%d distinct molecules: splitting by %s", n_molecules, how)
        splitter = split_by_molecule if how == "molecule" else split_by_conformer
        splits = splitter(samples, fractions, self.seed)
        return InMemoryData(splits["train"], splits["val"], splits["test"], self.max_atoms_per_batch,
                            dtype=DTYPES[self.dtype], split_by=how, skipped=len(skipped))


def _source(item: Any, i: int) -> FileSource:
    if isinstance(item, FileSource):
        return item
    if not isinstance(item, Mapping) or "path" not in item:
        raise UserError(f"data.sources[{i}]: expected a mapping with at least 'path', got {item!r}")
    fields = {f.name for f in dataclasses.fields(FileSource)}
    unknown = set(item) - fields
    if unknown:
        raise UserError(f"data.sources[{i}]: unknown key(s) {sorted(unknown)}; allowed: {sorted(fields)}")
    return FileSource(**{k: (str(v) if k == "path" else v) for k, v in item.items()})


def merge_fidelities(samples: Sequence[Sample]) -> list[Sample]:
    """Join samples of the same structure (same atoms, positions equal to 1e-5 Å) labelled at
    different fidelities into one sample; the first one's molecule and source are kept."""
    merged: list[Sample] = []
    by_geometry: dict[tuple[bytes, bytes], int] = {}
    for s in samples:
        key = (s.numbers.tobytes(), (np.round(s.positions, 5) + 0.0).tobytes())  # + 0.0: no -0.0
        j = by_geometry.get(key)
        if j is not None and not (merged[j].fidelities & s.fidelities):
            target = merged[j]
            merged[j] = dataclasses.replace(target, energies={**target.energies, **s.energies},
                                            forces={**target.forces, **s.forces})
        else:
            by_geometry.setdefault(key, len(merged))
            merged.append(s)
    return merged


class InMemoryData:
    """The `DataModule` over samples in memory (see `foundation.data.sources.protocol`)."""

    def __init__(self, train: Sequence[Sample], val: Sequence[Sample], test: Sequence[Sample] = (),
                 max_atoms_per_batch: int = 512, dtype: torch.dtype = torch.float32,
                 split_by: str = "molecule", skipped: int = 0):
        if not train:
            raise DataError("the training split is empty")
        self.skipped = skipped  # structures left out when reading (on_error=skip)
        self.train, self.val, self.test = list(train), list(val), list(test)
        self.max_atoms_per_batch = max_atoms_per_batch
        self.dtype = dtype
        self.split_by = split_by
        every = self.train + self.val + self.test
        self.fidelities = sorted(set().union(*(s.fidelities for s in every)))
        self.elements = sorted({int(z) for s in self.train for z in s.numbers})

    def train_stream(self, seed: int, rank: int = 0, world_size: int = 1) -> "InMemoryStream":
        return InMemoryStream(self.train, self.max_atoms_per_batch, self.fidelities, seed, rank,
                              world_size, self.dtype)

    def val_batches(self) -> Iterator[AtomsBatch]:
        return batches_by_atoms(self.val, self.max_atoms_per_batch, self.fidelities, self.dtype)

    def test_batches(self) -> Iterator[AtomsBatch]:
        return batches_by_atoms(self.test, self.max_atoms_per_batch, self.fidelities, self.dtype)

    def reference_data(self, fidelity: str) -> tuple[list[np.ndarray], np.ndarray]:
        labelled = [s for s in self.train if fidelity in s.energies]
        return [s.numbers for s in labelled], np.array([s.energies[fidelity] for s in labelled], np.float64)

    def summary(self) -> dict[str, Any]:
        """Structure and molecule counts per split, for logs and run records."""
        parts = {"train": self.train, "val": self.val, "test": self.test}
        return {"split_by": self.split_by, "fidelities": self.fidelities, "elements": self.elements,
                **{f"{name}_structures": len(p) for name, p in parts.items()},
                **({"skipped_structures": self.skipped} if self.skipped else {}),
                **{f"{name}_molecules": len({s.molecule for s in p}) for name, p in parts.items()}}


class InMemoryStream:
    """Endless batches of this rank's share of the training split. Each epoch every rank draws
    the same permutation (from `seed` and the epoch) and takes every `world_size`-th structure
    from position `rank`, so ranks are disjoint; batches are then filled up to the atom budget.
    The position is (epoch, batches consumed), which is all resume needs to be exact; resumed on
    another number of ranks, the structures no rank had taken in the epochs under way are dealt
    out (a plan per epoch, `stream_position.py`), none repeated or skipped."""

    def __init__(self, samples: Sequence[Sample], max_atoms: int, fidelities: Sequence[str], seed: int,
                 rank: int = 0, world_size: int = 1, dtype: torch.dtype = torch.float32):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world of size {world_size}")
        if len(samples) < world_size:
            raise DataError(f"{len(samples)} training structures cannot be shared by {world_size} ranks")
        self.samples, self.max_atoms, self.fidelities = list(samples), max_atoms, list(fidelities)
        self.seed, self.rank, self.world_size, self.dtype = seed, rank, world_size, dtype
        self.epoch, self.batches = 0, 0
        self.plans: dict[str, dict] = {}  # str(epoch) -> permutation positions consumed before a re-split
        self.resplit: str | None = None
        self._groups: list[list[Sample]] | None = None  # of self.epoch

    def __iter__(self) -> "InMemoryStream":
        return self

    def __next__(self) -> AtomsBatch:
        groups = self._epoch_groups()
        while self.batches >= len(groups):  # a planned epoch may leave this rank nothing
            self.epoch, self.batches, self._groups = self.epoch + 1, 0, None
            groups = self._epoch_groups()
        group = groups[self.batches]
        self.batches += 1
        return collate(group, self.fidelities, dtype=self.dtype)

    def _epoch_groups(self) -> list[list[Sample]]:
        if self._groups is None:
            order = self._order(self.epoch)
            self._groups = [[self.samples[order[p]] for p in group]
                            for group in self._share(self.epoch, self.rank, self.world_size)]
        return self._groups

    def _order(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(len(self.samples))

    def _share(self, epoch: int, rank: int, world_size: int) -> list[list[int]]:
        """`rank`'s batches of `epoch` as permutation positions: every `world_size`-th of those
        not consumed before a re-split (all of them, in an epoch without a plan)."""
        order, left = self._order(epoch), range(len(self.samples))
        plan = self.plans.get(str(epoch))
        if plan is not None:
            left = list(stream_position.left(plan, left))
        mine = left[rank::world_size]
        groups = group_by_atoms((_Positioned(self.samples[order[p]], p) for p in mine), self.max_atoms)
        return [[s.position for s in group] for group in groups]

    def state_dict(self) -> dict:
        """This rank's position, and (a collective under torch.distributed) every rank's, so that a
        resume on another number of ranks can re-split it."""
        ranks = [(self.rank, [self.epoch, self.batches])]
        if self.world_size > 1 and dist.is_available() and dist.is_initialized():
            ranks = [None] * dist.get_world_size()
            dist.all_gather_object(ranks, (self.rank, [self.epoch, self.batches]))
        return {"epoch": self.epoch, "batches": self.batches, "seed": self.seed, "world_size": self.world_size,
                "n_samples": len(self.samples), "plans": self.plans, "ranks": {str(r): p for r, p in sorted(ranks)}}

    def load_state_dict(self, state: dict) -> None:
        same_data = state.get("n_samples", len(self.samples)) == len(self.samples)
        if not same_data or state.get("seed", self.seed) != self.seed:
            warnings.warn("training data or seed differ from the checkpoint's: the data order after "
                          "resuming is not the one the interrupted run would have seen", stacklevel=2)
        old_world = int(state.get("world_size", self.world_size))
        self.plans, self._groups = dict(state.get("plans", {})), None
        if old_world == self.world_size:
            self.epoch, self.batches = int(state["epoch"]), int(state["batches"])
            saved = state.get("ranks", {}).get(str(self.rank))
            if saved is not None:
                self.epoch, self.batches = int(saved[0]), int(saved[1])
        elif len(state.get("ranks", {})) == old_world and same_data:
            self._resplit(state, old_world)
        else:  # a checkpoint of an older version holds one rank's position: keep the fraction
            warnings.warn(f"resuming with {self.world_size} ranks instead of {old_world}: the epoch "
                          "position is scaled, not exact", stacklevel=2)
            self.epoch, self.batches = int(state["epoch"]), int(state["batches"]) * old_world // self.world_size

    def _resplit(self, state: dict, old_world: int) -> None:
        """Plans for the epochs some old rank had begun and not every one had finished."""
        at = [tuple(int(x) for x in state["ranks"][str(r)]) for r in range(old_world)]
        first, last = min(e for e, _ in at), max(e for e, _ in at)
        plans = {}
        for epoch in range(first, last + 1):
            taken = set()
            for r, (e, b) in enumerate(at):
                if e >= epoch:
                    share = self._share(epoch, r, old_world)
                    taken.update(p for group in (share if e > epoch else share[:b]) for p in group)
            base = self.plans.get(str(epoch), stream_position.NONE)
            plans[str(epoch)] = stream_position.consumed(base["prefix"], [*base["extra"], *taken])
        self.plans, self.epoch, self.batches = plans, first, 0
        span = f"epoch {first}" if first == last else f"epochs {first}-{last}"
        self.resplit = stream_position.describe(f"{old_world} rank(s)", f"{self.world_size}", [span])


@dataclasses.dataclass(frozen=True)
class _Positioned:
    """A sample and its position in the epoch's permutation (what group_by_atoms groups)."""

    sample: Sample
    position: int

    @property
    def n_atoms(self) -> int:
        return self.sample.n_atoms
