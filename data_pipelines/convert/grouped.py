"""What the readers of the large published datasets share: split by the source's molecule (a group
of conformers), stream group by group, mix many molecules into every shard, write shards.

A reader gives `sizes` ({group: conformer count}, read from the file's index or dataset shapes,
never the data) and `read_group(name) -> [Sample]` (one group's conformers, in eV, Å and eV/Å, with
`molecule` = the group). Groups are assigned to splits whole (`ani_h5.assign_groups`: by conformer
count, seeded), unless the source comes split (`assignment` given). Then groups are visited in a
seeded random order, up to `interleave` of them held at once, samples drawn at random among them:
memory is bounded by `interleave` groups, and every shard mixes molecules.

`hashed_split` serves sources too large to index first (OMol25): a molecule's split is a seeded
hash of its key, so it is the same wherever its structures occur in the stream.
"""

from __future__ import annotations

import hashlib
import os
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

from foundation.data import Sample
from foundation.errors import UserError
from foundation.pipelines.convert.ani_h5 import assign_groups
from foundation.pipelines.convert.common import SplitWriters, check_fractions, check_out_dir


def convert_groups(sizes: Mapping[str, int], read_group: Callable[[str], list[Sample]], out_dir: str | os.PathLike,
                   levels: Mapping[str, Mapping], source: Mapping, fractions: Mapping[str, float] | None = None,
                   seed: int = 0, max_shard_bytes: int | None = None, command: Sequence[str] | str | None = None,
                   interleave: int = 64, progress: Callable[[int], None] | None = None,
                   assignment: Mapping[str, str] | None = None) -> Path:
    """Write the groups' samples to shards in `out_dir`, split by group; returns the manifest's path."""
    check_out_dir(out_dir)
    if assignment is None:
        assignment = assign_groups(sizes, check_fractions(fractions), seed)
    splits = sorted(set(assignment.values()), key=lambda s: (s != "train", s))
    with SplitWriters(out_dir, splits, max_shard_bytes) as writers:
        for sample in interleaved(list(sizes), read_group, seed, interleave):
            writers.write(assignment[sample.molecule], sample)
            if progress is not None:
                progress(1)
        return writers.finish(levels, command, {"source": dict(source), "seed": seed})


def interleaved(groups: Sequence[str], read_group: Callable[[str], list[Sample]], seed: int,
                interleave: int) -> Iterator[Sample]:
    """Samples of `groups`, drawn at random from up to `interleave` groups held at once."""
    order = sorted(groups)
    rng = random.Random(seed)
    rng.shuffle(order)
    pending = iter(order)
    active: list[list[Sample]] = []
    while True:
        while len(active) < interleave and (name := next(pending, None)) is not None:
            samples = read_group(name)
            rng.shuffle(samples)
            if samples:
                active.append(samples)
        if not active:
            return
        k = rng.choices(range(len(active)), weights=[len(a) for a in active])[0]
        yield active[k].pop()
        if not active[k]:
            active.pop(k)


def hashed_split(key: str, fractions: Mapping[str, float], seed: int) -> str:
    """The split of molecule `key`: a seeded hash mapped onto the cumulative `fractions`."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    u = int.from_bytes(digest[:8], "little") / 2**64
    total = 0.0
    for name in sorted(fractions, key=lambda s: (s != "train", s)):
        total += fractions[name]
        if u < total:
            return name
    return "train"


def shuffled(samples: Iterator[Sample], buffer: int, seed: int) -> Iterator[Sample]:
    """A bounded shuffle of a stream: a buffer of `buffer` samples, each out one drawn at random."""
    rng = random.Random(seed)
    held: list[Sample] = []
    for sample in samples:
        held.append(sample)
        if len(held) >= buffer:
            k = rng.randrange(len(held))
            held[k], held[-1] = held[-1], held[k]
            yield held.pop()
    rng.shuffle(held)
    yield from held


def fixed_units(fmt: str, energy_unit: str | None, length_unit: str | None) -> None:
    """The published formats fix their units (each reader converts them): a declared unit would
    contradict the format's description, so it is refused rather than applied twice."""
    if energy_unit is not None or length_unit not in (None, "angstrom"):
        raise UserError(f"--format {fmt} has the units its publishers documented, converted on read; "
                        "--energy-unit and --length-unit are for --format ase")
