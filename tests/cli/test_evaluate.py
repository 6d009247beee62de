import importlib.util
import json

import numpy as np
import pytest
import torch

from foundation.cli.main import main
from foundation.data.ase_io import write_extxyz
from foundation.data.sample import Sample

needs_models = pytest.mark.skipif(
    importlib.util.find_spec("foundation.loading") is None or importlib.util.find_spec("foundation.models.ani") is None,
    reason="foundation.loading / foundation.models.ani not built yet")


@pytest.fixture
def model_file(tmp_path):
    from foundation.hub.format import save_model
    from foundation.models.ani import ANIConfig

    torch.manual_seed(0)
    model = ANIConfig(heads=["wb97x_631gs", "ccsdt_ccpvdz"], hidden={s: [8] for s in "HCNO"}).build()
    for head in model.heads:
        model.set_reference_energies(head, {"H": -15.6, "C": -1031.9, "N": -1487.5, "O": -2044.7})
    return save_model(model, tmp_path / "model.safetensors")


def _one_line_error(capsys, code):
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("foundation evaluate: error: ") and "\n" not in err
    return err


@needs_models
def test_scores_a_file_and_writes_json(tmp_path, molecules_xyz, model_file, capsys):
    data, samples = molecules_xyz(n_molecules=3, n_conformers=3, energy_key="E_cc", forces_key="F_cc")
    out = tmp_path / "scores.json"
    code = main(["evaluate", "--model", str(model_file), "--data", str(data), "--energy-key", "E_cc",
                 "--forces-key", "F_cc", "--head", "ccsdt_ccpvdz", "--json", str(out), "--device", "cpu"])
    printed = capsys.readouterr().out
    assert code == 0
    assert "head ccsdt_ccpvdz, 9 structures" in printed and "relative energy RMSE" in printed
    record = json.loads(out.read_text())
    for key in ("n_structures", "energy_mae_ev_per_atom", "energy_rmse_kcal_mol",
                "relative_energy_rmse_kcal_mol", "forces_mae_ev_per_a", "forces_rmse_ev_per_a"):
        assert np.isfinite(record[key]), key
    assert record["n_structures"] == 9 and record["energy_key"] == "E_cc"
    rows = record["structures"]
    assert [r["source"] for r in rows] == [f"{data}:{i}" for i in range(9)]
    assert rows[0]["energy_ref_ev"] == pytest.approx(samples[0].energies["dft"])
    assert np.shape(rows[0]["forces_pred_ev_per_a"]) == (samples[0].n_atoms, 3)


@needs_models
def test_model_with_several_heads_asks_for_one(molecules_xyz, model_file, capsys):
    data, _ = molecules_xyz(n_molecules=1, n_conformers=1)
    code = main(["evaluate", "--model", str(model_file), "--data", str(data), "--energy-key", "REF_energy"])
    assert "choose one with --head" in _one_line_error(capsys, code)


@needs_models
def test_unknown_element_is_one_line(tmp_path, model_file, capsys):
    h2s = Sample(numbers=[16, 1, 1], positions=[[0, 0, 0], [1.34, 0, 0], [0, 1.34, 0]], energies={"x": -10870.0})
    write_extxyz(tmp_path / "h2s.xyz", [h2s], energy_key="E")
    code = main(["evaluate", "--model", str(model_file), "--data", str(tmp_path / "h2s.xyz"),
                 "--energy-key", "E", "--head", "wb97x_631gs"])
    assert f"{tmp_path / 'h2s.xyz'}:0: element S is not supported" in _one_line_error(capsys, code)


def test_bad_key_names_file_index_and_keys(molecules_xyz, tmp_path, capsys):
    data, _ = molecules_xyz(n_molecules=1, n_conformers=2)
    code = main(["evaluate", "--model", str(tmp_path / "never-loaded.safetensors"), "--data", str(data),
                 "--energy-key", "energy_ccsd"])
    err = _one_line_error(capsys, code)
    assert f"{data}:0" in err and "'energy_ccsd'" in err and "REF_energy" in err


def test_unreadable_file_is_one_line(tmp_path, capsys):
    (tmp_path / "junk.xyz").write_text("not a structure\n")
    code = main(["evaluate", "--model", "m.safetensors", "--data", str(tmp_path / "junk.xyz"), "--energy-key", "E"])
    assert "junk.xyz" in _one_line_error(capsys, code)
    code = main(["evaluate", "--model", "m.safetensors", "--data", str(tmp_path / "none.xyz"), "--energy-key", "E"])
    assert "none.xyz: no such file" in _one_line_error(capsys, code)


@needs_models
def test_hartree_energies_are_refused_without_energy_unit_and_right_with_it(tmp_path, molecules_xyz, model_file,
                                                                           capsys):
    hartree, _ = molecules_xyz(name="hartree.xyz", n_molecules=2, n_conformers=2, unit="hartree", forces_key=None)
    ev, _ = molecules_xyz(name="ev.xyz", n_molecules=2, n_conformers=2, forces_key=None)
    args = ["--model", str(model_file), "--energy-key", "REF_energy", "--head", "wb97x_631gs", "--device", "cpu"]
    err = _one_line_error(capsys, main(["evaluate", "--data", str(hartree), *args]))
    assert "energies under key 'REF_energy' look like hartree, not eV" in err and "--energy-unit hartree" in err
    scores = {}
    for name, data, unit in (("ev", ev, []), ("hartree", hartree, ["--energy-unit", "hartree"])):
        assert main(["evaluate", "--data", str(data), *args, *unit, "--json", str(tmp_path / f"{name}.json")]) == 0
        scores[name] = json.loads((tmp_path / f"{name}.json").read_text())
    capsys.readouterr()
    assert scores["hartree"]["energy_mae_kcal_mol"] == pytest.approx(scores["ev"]["energy_mae_kcal_mol"], rel=1e-9)
    assert scores["hartree"]["energy_unit_given"] == "hartree"
