"""Shared fixtures: small, self-consistent labelled molecules (H, C, N, O) in memory or as extxyz.

Geometries are ASE's G2 molecules, rotated, shifted and rattled (0.02 Å, clipped at 0.05 Å per
coordinate) into conformers that keep their bonds under the 1.2 × covalent-radii rule. Labels follow a harmonic well around the G2 geometry, so energies and forces agree
(F = -dE/dr) and a model can learn them: E = Σ free-atom energy − 2 eV per atom + ½k|r − r₀|²,
k = 20 eV/Å². Energies are total energies of realistic size (≈ −1030 eV per carbon).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

# One thread per process whoever calls pytest, as the Makefile exports: a test that compares an
# in-process run with torchrun ranks (one thread each) must not depend on the caller's
# environment, and children started by tests inherit the setting. Set before torch is imported.
os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from foundation.data.sample import Sample  # noqa: E402
from foundation.units import HARTREE_TO_EV  # noqa: E402

torch.set_num_threads(1)  # torch may have been imported before this file (a plugin, an xdist worker)


@pytest.fixture(autouse=True)
def _one_process_unless_integration(request, monkeypatch):
    """The fast tier starts no second process: independent trainings (ensemble members) run one
    after another there unless a test sets FOUNDATION_JOBS itself; integration tests keep the
    default (side by side, one process per core)."""
    if request.node.get_closest_marker("integration") is None and "FOUNDATION_JOBS" not in os.environ:
        monkeypatch.setenv("FOUNDATION_JOBS", "1")

MOLECULES = ["CH4", "NH3", "H2O", "C2H6", "CH3OH", "CH3CH2OH", "CH3OCH3", "HCOOH", "CH3CHO",
             "HCN", "C2H4", "H3CNH2", "H2CO", "CH3CONH2", "HCOOCH3", "CH3COOH"]
_FREE_ATOM_HARTREE = {1: -0.500, 6: -37.845, 7: -54.589, 8: -75.067}
_K = 20.0  # eV/Å², force constant of the harmonic labels


def make_molecule_samples(n_molecules: int = 6, n_conformers: int = 5, seed: int = 0,
                          fidelity: str = "dft", forces: bool = True, rattle: float = 0.02,
                          molecules: list[str] | None = None) -> list[Sample]:
    """`n_molecules` × `n_conformers` samples (molecules in `MOLECULES` order, cycling), with
    energies in eV and, when `forces`, forces in eV/Å under `fidelity`."""
    from ase.build import molecule

    rng = np.random.default_rng(seed)
    names = molecules or [MOLECULES[i % len(MOLECULES)] for i in range(n_molecules)]
    samples = []
    for name in names:
        ref = molecule(name)
        e0 = sum(_FREE_ATOM_HARTREE[int(z)] * HARTREE_TO_EV - 2.0 for z in ref.numbers)
        for c in range(n_conformers):
            # Clipped: no bond may stretch past the bonding rule (`molecule_key` must not change).
            dr = np.clip(rng.normal(0.0, rattle, size=ref.positions.shape), -2.5 * rattle, 2.5 * rattle)
            rotation = _random_rotation(rng)
            positions = (ref.positions + dr) @ rotation.T + rng.uniform(-5, 5, size=3)
            energy = e0 + 0.5 * _K * float((dr**2).sum())
            labels = {fidelity: -_K * dr @ rotation.T} if forces else {}
            samples.append(Sample(numbers=ref.numbers.copy(), positions=positions, energies={fidelity: energy},
                                  forces=labels, source=f"{name}:{c}"))
    return samples


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def write_molecules_xyz(path: Path, n_molecules: int = 6, n_conformers: int = 5, seed: int = 0,
                        energy_key: str = "REF_energy", forces_key: str | None = "REF_forces",
                        unit: str = "eV", **kwargs) -> list[Sample]:
    """Write `make_molecule_samples(...)` to an extxyz file under the given keys (`unit="hartree"`
    divides energies by 27.2, as a user's unconverted file would); return the samples (in eV)."""
    from foundation.data.ase_io import write_extxyz

    samples = make_molecule_samples(n_molecules, n_conformers, seed, forces=forces_key is not None, **kwargs)
    scale = {"eV": 1.0, "hartree": 1.0 / HARTREE_TO_EV}[unit]
    written = [Sample(s.numbers, s.positions, {k: v * scale for k, v in s.energies.items()},
                      s.forces, molecule=s.molecule, source=s.source) for s in samples]
    write_extxyz(path, written, energy_key=energy_key, forces_key=forces_key or "forces")
    return samples


def pytest_collection_modifyitems(items):
    """Under xdist (`make test-all`: `--dist loadgroup`) the integration tests share one worker:
    two torchruns side by side would compete for the cores and run into their timeouts."""
    for item in items:
        if item.get_closest_marker("integration") or item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.xdist_group("integration"))


@pytest.fixture
def make_samples():
    """The factory `make_molecule_samples(n_molecules, n_conformers, seed, fidelity, forces, …)`."""
    return make_molecule_samples


@pytest.fixture
def molecules_xyz(tmp_path):
    """A factory writing an extxyz file in `tmp_path`: `molecules_xyz(name="molecules.xyz", **kw)`
    returns (path, samples); keyword arguments as for `write_molecules_xyz`."""

    def write(name: str = "molecules.xyz", **kwargs) -> tuple[Path, list[Sample]]:
        path = tmp_path / name
        return path, write_molecules_xyz(path, **kwargs)

    return write


# Tiny training runs (trainer and fault tests): a small ANI (widths 16-8, short AEV) on the
# molecules above, a dozen steps on CPU, through the Python API or as `foundation train` overrides.
FIDELITY = "wb97x_631gs"
TINY_MODEL = {"name": "ani", "elements": [1, 6, 7, 8], "radial_num_shifts": 8, "angular_num_shifts": 2,
              "angular_num_sections": 4, "hidden": {s: [16, 8] for s in "HCNO"}}
TINY_TRAINER = dict(max_steps=12, lr=1e-2, warmup_steps=2, val_every=6, ckpt_every=6, log_every=3,
                    ema_decay=0.9, device="cpu", seed=0)


@pytest.fixture
def xyz_path(molecules_xyz):
    path, _ = molecules_xyz(n_molecules=8, n_conformers=4)
    return path


def file_data(path, **kw):
    """The tiny runs' data: `path` (an extxyz file) with the harmonic labels as FIDELITY."""
    from foundation.data.sources.in_memory import FileDataConfig

    return FileDataConfig(**{"path": str(path), "energy_key": "REF_energy", "forces_key": "REF_forces",
                             "fidelity": FIDELITY, "max_atoms_per_batch": 48, "split": "conformer", **kw})


@pytest.fixture
def tiny_run(tmp_path, xyz_path):
    """`tiny_run(name="run", data=None, resume=False, **trainer) -> RunConfig` under tmp_path/runs."""
    from foundation.train.config import LoggerConfig, RunConfig, TrainerConfig

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
