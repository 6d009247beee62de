"""Foundation: pretraining and fine-tuning of machine-learning interatomic potentials."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "calculator", "load_pretrained"]


def load_pretrained(name_or_path, device="auto"):
    """A trained model, in eval mode on `device` ("auto": the GPU if there is one), from a
    registry name (`foundation hub list`), an `https://` URL, `hf://org/repo/file.safetensors`,
    a `.safetensors` file, a training checkpoint or a run directory. Downloads are verified
    (sha256) and cached; `FOUNDATION_OFFLINE=1` uses the cache only."""
    from foundation.hub.resolve import load_pretrained as _load  # lazy: keeps `import foundation` light

    return _load(name_or_path, device)


def calculator(name_or_model, head=None, device="auto", **kwargs):
    """An ASE calculator (`FoundationCalculator`) for a model or anything `load_pretrained`
    takes; `head` picks the fidelity (default: the model's default head). Keyword arguments go
    to `FoundationCalculator` (e.g. `dtype=torch.float64` for MD)."""
    from foundation.calculators import FoundationCalculator

    return FoundationCalculator(name_or_model, head=head, device=device, **kwargs)
