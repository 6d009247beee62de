"""Files from outside are refused before anything in them runs: pickles (in a training checkpoint
or served as a model), safetensors headers that lie about shapes, and configs whose `_target_`
names code outside the allow-list. Downloads come from a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import functools
import http.server
import json
import pathlib
import struct
import threading

import pytest
import torch
from safetensors.torch import load_file, save_file

import foundation
from foundation.errors import CheckpointError
from foundation.hub.cache import cache_dir
from foundation.hub.format import HEADER_KEY, load_model_file, read_header, save_model
from foundation.loading import load_model, load_training_checkpoint
from foundation.models import build_model
from foundation.train.checkpoint import save_checkpoint

TINY = {"name": "ani", "elements": [1, 6, 7, 8], "heads": ["wb97x_631gs"], "radial_num_shifts": 8,
        "angular_num_shifts": 2, "angular_num_sections": 4, "hidden": {s: [8] for s in "HCNO"}}


class Payload:
    """Unpickling this touches `marker`: proof that a loader ran code named by the file."""

    def __init__(self, marker: pathlib.Path):
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.touch, (self.marker,)


@pytest.fixture
def good_file(tmp_path):
    torch.manual_seed(0)
    return save_model(build_model(TINY), tmp_path / "good.safetensors")


@pytest.fixture
def served(tmp_path, monkeypatch):
    """A folder served over HTTP on 127.0.0.1 (returns (folder, base URL)); the model cache in tmp_path."""
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("FOUNDATION_OFFLINE", raising=False)
    monkeypatch.setenv("FOUNDATION_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "www"
    folder.mkdir()
    handler = functools.partial(_Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _cached_files():
    return [p for p in cache_dir().rglob("*") if p.is_file() and not p.name.endswith(".lock")]


def _pickled_checkpoint(path: pathlib.Path, marker: pathlib.Path) -> pathlib.Path:
    torch.save({"format": "foundation-train-checkpoint", "version": 1, "step": 1,
                "model_config": TINY, "payload": Payload(marker)}, path)
    return path


# ---- pickles ------------------------------------------------------------------------------------

def test_a_pickle_in_a_training_checkpoint_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    path = _pickled_checkpoint(tmp_path / "ckpt-00000001.pt", marker)
    with pytest.raises(CheckpointError, match="ckpt-00000001.pt: not a readable training checkpoint"):
        load_model(path)
    assert not marker.exists()


@pytest.mark.integration  # a local HTTP server
@pytest.mark.parametrize("name", ["model.pt", "model.safetensors"])
def test_a_pickle_served_as_a_model_is_refused_and_not_cached(served, tmp_path, name):
    folder, base = served
    marker = tmp_path / "pwned"
    _pickled_checkpoint(folder / name, marker)
    with pytest.raises(CheckpointError, match=f"{name}: not a safetensors file.*deleted"):
        foundation.load_pretrained(f"{base}/{name}", device="cpu")
    assert not marker.exists() and _cached_files() == []


# ---- headers that lie -----------------------------------------------------------------------------

def _edit_safetensors_header(source: pathlib.Path, target: pathlib.Path, edit) -> pathlib.Path:
    """Rewrite the JSON header of a safetensors file (8-byte length, JSON, data), data untouched."""
    raw = source.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    edit(header)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    target.write_bytes(struct.pack("<Q", len(text)) + text + raw[8 + n:])
    return target


def test_a_safetensors_header_that_lies_about_a_shape_is_refused(good_file, tmp_path):
    name = "networks.C.layers.0.weight"

    def transpose(header):  # same byte count: only the model config can tell
        header[name]["shape"] = header[name]["shape"][::-1]

    def widen(header):  # more elements than bytes: the file itself is inconsistent
        header[name]["shape"] = [header[name]["shape"][0] * 2, header[name]["shape"][1]]

    transposed = _edit_safetensors_header(good_file, tmp_path / "transposed.safetensors", transpose)
    with pytest.raises(CheckpointError, match=rf"transposed.safetensors: tensor {name} has shape"):
        load_model_file(transposed)
    widened = _edit_safetensors_header(good_file, tmp_path / "widened.safetensors", widen)
    with pytest.raises(CheckpointError, match="widened.safetensors: not a safetensors model file"):
        load_model_file(widened)
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(good_file.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="truncated.safetensors: not a safetensors model file"):
        load_model_file(truncated)


# ---- the _target_ allow-list --------------------------------------------------------------------

def _with_header(good_file: pathlib.Path, target: pathlib.Path, edit) -> pathlib.Path:
    header = read_header(good_file)
    edit(header)
    save_file(load_file(good_file), target, metadata={HEADER_KEY: json.dumps(header)})
    return target


@pytest.mark.parametrize("where, target", [
    ("config", "os.system"),
    ("config", "torch.hub.load"),  # under torch., but it fetches and runs code
    ("config", "foundation_evil.models.X"),
    ("training", "subprocess.Popen"),  # anywhere in the header, not only the model config
    ("config.hidden", "builtins.eval"),
])
def test_a_header_naming_code_outside_the_allow_list_is_refused(good_file, tmp_path, where, target):
    def plant(header):
        node = header
        for key in where.split("."):
            node = node.setdefault(key, {})
        node["_target_"] = target

    path = _with_header(good_file, tmp_path / "evil.safetensors", plant)
    with pytest.raises(CheckpointError, match=rf"evil.safetensors: .*_target_='{target}' is not allowed"):
        load_model_file(path)


def test_allowed_targets_load(good_file, tmp_path):
    def plant(header):
        header["config"]["_target_"] = "foundation.models.ani.ANIConfig"
        header["training"] = {"optimizer": {"_target_": "torch.optim.AdamW"}}

    assert load_model_file(_with_header(good_file, tmp_path / "ok.safetensors", plant)).heads == ["wb97x_631gs"]


def test_a_training_checkpoint_naming_code_outside_the_allow_list_is_refused(tmp_path):
    model = build_model(TINY)
    path = save_checkpoint(tmp_path, 1, {"engine": {"model": model.state_dict()},
                                         "model_config": {**TINY, "_target_": "os.system"}})
    with pytest.raises(CheckpointError, match=r"ckpt-00000001.pt: .*'os.system' is not allowed"):
        load_training_checkpoint(path)


@pytest.mark.integration  # a local HTTP server
def test_a_downloaded_header_naming_outside_code_is_refused_and_not_loaded(served, good_file):
    folder, base = served

    def plant(header):
        header["config"]["_target_"] = "os.system"

    _with_header(good_file, folder / "evil.safetensors", plant)
    with pytest.raises(CheckpointError, match="'os.system' is not allowed"):
        foundation.load_pretrained(f"{base}/evil.safetensors", device="cpu")
