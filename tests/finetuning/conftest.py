"""A pretrained model to fine-tune and users' data to fine-tune it on.

The model is the shipped `ani-cc-mini` when the registry has its file, else a tiny ANI trained
here for a few seconds on the shared harmonic-label molecules (tests/conftest.py) at
`wb97x_631gs`. The data are HF/STO-3G labels computed with PySCF: a level neither model has
seen, in an extxyz file under the user's own key names."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from foundation.data.sources.in_memory import FileDataConfig
from foundation.units import BOHR_TO_ANGSTROM, HARTREE_TO_EV

SHIPPED = "ani-cc-mini"
TINY_MODEL = {"name": "ani", "elements": [1, 6, 7, 8], "radial_num_shifts": 8, "angular_num_shifts": 2,
              "angular_num_sections": 4, "hidden": {s: [16, 8] for s in "HCNO"}}
ENERGY_KEY, FORCES_KEY = "E_hf_sto3g", "F_hf_sto3g"  # a user's names, not ASE's


def shipped_model() -> str | None:
    from foundation.hub.registry import load_registry

    entry = load_registry().get(SHIPPED)
    return SHIPPED if entry is not None and entry.shipped else None


@pytest.fixture(scope="session")
def pretrained(tmp_path_factory) -> str:
    """A model name or path to fine-tune from."""
    shipped = shipped_model()
    if shipped is not None:
        return shipped
    from tests.conftest import write_molecules_xyz  # noqa: PLC0415 - the shared synthetic labels

    from foundation.train.config import LoggerConfig, RunConfig, TrainerConfig
    from foundation.train.trainer import Trainer

    root = tmp_path_factory.mktemp("pretrained")
    xyz = root / "dft.xyz"
    write_molecules_xyz(xyz, n_molecules=10, n_conformers=4, seed=1)
    data = FileDataConfig(path=str(xyz), energy_key="REF_energy", forces_key="REF_forces",
                          fidelity="wb97x_631gs", split="conformer", max_atoms_per_batch=64)
    trainer = TrainerConfig(max_steps=60, lr=5e-3, warmup_steps=5, val_every=60, ckpt_every=60,
                            ema_decay=0.9, device="cpu", forces_weight=0.1, val_at_start=False)
    config = RunConfig(model=dict(TINY_MODEL), data=data, trainer=trainer,
                       logger=LoggerConfig(progress_bar=False), name="pretrain", out_dir=str(root))
    return str(Trainer(config).train().model_path)


def hf_sto3g(numbers: np.ndarray, positions: np.ndarray) -> tuple[float, np.ndarray]:
    """RHF/STO-3G energy (eV) and forces (eV/Å) by PySCF."""
    from pyscf import gto, scf

    mol = gto.M(atom=[(int(z), tuple(p)) for z, p in zip(numbers, positions)], basis="sto-3g",
                unit="Angstrom", verbose=0)
    mf = scf.RHF(mol)
    energy = mf.kernel()
    assert mf.converged
    gradient = mf.nuc_grad_method().kernel()  # Hartree/Bohr
    return energy * HARTREE_TO_EV, -gradient * HARTREE_TO_EV / BOHR_TO_ANGSTROM


def hf_conformers(names=("H2O", "CH3OH", "NH3"), n_conformers: int = 12, seed: int = 0,
                  rattle: float = 0.06) -> list:
    """`ase.Atoms` conformers (G2 geometries, rattled and rotated) labelled at HF/STO-3G under
    `ENERGY_KEY` (eV, in `info`) and `FORCES_KEY` (eV/Å, in `arrays`)."""
    from ase.build import molecule
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(seed)
    images = []
    for name in names:
        ref = molecule(name)
        for _ in range(n_conformers):
            atoms = ref.copy()
            dr = np.clip(rng.normal(0.0, rattle, size=ref.positions.shape), -2 * rattle, 2 * rattle)
            atoms.positions = Rotation.random(random_state=rng).apply(ref.positions + dr) + rng.uniform(-3, 3, 3)
            energy, forces = hf_sto3g(atoms.numbers, atoms.positions)
            atoms.info[ENERGY_KEY] = energy
            atoms.arrays[FORCES_KEY] = forces
            images.append(atoms)
    return images


@pytest.fixture(scope="session")
def hf_images() -> list:
    return hf_conformers()


@pytest.fixture(scope="session")
def hf_test_images() -> list:
    """Other conformers of the same molecules, never shown to a fine-tune: a test set."""
    return hf_conformers(n_conformers=4, seed=1)


@pytest.fixture(scope="session")
def hf_xyz(tmp_path_factory, hf_images) -> Path:
    """The HF/STO-3G conformers as a user's extxyz file."""
    import ase.io

    path = tmp_path_factory.mktemp("user") / "hf_sto3g.xyz"
    ase.io.write(path, hf_images, format="extxyz")
    return path


@pytest.fixture(scope="session")
def pretrained_ensemble(pretrained, tmp_path_factory) -> Path:
    """An ensemble start like ANI-1x's, in small: three copies of the pretrained model, each
    moved by its own noise so that the members differ."""
    import torch

    from foundation.hub.format import save_model
    from foundation.loading import load_pretrained
    from foundation.models.ensemble import EnsembleModel

    members = []
    for k in range(3):
        member = load_pretrained(pretrained, device="cpu")
        generator = torch.Generator().manual_seed(k)
        with torch.no_grad():
            for p in member.parameters():
                p.add_(0.01 * torch.randn(p.shape, generator=generator, dtype=p.dtype))
        members.append(member)
    path = tmp_path_factory.mktemp("ensemble") / "pretrained_ensemble.safetensors"
    return save_model(EnsembleModel.from_members(members), path)
