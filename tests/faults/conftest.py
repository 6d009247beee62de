"""Tiny training runs for the fault tests (a small ANI on the shared harmonic-label molecules of
tests/conftest.py), through the Python API or as `foundation train` overrides for a subprocess."""

from __future__ import annotations

import csv
from pathlib import Path

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


def file_data(path, **kw) -> FileDataConfig:
    return FileDataConfig(**{"path": str(path), "energy_key": "REF_energy", "forces_key": "REF_forces",
                             "fidelity": FIDELITY, "max_atoms_per_batch": 48, "split": "conformer", **kw})


@pytest.fixture
def tiny_run(tmp_path, xyz_path):
    """`tiny_run(name="run", data=None, resume=False, **trainer) -> RunConfig` under tmp_path/runs."""

    def make(name: str = "run", data=None, resume: bool = False, **trainer) -> RunConfig:
        return RunConfig(model=dict(TINY_MODEL), data=data or file_data(xyz_path),
                         trainer=TrainerConfig(**{**TINY_TRAINER, **trainer}),
                         logger=LoggerConfig(progress_bar=False), name=name,
                         out_dir=str(tmp_path / "runs"), resume=resume)

    return make


def cli_overrides(xyz_path: Path) -> list[str]:
    """`foundation train` overrides for the same tiny run (the smoke experiment is that model)."""
    return ["experiment=smoke", f"data.path={xyz_path}", "data.energy_key=REF_energy",
            "data.forces_key=REF_forces", f"data.fidelity={FIDELITY}", "data.split=conformer",
            "data.max_atoms_per_batch=48"]


def metric_rows(run_dir: Path) -> list[dict]:
    with open(Path(run_dir) / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))
