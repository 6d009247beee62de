"""Tiny recipe runs on the embedded data: the smoke-sized ANI (`experiment=smoke`: widths 16-8, a
short AEV), a few dozen steps on CPU, all under one temporary `out_dir`. One DFT-pretrained model
is shared by the tests that transfer from it."""

from __future__ import annotations

from pathlib import Path

import pytest

from foundation.train.run import train

TINY = ["experiment=smoke", "logger.progress_bar=false", "trainer.device=cpu", "trainer.ckpt_every=1000",
        "trainer.val_every=1000"]


@pytest.fixture(scope="session")
def runs_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("recipe_runs")


@pytest.fixture(scope="session")
def tiny(runs_dir) -> list[str]:
    """Overrides that make any recipe a seconds-long run under `runs_dir`."""
    return [*TINY, f"out_dir={runs_dir}"]


@pytest.fixture(scope="session")
def pretrained(tiny) -> Path:
    """A smoke-sized model pretrained on the embedded DFT data (150 steps)."""
    return train([*tiny, "name=pretrain", "trainer.max_steps=150"], recipe="pretrain", quiet=True).model_path


@pytest.fixture(scope="session")
def pretrained_ensemble(pretrained, runs_dir) -> Path:
    """Two members of one architecture with different weights, as a pretrained ensemble file."""
    import torch

    from foundation.hub.format import save_model
    from foundation.loading import load_model
    from foundation.models.ensemble import EnsembleModel

    first, second = load_model(pretrained), load_model(pretrained)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in second.parameters():
            p.add_(0.01 * torch.randn_like(p))
    return save_model(EnsembleModel.from_members([first, second]), runs_dir / "pretrained_ensemble.safetensors")

