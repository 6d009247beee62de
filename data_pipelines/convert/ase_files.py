"""Anything ASE reads (extxyz, ASE databases, …) → shards, with the user's label keys.

Reading is `foundation.data.ase_io.read_samples` (labels in eV and eV/Å, as given; `molecule` is
formula + connectivity) and the split is `foundation.data.split.split_by_molecule`, so a file
converted to shards and the same file loaded directly give the same splits. User files fit in
memory; each split is shuffled before writing so that shards mix molecules.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from foundation.data import read_samples, split_by_conformer, split_by_molecule
from foundation.errors import UserError
from foundation.pipelines.convert.common import SplitWriters, check_fractions, check_out_dir

SPLIT_BY = ("molecule", "conformer")


def convert_ase(path: str | os.PathLike, out_dir: str | os.PathLike, energy_key: str, fidelity: str,
                forces_key: str | None = None, fractions: Mapping[str, float] | None = None, seed: int = 0,
                max_shard_bytes: int | None = None, level: Mapping[str, str] | None = None,
                command: Sequence[str] | str | None = None,
                progress: Callable[[int], None] | None = None, split_by: str = "molecule",
                energy_unit: str | None = None, length_unit: str = "angstrom") -> Path:
    """Convert one structure file to shards in `out_dir`, split by molecule (or, with
    `split_by="conformer"`, by structure: for conformers of one or a few molecules). `level` is
    the fidelity's level of theory ({"method", "basis", "program"}); `energy_unit` and
    `length_unit` the file's units (converted; without `energy_unit`, energies that do not look
    like eV are refused). Returns the manifest's path."""
    if split_by not in SPLIT_BY:
        raise UserError(f"split_by={split_by!r}: use one of {', '.join(SPLIT_BY)}")
    fractions = check_fractions(fractions)
    check_out_dir(out_dir)
    samples = read_samples(path, energy_key=energy_key, forces_key=forces_key, fidelity=fidelity,
                           energy_unit=energy_unit, length_unit=length_unit)
    splitter = split_by_molecule if split_by == "molecule" else split_by_conformer
    splits = splitter(samples, fractions, seed)
    with SplitWriters(out_dir, [s for s in fractions if splits.get(s)], max_shard_bytes) as writers:
        for split, members in splits.items():
            members = list(members)
            random.Random(seed).shuffle(members)
            for sample in members:
                writers.write(split, sample)
                if progress is not None:
                    progress(1)
        source = {"format": "ase", "path": str(path), "energy_key": energy_key, "forces_key": forces_key,
                  "fidelity": fidelity, "seed": seed, "split_by": split_by,
                  "energy_unit": energy_unit or "eV", "length_unit": length_unit}
        return writers.finish({fidelity: dict(level or {})}, command, {"source": source})
