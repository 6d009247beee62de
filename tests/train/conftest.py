"""Tiny training runs for the trainer tests: a small ANI (widths 16-8, short AEV) on the shared
harmonic-label molecules (tests/conftest.py), a few dozen steps on CPU."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

from foundation.data.memory import FileDataConfig
from foundation.train.config import LoggerConfig, RunConfig, TrainerConfig

FIDELITY = "wb97x_631gs"
TINY_MODEL = {"name": "ani", "elements": [1, 6, 7, 8], "radial_num_shifts": 8, "angular_num_shifts": 2,
              "angular_num_sections": 4, "hidden": {s: [16, 8] for s in "HCNO"}}
TINY_TRAINER = dict(max_steps=12, lr=1e-2, warmup_steps=2, val_every=6, ckpt_every=6, log_every=3,
                    ema_decay=0.9, device="cpu", seed=0)


@pytest.fixture
def xyz_path(molecules_xyz):
    path, _ = molecules_xyz(n_molecules=8, n_conformers=4)
    return path


@pytest.fixture
def tiny_run(tmp_path, xyz_path):
    """`tiny_run(name="run", data=..., **trainer_overrides) -> RunConfig` writing under tmp_path/runs."""

    def make(name: str = "run", data=None, resume: bool = False, **trainer) -> RunConfig:
        data = data or FileDataConfig(path=str(xyz_path), energy_key="REF_energy", forces_key="REF_forces",
                                      fidelity=FIDELITY, max_atoms_per_batch=48, split="conformer")
        return RunConfig(model=dict(TINY_MODEL), data=data,
                         trainer=TrainerConfig(**{**TINY_TRAINER, **trainer}),
                         logger=LoggerConfig(progress_bar=False), name=name,
                         out_dir=str(tmp_path / "runs"), resume=resume)

    return make



@dataclasses.dataclass
class HookedData:
    """The real file data, calling `hook(n, batch)` on the n-th training batch drawn (1-based)
    before the trainer sees it: how the tests make a label go bad or a signal arrive mid-run."""

    inner: FileDataConfig
    hook: Callable[[int, Any], None]

    def build(self):
        data = self.inner.build()
        make_stream, hook = data.train_stream, self.hook
        data.train_stream = lambda seed, rank=0, world_size=1: _HookedStream(
            make_stream(seed, rank, world_size), hook)
        return data


class _HookedStream:
    def __init__(self, stream, hook):
        self.stream, self.hook, self.drawn = stream, hook, 0

    def __iter__(self):
        return self

    def __next__(self):
        batch = next(self.stream)
        self.drawn += 1
        self.hook(self.drawn, batch)
        return batch

    def state_dict(self):
        return self.stream.state_dict()

    def load_state_dict(self, state):
        self.stream.load_state_dict(state)
