"""`model.avg_num_neighbors=auto` and `model.energy_scale=auto`: the values mace-torch's own data
pipeline (its extxyz reader, `AtomicData` with its neighbour list, its DataLoader) and statistics
give on the same structures; computed when a run builds the model and kept in the exported file."""


import numpy as np
import pytest
import torch

from foundation.data.ase_io import write_extxyz
from foundation.data.sample import Sample
from foundation.errors import UserError
from foundation.models.mace import MACEConfig, mace_modules
from foundation.models.testing import random_crystal
from foundation.models.mace_torch import installed

HAVE_MACE = installed()
pytestmark = [pytest.mark.skipif(not HAVE_MACE, reason="mace-torch not installed: pip install 'foundation-mlip[mace]'"),
              pytest.mark.filterwarnings("ignore:`torch.jit.(save|load)` is deprecated:DeprecationWarning")]

HCNO = [1, 6, 7, 8]
TINY = {"hidden_irreps": "8x0e+8x1o", "mlp_irreps": "8x0e", "max_ell": 2, "correlation": 2,
        "radial_mlp": [16], "num_bessel": 6}


def mace_torch_statistics(path, e0s=None):
    """What mace_run_train computes for its model from a training file: (avg_num_neighbors,
    RMS of the forces, std of the per-atom energy beyond `e0s`, or beyond its own `--E0s average`),
    with `--default_dtype float64`."""
    mace_modules()  # imports mace without leaving TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD set
    from mace import data, modules
    from mace.tools import torch_geometric, utils

    saved = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        return _statistics(path, e0s, data, modules, torch_geometric, utils)
    finally:
        torch.set_default_dtype(saved)


def _statistics(path, e0s, data, modules, torch_geometric, utils):
    keys = data.KeySpecification(info_keys={"energy": "REF_energy", "stress": "REF_stress", "head": "head"},
                                 arrays_keys={"forces": "REF_forces"})
    _, configs = data.load_from_xyz(str(path), keys)
    table = utils.AtomicNumberTable(HCNO)
    loader = torch_geometric.dataloader.DataLoader(
        [data.AtomicData.from_config(c, z_table=table, cutoff=5.0) for c in configs], batch_size=7)
    if e0s is None:
        average = data.compute_average_E0s(configs, table)
        e0s = np.array([average[z] for z in HCNO])
    _, rms = modules.compute_mean_rms_energy_forces(loader, np.zeros(len(HCNO)))
    _, std = modules.compute_mean_std_atomic_inter_energy(loader, e0s)
    return modules.compute_avg_num_neighbors(loader), float(np.ravel(rms)[0]), float(np.ravel(std)[0])


def test_the_values_are_mace_run_trains_on_the_same_structures(tmp_path, make_samples):
    from foundation.models import mace_statistics

    crystal = random_crystal(np.random.default_rng(0), HCNO, 3)  # periodic images count as neighbours
    crystal = Sample(crystal.numbers, crystal.positions, {"dft": -1000.0}, {"dft": np.ones((3, 3))},
                     cell=crystal.cell, pbc=crystal.pbc)
    samples = [*make_samples(n_molecules=6, n_conformers=4), crystal]
    write_extxyz(tmp_path / "train.xyz", samples, energy_key="REF_energy", forces_key="REF_forces")
    neighbours, rms, _ = mace_torch_statistics(tmp_path / "train.xyz")
    assert mace_statistics.avg_num_neighbors(samples, 5.0, HCNO) == pytest.approx(neighbours, rel=1e-6)
    assert mace_statistics.energy_scale(samples, HCNO) == pytest.approx(rms, rel=1e-6)
    assert 3 < neighbours < 20 and 0.1 < rms < 5


def test_energy_only_data_get_mace_run_trains_std_scaling(tmp_path, make_samples):
    from foundation.models import mace_statistics

    samples = make_samples(n_molecules=8, n_conformers=4, forces=False)
    write_extxyz(tmp_path / "train.xyz", samples, energy_key="REF_energy", forces_key="REF_forces")
    *_, std = mace_torch_statistics(tmp_path / "train.xyz")  # E0s: mace_run_train's `--E0s average`
    assert mace_statistics.energy_scale(samples, HCNO) == pytest.approx(std, rel=1e-6)
    assert std > 0


def test_a_run_computes_them_from_its_training_split_and_the_export_keeps_them(tmp_path, xyz_path):
    from foundation.hub.format import load_model_file, read_header
    from foundation.models import mace_statistics
    from foundation.train.config import LoggerConfig, RunConfig, TrainerConfig
    from foundation.train.trainer import Trainer
    from tests.conftest import TINY_TRAINER, file_data

    def run(name, **model):
        trainer = TrainerConfig(**{**TINY_TRAINER, "max_steps": 1, "val_every": 1, "ckpt_every": 10})
        return Trainer(RunConfig(model={"name": "mace", "elements": HCNO, **TINY, **model}, data=file_data(xyz_path),
                                 trainer=trainer, logger=LoggerConfig(progress_bar=False), name=name,
                                 out_dir=str(tmp_path)))

    auto = run("auto")
    train = auto.data.train  # the training split only: validation structures are not looked at
    assert 0 < len(train) < len(train) + len(auto.data.val)
    config = auto.model.config
    assert config.avg_num_neighbors == mace_statistics.avg_num_neighbors(train, 5.0, HCNO)
    assert config.energy_scale == mace_statistics.energy_scale(train, HCNO)
    auto.train()
    path = tmp_path / "auto" / "model.safetensors"
    header = read_header(path)["config"]
    assert (header["avg_num_neighbors"], header["energy_scale"]) == (config.avg_num_neighbors, config.energy_scale)
    assert load_model_file(path).config == config  # the file rebuilds the same model

    given = run("given", avg_num_neighbors=6.5, energy_scale=0.5).model.config
    assert (given.avg_num_neighbors, given.energy_scale) == (6.5, 0.5)  # numbers given are kept


def test_building_without_data_needs_numbers_and_auto_is_the_only_word():
    with pytest.raises(UserError, match=r"avg_num_neighbors=auto is computed from the training data.*give "
                                        r"avg_num_neighbors and energy_scale numbers"):
        MACEConfig(**TINY).build()
    with pytest.raises(UserError, match="energy_scale must be a number > 0 or auto"):
        MACEConfig(energy_scale="rms")
