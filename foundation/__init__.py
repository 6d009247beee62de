"""Foundation: pretraining and fine-tuning of machine-learning interatomic potentials."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "calculator", "finetune", "load_pretrained"]


def load_pretrained(name_or_path, device="auto"):
    """A trained model, in eval mode on `device` ("auto": the GPU if there is one), from a
    registry name (`foundation hub list`), an `https://` URL, `hf://org/repo/file.safetensors`,
    a `.safetensors` file, a training checkpoint or a run directory. Downloads are verified
    (sha256) and cached; `FOUNDATION_OFFLINE=1` uses the cache only."""
    from foundation.loading import load_pretrained as _load  # lazy: keeps `import foundation` light

    return _load(name_or_path, device)


def calculator(name_or_model, head=None, device="auto", **kwargs):
    """An ASE calculator (`FoundationCalculator`) for a model or anything `load_pretrained`
    takes; `head` picks the fidelity (default: the model's default head). Keyword arguments go
    to `FoundationCalculator` (e.g. `dtype=torch.float64` for MD)."""
    from foundation.calculators import FoundationCalculator

    return FoundationCalculator(name_or_model, head=head, device=device, **kwargs)


def finetune(model, data, energy_key="energy", forces_key=None, fidelity=None, **kwargs):
    """Fine-tune `model` (a name, path, URL or model) on `data` (an ASE-readable file or a list of
    `ase.Atoms`) labelled with energies (eV) under `energy_key` and, optionally, forces (eV/Å)
    under `forces_key`, as `fidelity` (a new head, or one the model has). Keyword arguments:
    `val_fraction`, `out`, `overrides` (Hydra, e.g. `["trainer.max_steps=3000"]`), `index`,
    `verbose`, `molecule_key`, `allow_worse`, `members` (an ensemble start such as "ani-1x" is
    fine-tuned member by member; how many). Returns a `FinetuneResult` (model and report paths, before/after validation
    errors); see `foundation.finetuning` for the steps."""
    from foundation.finetuning import finetune as _finetune

    return _finetune(model, data, energy_key=energy_key, forces_key=forces_key, fidelity=fidelity, **kwargs)
