"""`foundation hub …` end to end through `main()`: list, info, download errors, export and the
TorchANI import; and registry names accepted wherever a model path is (`foundation evaluate`)."""

from __future__ import annotations

import dataclasses
import json
import os
import warnings

import pytest
import torch

from foundation.cli.main import main
from foundation.hub.cache import file_sha256


@pytest.fixture
def tiny_model():
    from foundation.models import ANIConfig

    torch.manual_seed(0)
    model = ANIConfig(hidden={s: [8] for s in "HCNO"}, heads=["wb97x_631gs", "ccsdt_ccpvdz"]).build()
    model.set_reference_energies("ccsdt_ccpvdz", {"H": -13.6, "C": -1029.0, "N": -1484.0, "O": -2041.0})
    return model.eval()


@pytest.fixture
def registered(tmp_path, monkeypatch, tiny_model):
    """A registry file naming `tiny` (shipped beside it) and `far` (a URL, not cached)."""
    from foundation.hub.format import save_model

    monkeypatch.setenv("FOUNDATION_CACHE", str(tmp_path / "cache"))
    file = save_model(tiny_model, tmp_path / "zoo" / "tiny.safetensors", metadata={"metrics": {"mae": 0.5}})
    registry = tmp_path / "registry.json"
    registry.write_text(json.dumps({"format_version": 1, "models": {
        "tiny": {"path": "zoo/tiny.safetensors", "sha256": file_sha256(file), "description": "a test model",
                 "fidelities": ["wb97x_631gs", "ccsdt_ccpvdz"], "default_head": "ccsdt_ccpvdz",
                 "elements": ["H", "C", "N", "O"], "license": "MIT"},
        "far": {"url": "https://127.0.0.1:9/far.safetensors", "sha256": "cd" * 32, "size": 2048}}}))
    monkeypatch.setenv("FOUNDATION_REGISTRY", str(registry))
    return file


def _error_line(capsys, code, command="hub"):
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith(f"foundation {command}: error: ") and "\n" not in err, err
    return err


def test_list_shows_packaged_and_extra_models(registered, capsys):
    assert main(["hub", "list"]) == 0
    out = capsys.readouterr().out
    assert "ani-cc-mini" in out
    tiny = next(line for line in out.splitlines() if line.startswith("tiny"))
    assert "shipped" in tiny and "wb97x_631gs,ccsdt_ccpvdz" in tiny and "HCNO" in tiny
    far = next(line for line in out.splitlines() if line.startswith("far"))
    assert "remote" in far and "2.0 KiB" in far


def test_info_reads_the_header_without_loading(registered, capsys):
    assert main(["hub", "info", "tiny"]) == 0
    out = capsys.readouterr().out
    assert "head          ccsdt_ccpvdz: reference energies (eV) H -13.6000" in out
    assert '"mae": 0.5' in out and "cutoff        5.2 Å" in out
    assert main(["hub", "info", "far", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["registry"]["size"] == 2048 and "header" not in info
    assert main(["hub", "info", str(registered), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["header"]["model"] == "ani"


def test_download_errors_are_one_line(registered, capsys, monkeypatch):
    _error_line(capsys, main(["hub", "download", "no-such-model"]))
    monkeypatch.setenv("FOUNDATION_OFFLINE", "1")
    err = _error_line(capsys, main(["hub", "download", "far"]))
    assert "FOUNDATION_OFFLINE=1" in err
    err = _error_line(capsys, main(["hub", "download", "hf://org/repo/model.safetensors"]))
    assert "FOUNDATION_OFFLINE=1" in err


def test_export_from_a_training_checkpoint(tmp_path, tiny_model, capsys):
    from foundation.hub.format import read_header
    from foundation.loading import load_model
    from foundation.train.checkpoint import save_checkpoint

    run = tmp_path / "run"
    save_checkpoint(run, 7, {"model_config": dataclasses.asdict(tiny_model.config),
                             "engine": {"model": tiny_model.state_dict()}})
    out = tmp_path / "exported.safetensors"
    assert main(["hub", "export", str(run), str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    assert read_header(out)["provenance"]["exported_from"] == str(run)
    exported = load_model(out)
    for name, value in tiny_model.state_dict().items():
        torch.testing.assert_close(exported.state_dict()[name], value)
    _error_line(capsys, main(["hub", "export", str(run), str(tmp_path / "x.pt")]))


def test_import_torchani_file(tmp_path, capsys):
    os.environ.setdefault("TORCHANI_NO_WARN_EXTENSIONS", "1")
    pytest.importorskip("torchani")
    from torchani.arch import Assembler

    asm = Assembler()  # TorchANI's ANI1x architecture, random weights (its builder would download)
    asm.set_symbols(("H", "C", "N", "O"))
    asm.set_global_cutoff_fn("cosine")
    asm.set_aev_computer(radial="ani1x", angular="ani1x", strategy="pyaev")
    asm.set_atomic_networks(ctor="ani1x")
    asm.set_neighborlist("all_pairs")
    asm.set_gsaes_as_self_energies("wb97x-631gd")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = asm.assemble(2)
    torch.save(theirs.state_dict(), tmp_path / "ani.pt")
    out = tmp_path / "ani.safetensors"
    assert main(["hub", "import-torchani", str(tmp_path / "ani.pt"), str(out)]) == 0
    assert main(["hub", "info", str(out), "--json"]) == 0
    header = json.loads(capsys.readouterr().out.split("\n", 1)[1])["header"]
    assert header["model"] == "ensemble" and list(header["heads"]) == ["wb97x_631gs"]
    assert header["provenance"]["converted_from"].endswith("ani.pt")
    _error_line(capsys, main(["hub", "import-torchani", str(tmp_path / "missing.pt"), str(out)]))


def test_evaluate_accepts_a_registry_name(registered, molecules_xyz, capsys):
    data, _ = molecules_xyz(n_molecules=2, n_conformers=2, energy_key="E", forces_key="F")
    code = main(["evaluate", "--model", "tiny", "--data", str(data), "--energy-key", "E", "--forces-key", "F",
                 "--head", "ccsdt_ccpvdz", "--device", "cpu"])
    assert code == 0, capsys.readouterr().err
    assert "tiny on" in capsys.readouterr().out
