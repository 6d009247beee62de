"""The model registry: the packaged file is valid, extra registries add models that load with no
network, and malformed entries or unknown names give one clear line."""

from __future__ import annotations

import json

import pytest
import torch

import foundation
from foundation.errors import CheckpointError, UserError
from foundation.hub.cache import file_sha256
from foundation.hub.registry import PACKAGED, get_entry, load_registry, read_registry_file

SHA = "ab" * 32


@pytest.fixture
def registry(tmp_path, monkeypatch):
    """Write `models` as an extra registry file (FOUNDATION_REGISTRY) and return its path."""
    monkeypatch.setenv("FOUNDATION_CACHE", str(tmp_path / "cache"))

    def write(models: dict, name: str = "registry.json"):
        path = tmp_path / name
        path.write_text(json.dumps({"format_version": 1, "models": models}))
        monkeypatch.setenv("FOUNDATION_REGISTRY", str(path))
        return path

    return write


@pytest.fixture
def model_file(tmp_path):
    from foundation.hub.format import save_model
    from foundation.models import ANIConfig

    torch.manual_seed(0)
    model = ANIConfig(hidden={s: [8] for s in "HCNO"}, heads=["wb97x_631gs", "ccsdt_ccpvdz"]).build()
    return save_model(model, tmp_path / "zoo" / "tiny.safetensors")


def test_packaged_registry_is_valid_and_its_shipped_files_match():
    entries = read_registry_file(PACKAGED)
    assert "ani-cc-mini" in entries
    from foundation.hub.format import read_header

    for entry in entries.values():
        assert entry.fidelities and entry.elements and entry.license, entry.name
        assert entry.url or entry.path or entry.neurochem
        if entry.shipped:  # a shipped file is verified too: its sha256 must be in registry.json
            assert file_sha256(entry.path) == entry.sha256, f"{entry.name}: set sha256 in registry.json"
            header = read_header(entry.path)
            assert list(header["heads"]) == list(entry.fidelities), entry.name
            assert entry.default_head in header["heads"], entry.name


def test_extra_registry_model_loads_without_network(registry, model_file, monkeypatch):
    registry({"tiny": {"path": "zoo/tiny.safetensors", "sha256": file_sha256(model_file),
                       "fidelities": ["wb97x_631gs", "ccsdt_ccpvdz"], "default_head": "ccsdt_ccpvdz",
                       "elements": ["H", "C", "N", "O"], "license": "MIT"}})
    monkeypatch.setenv("FOUNDATION_OFFLINE", "1")
    assert "ani-cc-mini" in load_registry() and get_entry("tiny").shipped
    model = foundation.load_pretrained("tiny", device="cpu")
    assert model.heads == ["wb97x_631gs", "ccsdt_ccpvdz"] and model.default_head == "ccsdt_ccpvdz"
    assert not model.training
    calc = foundation.calculator("tiny", device="cpu")
    assert calc.head == "ccsdt_ccpvdz"


def test_the_shipped_cc_model_says_its_version_and_what_changed():
    entry = read_registry_file(PACKAGED)["ani-1x-ccsdt"]
    assert entry.version >= 2 and entry.changes.startswith("recipe ")
    assert read_registry_file(PACKAGED)["ani-1x"].version == 1 and not read_registry_file(PACKAGED)["ani-1x"].changes


def test_shipped_file_with_the_wrong_hash_is_refused(registry, model_file):
    registry({"tiny": {"path": "zoo/tiny.safetensors", "sha256": SHA}})
    with pytest.raises(CheckpointError, match="does not match its registry sha256"):
        foundation.load_pretrained("tiny", device="cpu")


def test_missing_file_without_url_is_a_clear_error(registry):
    registry({"gone": {"path": "zoo/gone.safetensors"}})
    with pytest.raises(UserError, match="'gone'.*not installed.*no url"):
        foundation.load_pretrained("gone", device="cpu")


def test_unknown_name_suggests_close_ones():
    with pytest.raises(UserError, match="did you mean ani-cc-mini.*foundation hub list"):
        get_entry("ani-cc-mni")
    with pytest.raises(UserError, match="not a model file, URL or registered model name"):
        foundation.load_pretrained("no-such-model", device="cpu")


@pytest.mark.parametrize("entry, message", [
    ({"url": "https://example.org/m.safetensors"}, "needs its sha256"),
    ({"url": "https://example.org/m.safetensors", "sha256": "abc"}, "64 hex digits"),
    ({"path": "../outside.safetensors"}, "must stay inside"),
    ({"description": "nothing to fetch"}, "needs a 'url', a 'path' or a 'neurochem' model"),
    ({"path": "m.safetensors", "colour": "blue"}, r"unknown field\(s\) \['colour'\]"),
    ({"path": "m.safetensors", "size": -1}, "size must be"),
    ({"path": "m.safetensors", "version": 0}, "version must be a whole number"),
])
def test_malformed_entries_are_named(registry, entry, message):
    path = registry({"bad": entry})
    with pytest.raises(UserError, match=rf"{path}: model 'bad': .*{message}"):
        load_registry()


def test_unreadable_registry_file_is_named(tmp_path, monkeypatch):
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    monkeypatch.setenv("FOUNDATION_REGISTRY", str(broken))
    with pytest.raises(UserError, match="broken.json: not a readable registry file"):
        load_registry()
    monkeypatch.setenv("FOUNDATION_REGISTRY", str(tmp_path / "absent.json"))
    with pytest.raises(UserError, match="absent.json: registry file not found"):
        load_registry()
