"""The distributable model file: safetensors weights + a JSON header; loading never unpickles."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from foundation.data.batch import collate
from foundation.errors import CheckpointError, UserError
from foundation.hub.format import HEADER_KEY, load_model_file, read_header, save_model
from foundation.loading import load_model
from foundation.models import build_model
from foundation.models.prediction import predict

TINY = {"name": "ani", "elements": [1, 6, 7, 8], "heads": ["wb97x_631gs", "ccsdt_ccpvdz"],
        "radial_num_shifts": 8, "angular_num_shifts": 2, "angular_num_sections": 4,
        "hidden": {s: [16, 8] for s in "HCNO"}}


@pytest.fixture
def model():
    torch.manual_seed(0)
    model = build_model(TINY)
    model.set_reference_energies("wb97x_631gs", {1: -13.6, 6: -1029.8, 7: -1484.9, 8: -2041.3})
    model.set_reference_energies("ccsdt_ccpvdz", {1: -13.5, 6: -1028.1, 7: -1483.0, 8: -2039.9})
    return model.eval()


def _predict(model, batch):
    return predict(model, batch, model.heads, model.heads)


def test_exported_model_reloads_to_identical_predictions(model, tmp_path, make_samples):
    path = save_model(model, tmp_path / "model.safetensors",
                      {"metrics": {"val/loss": 0.25, "best": float("inf")}, "data_manifest_hash": "abc123"})
    loaded = load_model_file(path)
    batch = collate(make_samples(4, 2), ["dft"])
    want, got = _predict(model, batch), _predict(loaded, batch)
    for kind in ("energy", "forces"):
        for head in model.heads:
            assert torch.equal(want[kind][head], got[kind][head]), (kind, head)
    assert loaded.reference_energies_dict() == model.reference_energies_dict()
    assert not loaded.training and load_model(path).heads == model.heads


def test_the_header_describes_the_model(model, tmp_path):
    path = save_model(model, tmp_path / "m.safetensors", {"metrics": {"best": float("nan")}})
    header = read_header(path)
    assert header["format_version"] == 1 and header["model"] == "ani"
    assert header["elements"] == [1, 6, 7, 8] and header["cutoff"] == model.cutoff
    assert header["units"] == {"length": "Å", "energy": "eV", "forces": "eV/Å"}
    assert header["heads"]["ccsdt_ccpvdz"]["reference_energies"]["6"] == -1028.1
    assert header["config"]["hidden"]["C"] == [16, 8] and header["metrics"] == {"best": None}
    assert "library_version" in header and "data_manifest_hash" in header
    assert not list(tmp_path.glob("*.tmp"))


def test_float64_weights_stay_float64(model, tmp_path):
    loaded = load_model_file(save_model(model.double(), tmp_path / "m.safetensors"))
    assert loaded.dtype == torch.float64 and loaded.reference_energies.dtype == torch.float64


def _rewrite(tmp_path, source, tensors=None, header=None):
    tensors = tensors if tensors is not None else load_file(source)
    path = tmp_path / "edited.safetensors"
    save_file(tensors, path, metadata=None if header is None else {HEADER_KEY: json.dumps(header)})
    return path


def test_files_that_are_not_what_they_claim_are_clear_errors(model, tmp_path):
    good = save_model(model, tmp_path / "m.safetensors")
    header = read_header(good)
    (tmp_path / "html.safetensors").write_text("<html>404 Not Found</html>")
    with pytest.raises(CheckpointError, match="html.safetensors: not a safetensors model file"):
        load_model_file(tmp_path / "html.safetensors")
    with pytest.raises(CheckpointError, match="without a Foundation header"):
        load_model_file(_rewrite(tmp_path, good))
    with pytest.raises(CheckpointError, match="unknown model 'nope'"):
        renamed = {**header, "config": {**header["config"], "name": "nope"}}
        load_model_file(_rewrite(tmp_path, good, header=renamed))
    wider = {**header["config"], "hidden": {**header["config"]["hidden"], "C": [32, 8]}}
    with pytest.raises(CheckpointError, match=r"tensor networks\.C\.layers\.0\.weight has shape"):
        load_model_file(_rewrite(tmp_path, good, header={**header, "config": wider}))
    fewer = {k: v for k, v in load_file(good).items() if k != "networks.O.layers.0.bias"}
    with pytest.raises(CheckpointError, match=r"missing \['networks.O.layers.0.bias'\]"):
        load_model_file(_rewrite(tmp_path, good, tensors=fewer, header=header))
    with pytest.raises(CheckpointError, match="newer than this library"):
        load_model_file(_rewrite(tmp_path, good, header={**header, "format_version": 99}))
    with pytest.raises(CheckpointError, match="no such model file"):
        load_model_file(tmp_path / "absent.safetensors")


def test_load_model_takes_a_file_or_a_run_directory(model, tmp_path):
    save_model(model, tmp_path / "run" / "model.safetensors")
    assert load_model(tmp_path / "run").heads == model.heads
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(CheckpointError, match="not a model file"):
        load_model(tmp_path / "notes.txt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="empty: a directory without model.safetensors"):
        load_model(tmp_path / "empty")
