"""Learning-rate schedules and the weight average."""

from __future__ import annotations

import pytest
import torch

from foundation.train.ema import EMA
from foundation.train.schedule import Schedule


def _optimizer():
    return torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))], lr=1.0)


def test_linear_warmup_then_cosine_to_min_lr():
    s = Schedule(_optimizer(), lr=1e-3, max_steps=110, warmup_steps=10, kind="cosine", min_lr=1e-5)
    assert s.lr_at(1) == pytest.approx(1e-4) and s.lr_at(10) == pytest.approx(1e-3)
    assert s.lr_at(60) == pytest.approx((1e-3 + 1e-5) / 2)
    assert s.lr_at(110) == pytest.approx(1e-5) and s.lr_at(500) == pytest.approx(1e-5)
    lrs = [s.lr_at(k) for k in range(10, 111)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))
    assert s.set_step(5) == pytest.approx(5e-4) and s.optimizer.param_groups[0]["lr"] == pytest.approx(5e-4)


def test_plateau_cuts_the_rate_when_validation_stalls_and_resumes_its_state():
    s = Schedule(_optimizer(), lr=1e-3, max_steps=100, kind="plateau", plateau_factor=0.5, plateau_patience=1)
    for metric in (1.0, 0.9, 0.95, 0.96):
        s.observe(metric)
    assert s.lr_at(50) == pytest.approx(5e-4)
    restored = Schedule(_optimizer(), lr=1e-3, max_steps=100, kind="plateau", plateau_patience=1)
    restored.load_state_dict(s.state_dict())
    assert restored.lr_at(50) == s.lr_at(50) and restored.best == 0.9
    constant = Schedule(_optimizer(), lr=1e-3, max_steps=100, kind="constant")
    constant.observe(5.0)
    assert constant.lr_at(99) == 1e-3


def test_ema_averages_trainable_weights_only_and_restores_training_weights_exactly():
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Linear(2, 1))
    model[0].weight.requires_grad_(False)
    ema = EMA(model, decay=0.5)
    assert "0.weight" not in ema.shadow
    start = model[1].weight.detach().clone()
    with torch.no_grad():
        model[1].weight.add_(1.0)
    ema.update(model)  # first update: decay min(0.5, 2/11)
    d = 2 / 11
    assert torch.allclose(ema.shadow["1.weight"], d * start + (1 - d) * (start + 1.0))
    training = {n: p.detach().clone() for n, p in model.named_parameters()}
    with ema.applied(model):
        assert torch.equal(model[1].weight, ema.shadow["1.weight"])
    assert all(torch.equal(p, training[n]) for n, p in model.named_parameters())
    other = EMA(model, decay=0.5)
    other.load_state_dict(ema.state_dict())
    assert torch.equal(other.shadow["1.weight"], ema.shadow["1.weight"]) and other.num_updates == 1
