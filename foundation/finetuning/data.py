"""The data of a fine-tune: the user's structures read and checked (keys, units, elements, count),
then split into training and validation by `UserDataConfig`, the `data` config of
`recipe=finetune_user`."""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Sequence
from typing import NamedTuple

from foundation.errors import DataError, UserError
from foundation.finetuning.molecules import AUTO, choose_key, describe, name_by_bonds

log = logging.getLogger(__name__)
MIN_STRUCTURES = 5  # fewer cannot be split into a training set and a held-out one worth scoring


@dataclasses.dataclass
class UserDataConfig:
    """The data of a fine-tune: structures already read (set `samples` after construction; they
    are not a config field, so `config.yaml` stays small), split into training and validation.
    `split="auto"` splits by conformer when there are fewer than `AUTO_MIN_MOLECULES` molecules.
    `group_key` says which structures are one molecule (`foundation.finetuning.molecules`):
    auto (an info key naming molecules if the file has one, else formula and bonds) | bonds | KEY."""

    fidelity: str = "user"
    val_fraction: float = 0.2
    split: str = "auto"  # auto | molecule | conformer
    seed: int = 0
    max_atoms_per_batch: int = 256
    dtype: str = "float32"
    on_error: str = "raise"  # raise | skip: a structure that cannot be used stops, or is left out and counted
    group_key: str = AUTO  # auto | bonds | an info key naming each structure's molecule

    def __post_init__(self):
        from foundation.data.sources.in_memory import SPLITS
        from foundation.models.base import check_head_name
        from foundation.train.config import check_types

        check_types(self, "data")
        check_head_name(self.fidelity)
        if not 0.0 < self.val_fraction < 1.0:
            raise UserError(f"data.val_fraction={self.val_fraction}: must be in (0, 1); fine-tuning "
                            "needs held-out structures to score and to stop on")
        if self.split not in SPLITS:
            raise UserError(f"data.split={self.split!r}: must be one of {', '.join(SPLITS)}")
        if self.max_atoms_per_batch <= 0:
            raise UserError(f"data.max_atoms_per_batch={self.max_atoms_per_batch}: must be > 0")
        if self.dtype not in ("float32", "float64"):
            raise UserError(f"data.dtype={self.dtype!r}: must be float32 or float64")
        if self.on_error not in ("raise", "skip"):
            raise UserError(f"data.on_error={self.on_error!r}: must be raise or skip")
        if not self.group_key:
            raise UserError("data.group_key='': give auto, bonds or the info key that names molecules")
        self.samples = None  # set by `finetune`
        self.skipped: list[str] = []  # why each structure left out (on_error=skip) was, set by `finetune`

    def build(self):
        import torch

        from foundation.data.sources.in_memory import AUTO_MIN_MOLECULES, InMemoryData
        from foundation.data.split import split_by_conformer, split_by_molecule

        if not self.samples:
            raise UserError("data: no structures given (UserDataConfig is filled by foundation.finetune())")
        # Named once here, so the split and what is reported about it count the same molecules.
        samples = list(self.samples)
        unnamed = [k for k, s in enumerate(samples) if not s.molecule]
        for k, named in zip(unnamed, name_by_bonds([samples[k] for k in unnamed])):
            samples[k] = named
        how = self.split
        if how == "auto":
            how = "molecule" if len({s.molecule for s in samples}) >= AUTO_MIN_MOLECULES else "conformer"
        splitter = split_by_molecule if how == "molecule" else split_by_conformer
        parts = splitter(samples, {"train": 1.0 - self.val_fraction, "val": self.val_fraction}, self.seed)
        dtype = {"float32": torch.float32, "float64": torch.float64}[self.dtype]
        return InMemoryData(parts["train"], parts["val"], (), self.max_atoms_per_batch, dtype, split_by=how,
                            skipped=len(self.skipped))


class UserData(NamedTuple):
    samples: list
    where: str  # a name for messages: the path, or "the N structures given"
    molecules: str  # how the structures were grouped into molecules, for the split line


