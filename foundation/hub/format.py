"""The distributable model file: one `.safetensors` holding the weights, with everything needed to
rebuild and trust the model in its header (safetensors `metadata`, a str -> str map) under the key
`foundation`, as JSON:

    {"format_version": 1, "library_version": "0.1.0", "model": "ani", "config": {...},
     "elements": [1, 6, 7, 8], "cutoff": 5.2, "units": {"length": "Å", "energy": "eV", ...},
     "heads": {"wb97x_631gs": {"reference_energies": {"1": -13.6, ...}}, ...},
     "charges": [0], "multiplicities": [1],
     "data_manifest_hash": "...", "metrics": {...}, "training": {...}}

`charges` and `multiplicities` are the total charges and spin multiplicities the model was trained
on (`foundation.models.states`); a file without them (any written before they were recorded, and
every shipped model) is a neutral-singlet model.

Loading never unpickles: the model is rebuilt from `config` through the model registry (which
only knows models in `foundation.models`, never arbitrary classes; a header whose `_target_`
names anything outside `registry.ALLOWED_TARGETS` is refused outright), then the tensors are
checked against it name by name and shape by shape before they are copied in."""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path
from typing import Any

import torch

from foundation.files import replacing
from foundation.errors import CheckpointError, UserError
from foundation.models.states import model_states, set_states, states_from_header

FORMAT_VERSION = 1
HEADER_KEY = "foundation"
UNITS = {"length": "Å", "energy": "eV", "forces": "eV/Å"}
_RESERVED = {"format_version", "library_version", "model", "config", "elements", "cutoff", "units", "heads",
             "charges", "multiplicities"}


def model_header(model, metadata: dict | None = None) -> dict[str, Any]:
    """The header dict `save_model` writes (`metadata` adds keys such as `metrics`)."""
    from foundation import __version__

    clash = _RESERVED & set(metadata or {})
    if clash:
        raise ValueError(f"metadata may not set {sorted(clash)}: they describe the model itself")
    refs = model.reference_energies_dict()
    charges, multiplicities = model_states(model)
    header = {
        "format_version": FORMAT_VERSION,
        "library_version": __version__,
        "model": model.config.name,
        "config": dataclasses.asdict(model.config),
        "elements": [int(z) for z in model.elements],
        "cutoff": float(model.cutoff),
        "units": UNITS,
        "heads": {h: {"reference_energies": {str(z): e for z, e in refs[h].items()}} for h in model.heads},
        "charges": list(charges),
        "multiplicities": list(multiplicities),
        "data_manifest_hash": None,
    }
    header.update(metadata or {})
    return _finite(header)


def save_model(model, path: str | os.PathLike, metadata: dict | None = None) -> Path:
    """Write `model` (its current weights) and its header to `path`, atomically."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = json.dumps(model_header(model, metadata), ensure_ascii=False, allow_nan=False)
    # Own, contiguous CPU copies: safetensors refuses tensors that share storage.
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    with replacing(path) as tmp:
        save_file(tensors, str(tmp), metadata={HEADER_KEY: header})
    return path


def read_header(path: str | os.PathLike) -> dict[str, Any]:
    """The `foundation` header of a model file, without loading any weights."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such model file")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata()
    except Exception as e:  # safetensors' own error type for a foreign or truncated file
        raise CheckpointError(f"{path}: not a safetensors model file ({str(e).splitlines()[0]})") from None
    return _parse_header(path, metadata)


def load_model_file(path: str | os.PathLike, device: str | torch.device = "cpu"):
    """Rebuild the model described by the header of `path` and load its weights; in eval mode."""
    from safetensors import safe_open

    from foundation.models import build_model

    path = Path(path)
    header = read_header(path)
    try:
        model = build_model(header["config"])
    except UserError as e:
        raise CheckpointError(f"{path}: {e}") from None
    expected = model.state_dict()
    with safe_open(str(path), framework="pt", device="cpu") as f:
        _check_tensors(path, expected, {k: list(f.get_slice(k).get_shape()) for k in f.keys()})
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    dtype = _weights_dtype(tensors)
    if dtype is not None:
        model = model.to(dtype)
    model.load_state_dict(tensors, strict=True)
    if header.get("default_head") in model.heads:  # e.g. the head a fine-tune added
        model.default_head = header["default_head"]
    set_states(model, *states_from_header(header))
    return model.to(device).eval()


def _parse_header(path: Path, metadata: dict | None) -> dict[str, Any]:
    if not metadata or HEADER_KEY not in metadata:
        raise CheckpointError(f"{path}: safetensors file without a Foundation header: weights alone "
                              "cannot say which model they belong to")
    try:
        header = json.loads(metadata[HEADER_KEY])
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: Foundation header is not valid JSON ({e})") from None
    version = header.get("format_version") if isinstance(header, dict) else None
    if not isinstance(version, int):
        raise CheckpointError(f"{path}: Foundation header has no format_version")
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{path}: model format {version} is newer than this library reads "
                              f"({FORMAT_VERSION}); upgrade foundation")
    if not isinstance(header.get("config"), dict):
        raise CheckpointError(f"{path}: Foundation header has no model config")
    from foundation.models.registry import check_targets

    try:  # before anything is built: a downloaded header may name code only from the allow-list
        check_targets(header, "header")
    except UserError as e:
        raise CheckpointError(f"{path}: {e}") from None
    return header


def _check_tensors(path: Path, expected: dict[str, torch.Tensor], found: dict[str, list[int]]) -> None:
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    if missing or extra:
        raise CheckpointError(f"{path}: weights disagree with the model config in its header "
                              f"(missing {missing[:3]}, unexpected {extra[:3]})")
    for name, tensor in expected.items():
        if list(tensor.shape) != found[name]:
            raise CheckpointError(f"{path}: tensor {name} has shape {tuple(found[name])}, the header's "
                                  f"config gives {tuple(tensor.shape)}")


def _weights_dtype(tensors: dict[str, torch.Tensor]) -> torch.dtype | None:
    """The dtype the weights were trained in (reference energies are always float64)."""
    for name, t in tensors.items():
        if t.is_floating_point() and not name.endswith("reference_energies"):
            return t.dtype
    return None


def _finite(value):
    """JSON has no inf/NaN: non-finite floats (an untouched 'best' metric) become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
