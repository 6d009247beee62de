"""One door to a trained model, whatever form it is in: a registry name, a URL, an `hf://` path,
a `.safetensors` model file, a training run directory (its `model.safetensors`, else its newest
training checkpoint) or a training checkpoint `ckpt-*.pt` (rebuilt from the model config stored
in it, with the EMA weights: what the run would have exported).

This module stands above both the hub (distributable files, names, downloads) and the trainer
(whose checkpoints it reads), so that neither needs to know the other (DESIGN.md, layers).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from foundation.errors import CheckpointError, UserError
from foundation.hub.format import load_model_file
from foundation.hub.resolve import is_remote_or_registered, load_published, resolve_device


def load_pretrained(name_or_path: str | os.PathLike, device: str | torch.device = "auto"):
    """A model from anything `load_model` takes; in eval mode on `device` ("auto": GPU if any)."""
    return load_model(name_or_path, resolve_device(device))


def load_model(path_or_name: str | os.PathLike, device: str | torch.device = "cpu"):
    """The model at `path_or_name`, on `device`, in eval mode."""
    if is_remote_or_registered(path_or_name):  # a registry name, https:// or hf://: the hub fetches it
        return load_published(path_or_name, device)
    path = Path(path_or_name).expanduser()
    if path.is_dir():
        return _from_run_dir(path, device)
    if path.suffix == ".safetensors":
        return load_model_file(path, device)
    if path.suffix == ".pt":
        return load_training_checkpoint(path, device)
    if path.exists():
        raise CheckpointError(f"{path}: not a model file (expected .safetensors, a training "
                              "checkpoint .pt, or a run directory)")
    if os.sep in str(path_or_name) or path.suffix in (".safetensors", ".pt"):
        raise UserError(f"{path_or_name}: no such model file or run directory")
    return load_published(path_or_name, device)  # an unknown name: the hub's error lists the known ones


def _from_run_dir(run_dir: Path, device):
    exported = run_dir / "model.safetensors"
    if exported.is_file():
        return load_model_file(exported, device)
    from foundation.train.checkpoint import list_checkpoints

    found = list_checkpoints(run_dir)
    if not found:
        raise UserError(f"{run_dir}: a directory without model.safetensors or training checkpoints")
    return load_training_checkpoint(found[-1][1], device)


def load_training_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu", ema: bool = True):
    """Rebuild the model of a training checkpoint; with `ema`, its averaged weights."""
    from foundation.models import build_model
    from foundation.train.checkpoint import read_checkpoint

    path = Path(path)
    state = read_checkpoint(path)
    try:
        model = build_model(state["model_config"])
        weights = state["engine"]["model"]
        dtype = next((t.dtype for k, t in weights.items()
                      if t.is_floating_point() and not k.endswith("reference_energies")), None)
        if dtype is not None:
            model = model.to(dtype)
        model.load_state_dict(weights)
    except (KeyError, RuntimeError, UserError) as e:
        raise CheckpointError(f"{path}: cannot rebuild the model from this checkpoint "
                              f"({str(e).splitlines()[0]})") from None
    if ema and state.get("ema"):
        params = dict(model.named_parameters())
        with torch.no_grad():
            for name, value in state["ema"]["shadow"].items():
                params[name].copy_(value)
    return model.to(device).eval()