def read_user_data(data, energy_key: str, forces_key: str | None, fidelity: str, index: str = ":",
                   on_error: str = "raise", skipped: list[str] | None = None,
                   group_key: str = AUTO, energy_unit: str | None = None,
                   length_unit: str = "angstrom") -> UserData:
    """The structures of a file path or a sequence of `ase.Atoms` (or of `Sample`s, taken as they
    are: `given_samples`), labelled and named by molecule
    (`group_key`, see `foundation.finetuning.molecules`). Energies are in `energy_unit` (default
    eV), positions in `length_unit`, forces in their ratio, converted to eV, Å, eV/Å; without
    `energy_unit`, energies that look like hartree or kcal/mol are refused (`DataError` naming
    the key). With `on_error="skip"` a structure that cannot be used is left out and its reason
    appended to `skipped`."""
    from foundation.data.ase_io import atoms_to_sample, check_energy_unit, read_atoms

    if _are_samples(data):
        return given_samples(list(data), fidelity)
    if isinstance(data, (str, os.PathLike)):
        images = [(f"{data}:{i}", atoms) for i, atoms in read_atoms(data, index)]
    else:
        given = list(data) if isinstance(data, Sequence) else None
        if not given or not all(hasattr(a, "get_atomic_numbers") for a in given):
            raise UserError("data: expected a file path or a non-empty list of ase.Atoms")
        images = [(f"atoms[{i}]", atoms) for i, atoms in enumerate(given)]
    key = choose_key(images, group_key)
    samples, problems = [], []
    for source, atoms in images:
        try:
            samples.append(atoms_to_sample(atoms, energy_key, forces_key, fidelity, source, key,
                                           energy_unit, length_unit))
        except DataError as e:
            if on_error != "skip":
                raise
            problems.append(str(e))
            log.warning("skipping structure (%d so far): %s", len(problems), e)
    if skipped is not None:
        skipped.extend(problems)
    if not samples:
        what = f"{data}: none of its structures" if isinstance(data, (str, os.PathLike)) else \
            f"none of the {len(images)} structures given"
        raise DataError(f"{what} can be used (the first: {problems[0]})")
    if key is None:
        samples = name_by_bonds(samples)
    where = str(data) if isinstance(data, (str, os.PathLike)) else f"the {len(samples)} structures given"
    check_energy_unit(samples, fidelity, where=where, key=energy_key, declared=energy_unit)
    return UserData(samples, where, describe(key, group_key))


def _are_samples(data) -> bool:
    from foundation.data.sample import Sample

    return isinstance(data, Sequence) and not isinstance(data, str) and bool(data) \
        and all(isinstance(s, Sample) for s in data)


def given_samples(samples: list, fidelity: str) -> UserData:
    """`Sample`s given by a program (`foundation.recipes.adapt`): in eV and Å already, each checked,
    named by their `molecule` (by formula and bonds where it is empty). They may carry labels of
    other fidelities too, which train heads of those names beside `fidelity` (extra heads, copied
    from `trainer.new_head_from`); `fidelity` chooses the weights and is the model's default head."""
    for s in samples:
        s.validate()
    if not any(fidelity in s.energies for s in samples):
        raise DataError(f"none of the {len(samples)} samples given has a {fidelity!r} energy")
    unnamed = [k for k, s in enumerate(samples) if not s.molecule]
    for k, named in zip(unnamed, name_by_bonds([samples[k] for k in unnamed])):
        samples[k] = named
    fidelities = sorted({f for s in samples for f in s.energies})
    return UserData(samples, f"the {len(samples)} samples given ({', '.join(fidelities)})",
                    "named by the samples' molecule" + (" or by formula and bonds" if unnamed else ""))


def check_elements(model, samples, model_name: str) -> None:
    """`UserError` naming the first structure with an element the model has no network for."""
    from foundation.data.elements import symbol

    known = {int(z) for z in model.elements}
    for s in samples:
        unknown = sorted({int(z) for z in s.numbers} - known)
        if unknown:
            raise UserError(f"{s.source}: element {symbol(unknown[0])} is unknown to the pretrained model "
                            f"{model_name} (it knows {', '.join(symbol(z) for z in sorted(known))}); "
                            "remove such structures or start from a model that covers it")


def check_count(samples, where: str) -> None:
    if len(samples) < MIN_STRUCTURES:
        raise DataError(f"{where}: {len(samples)} structure(s) are too few to split into training and "
                        f"validation; fine-tuning needs at least {MIN_STRUCTURES}")
