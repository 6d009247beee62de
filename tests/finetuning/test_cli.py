"""`foundation finetune`: the one command, what it prints, and its one-line errors and warnings.
(Here rather than in tests/cli/ to share the session's pretrained model and PySCF labels.)"""

from __future__ import annotations

import ase.io
import pytest

from foundation.cli.main import main
from tests.finetuning.conftest import ENERGY_KEY, FORCES_KEY


def test_the_command_prints_split_and_errors_and_writes_model_and_report(pretrained, hf_xyz, tmp_path, capsys):
    out = tmp_path / "models" / "mine.safetensors"
    code = main(["finetune", "--model", pretrained, "--data", str(hf_xyz), "--energy-key", ENERGY_KEY,
                 "--forces-key", FORCES_KEY, "--fidelity", "hf_sto3g", "--val-fraction", "0.25",
                 "--out", str(out), "trainer.max_steps=10", "trainer.val_every=5", "trainer.device=cpu",
                 f"out_dir={tmp_path}", "name=cli"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    lines = captured.out.splitlines()
    assert lines[0].startswith(f"model: {pretrained} (heads ") and "new head 'hf_sto3g', copied from" in lines[0]
    assert lines[1] == f"data: {hf_xyz}: 36 structures, elements H, C, N, O"
    assert lines[2].startswith("split: by conformer (3 molecules told apart by formula and bonds; fewer than 10") \
        and lines[2].endswith("27 training, 9 validation structures")
    assert lines[3].startswith("reference energies refit as a change from head ") and "(ridge; " in lines[3]
    assert "condition number" in lines[3] and lines[3].endswith(" eV")
    assert "frozen: networks.*.layers.2.*" in lines[4] and f"run dir {tmp_path / 'cli'}" in lines[4]
    assert lines[5].startswith("weights chosen on the validation relative-energy RMSE (energies relative to "
                               "each molecule's mean) + 0.1 Å × forces RMSE") and "never worse than the start" in lines[5]
    table = "\n".join(lines[6:])
    for row in ("relative energy RMSE (kcal/mol)", "energy MAE (kcal/mol)", "forces MAE (eV/Å)"):
        assert row in table
    assert lines[-2] == f"model: {out} (default head hf_sto3g)"
    assert lines[-1] == f"report: {out.with_suffix('.md')}"
    assert "step" in captured.err  # the progress bar
    assert out.is_file() and out.with_suffix(".md").is_file() and (out.parent / "mine_parity.png").is_file()


def test_a_missing_key_is_one_line(hf_xyz, capsys):
    code = main(["finetune", "--model", "unused", "--data", str(hf_xyz), "--energy-key", "E_ccsdt"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"foundation finetune: error: {hf_xyz}:0: structure has no energy key 'E_ccsdt'")


def test_hartree_energies_are_refused_in_one_line_and_trained_on_right_with_energy_unit(pretrained, hf_images,
                                                                                         tmp_path, capsys):
    from foundation.hub.format import read_header

    images = [a.copy() for a in hf_images[:12]]
    for a in images:
        a.info[ENERGY_KEY] /= 27.211386245988
    path = tmp_path / "hartree.xyz"
    ase.io.write(path, images, format="extxyz")
    code = main(["finetune", "--model", pretrained, "--data", str(path), "--energy-key", ENERGY_KEY])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1  # nothing trained
    assert err.startswith(f"foundation finetune: error: {path}: energies under key '{ENERGY_KEY}' look like "
                          "hartree, not eV") and "--energy-unit hartree" in err
    ev = tmp_path / "ev.xyz"
    ase.io.write(ev, hf_images[:12], format="extxyz")
    headers = {}
    for name, data, unit in (("ev", ev, []), ("hartree", path, ["--energy-unit", "hartree"])):
        out = tmp_path / f"{name}.safetensors"
        code = main(["finetune", "--model", pretrained, "--data", str(data), "--energy-key", ENERGY_KEY, *unit,
                     "--fidelity", "hf_sto3g", "--out", str(out), "--quiet", "trainer.max_steps=2",
                     "trainer.val_every=1", "trainer.device=cpu", f"out_dir={tmp_path}", f"name={name}"])
        assert code == 0, capsys.readouterr().err
        headers[name] = read_header(out)
    # the same training in eV: reference energies where an eV file puts them, not 984 eV off per carbon
    refs = {name: h["heads"]["hf_sto3g"]["reference_energies"] for name, h in headers.items()}
    for z, e in refs["ev"].items():
        assert refs["hartree"][z] == pytest.approx(e, abs=1e-6)
    assert headers["hartree"]["finetune"]["before"] == pytest.approx(headers["ev"]["finetune"]["before"], rel=1e-6)
    assert headers["hartree"]["finetune"]["energy_unit_given"] == "hartree"
