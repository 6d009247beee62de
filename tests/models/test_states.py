"""Models say what they cannot represent (issue 28): a model file records the charges and spin
multiplicities it was trained on (none recorded: neutral singlets, as every shipped model), and
evaluate, finetune, md and the ASE calculator refuse any other structure in one line."""

from __future__ import annotations

from pathlib import Path

import ase
import ase.io
import pytest
import torch

from foundation.calculators import FoundationCalculator
from foundation.cli.main import main
from foundation.hub.format import load_model_file, read_header, save_model
from foundation.hub.registry import load_registry
from foundation.models.states import UnsupportedStateError, check_state, model_states, set_states

SHIPPED = sorted(name for name, entry in load_registry().items() if entry.shipped)
ZOO = Path(__file__).resolve().parents[2].parent / "shared" / "ani-model-zoo"
AMMONIUM = dict(symbols="NH4", positions=[[0, 0, 0], [0.63, 0.63, 0.63], [-0.63, -0.63, 0.63],
                                         [-0.63, 0.63, -0.63], [0.63, -0.63, -0.63]])


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    monkeypatch.setenv("FOUNDATION_OFFLINE", "1")
    monkeypatch.setenv("FOUNDATION_CACHE", str(tmp_path / "empty-cache"))


def _ammonium(**info) -> ase.Atoms:
    return ase.Atoms(**AMMONIUM, info={"charge": 1, **info})


def _tiny_model():
    from foundation.models.ani import ANIConfig

    torch.manual_seed(0)
    model = ANIConfig(heads=["dft"], hidden={s: [8] for s in "HCNO"}).build()
    model.set_reference_energies("dft", {"H": -13.6, "C": -1030.0, "N": -1485.0, "O": -2040.0})
    return model


def test_a_model_file_records_its_states_and_one_without_them_is_a_neutral_singlet_model(tmp_path):
    model = _tiny_model()
    path = save_model(model, tmp_path / "neutral.safetensors")
    assert (read_header(path)["charges"], read_header(path)["multiplicities"]) == ([0], [1])
    set_states(model, [1, 0, -1], [2, 1])
    path = save_model(model, tmp_path / "ions.safetensors")
    loaded = load_model_file(path)
    assert model_states(loaded) == ((-1, 0, 1), (1, 2))
    check_state(loaded, -1, 2, "x")  # trained on: fine
    for name in SHIPPED:  # a shipped file predates the fields (neutral singlets) or records only them
        header = read_header(Path(load_registry()[name].source).parent / load_registry()[name].path)
        assert (header.get("charges", [0]), header.get("multiplicities", [1])) == ([0], [1]), name


@pytest.mark.parametrize("name", SHIPPED)
def test_the_calculator_of_every_shipped_model_refuses_charged_and_open_shell_structures(name):
    calc = FoundationCalculator(name, device="cpu")
    assert model_states(calc.model) == ((0,), (1,))
    ammonium = _ammonium()
    ammonium.calc = calc
    with pytest.raises(UnsupportedStateError, match="atoms H4N: charge \\+1, singlet, but the model was trained on "
                                                   "neutral singlets only"):
        ammonium.get_potential_energy()
    methyl = ase.Atoms("CH3", positions=[[0, 0, 0], [1.08, 0, 0], [-0.54, 0.94, 0], [-0.54, -0.94, 0]],
                       info={"spin": 2})
    methyl.calc = calc
    with pytest.raises(ValueError, match="charge \\+0, doublet"):  # a ValueError too: ASE MD and optimisers stop
        methyl.get_forces()
    neutral = ase.Atoms("NH3", positions=[[0, 0, 0.1], [0.94, 0, -0.27], [-0.47, 0.81, -0.27], [-0.47, -0.81, -0.27]])
    neutral.calc = calc
    assert neutral.get_potential_energy() < 0  # a neutral singlet: predicted as ever


@pytest.mark.skipif(not (ZOO / "resources").is_dir(), reason=f"the published ANI files are not at {ZOO}")
def test_the_ani2x_conversion_refuses_them_too():
    from foundation.hub.ani.from_neurochem import load_neurochem

    model, _ = load_neurochem(ZOO / "resources" / "ani-2x_8x.info")
    ammonium = _ammonium()
    ammonium.calc = FoundationCalculator(model, device="cpu")
    with pytest.raises(UnsupportedStateError, match="charge \\+1, singlet"):
        ammonium.get_potential_energy()


@pytest.mark.parametrize("name", SHIPPED)
def test_evaluate_finetune_and_md_refuse_a_charged_structure_in_one_line(name, tmp_path, capsys):
    images = []
    for k in range(6):
        atoms = _ammonium(E=-1530.0 - k * 0.01)
        atoms.rattle(0.02, seed=k)
        images.append(atoms)
    path = tmp_path / "ammonium.xyz"
    ase.io.write(path, images, format="extxyz")
    commands = {
        "evaluate": ["evaluate", "--model", name, "--data", str(path), "--energy-key", "E", "--device", "cpu"],
        "finetune": ["finetune", "--model", name, "--data", str(path), "--energy-key", "E", "--quiet",
                     f"out_dir={tmp_path}", "trainer.device=cpu"],
        "md": ["md", str(path), "--model", name, "--steps", "2", "--device", "cpu", "--traj", str(tmp_path / "t.traj")],
    }
    for command, argv in commands.items():
        code = main(argv)
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, (command, err)
        assert f"foundation {command}: error: " in err and "charge +1, singlet, but " in err, (command, err)
        assert "trained on neutral singlets only" in err, (command, err)
    assert not (tmp_path / "t.traj").exists()  # md refused before its first step


def test_a_training_records_the_states_of_its_data(tmp_path, make_samples, tiny_run):
    from foundation.data.ase_io import samples_to_atoms
    from foundation.train.trainer import Trainer
    from tests.conftest import file_data

    images = samples_to_atoms(make_samples(n_molecules=8, n_conformers=4, fidelity="dft"),
                              energy_key="REF_energy", forces_key="REF_forces")
    for k, atoms in enumerate(images):
        if k % 4 == 0:  # a radical cation: one electron fewer than the closed-shell molecule
            atoms.info.update(charge=1, spin=2)
    path = tmp_path / "ions.xyz"
    ase.io.write(path, images, format="extxyz")
    result = Trainer(tiny_run(data=file_data(path))).train()
    header = read_header(result.model_path)
    assert (header["charges"], header["multiplicities"]) == ([0, 1], [1, 2])
    assert model_states(load_model_file(result.model_path)) == ((0, 1), (1, 2))
