"""L2-SP (trainer.l2sp): a pull toward the start's weights that holds a fine-tune near its start and
survives a resume exactly."""

import pytest
import torch

from foundation.train.anchor import Anchor
from foundation.train.trainer import Trainer


def _distance(model, start) -> float:
    return sum(float(((p.detach() - start[n]) ** 2).sum()) for n, p in model.named_parameters() if n in start)


def test_penalty_is_half_strength_times_squared_distance():
    model = torch.nn.Linear(3, 2)
    anchor = Anchor(model, 4.0)
    with torch.no_grad():
        model.weight += 0.5  # 6 entries moved by 0.5
    assert float(anchor.penalty(model).detach()) == pytest.approx(0.5 * 4.0 * 6 * 0.25, rel=1e-6)  # float32 weights
    frozen = torch.nn.Linear(3, 2)
    frozen.bias.requires_grad_(False)
    assert set(Anchor(frozen, 1.0).start) == {"weight"}  # frozen weights cannot move: no pull


def test_a_strong_pull_keeps_the_weights_near_the_start(tiny_run):
    free = Trainer(tiny_run("free", max_steps=6, lr=1e-2))
    start = {n: p.detach().clone() for n, p in free.model.named_parameters()}
    free.train()
    held = Trainer(tiny_run("held", max_steps=6, lr=1e-2, l2sp=1e3))
    assert all(torch.equal(start[n], p) for n, p in held.model.named_parameters())  # same seed, same start
    result = held.train()
    assert _distance(held.model, start) < 0.5 * _distance(free.model, start)
    assert "loss/l2sp" in (result.run_dir / "metrics.csv").read_text().splitlines()[0]


def test_a_resumed_run_keeps_the_first_start_as_its_anchor(tiny_run):
    straight = Trainer(tiny_run("straight", l2sp=10.0))
    straight.train()
    first = Trainer(tiny_run("split", l2sp=10.0))
    first.train(stop_at=5)
    second = Trainer(tiny_run("split", l2sp=10.0, resume=True))
    assert all(torch.equal(second.anchor.start[n], straight.anchor.start[n]) for n in straight.anchor.start)
    second.train()
    for name, p in straight.model.state_dict().items():
        assert torch.equal(p, second.model.state_dict()[name]), name


def test_the_l2sp_recipe_is_finetune_with_a_pull_instead_of_frozen_layers():
    from foundation.train.compose import load_run_config

    plain = load_run_config(["recipe=finetune", "trainer.init_from=ani-1x"])
    l2sp = load_run_config(["recipe=finetune_l2sp", "trainer.init_from=ani-1x"])
    assert l2sp.trainer.l2sp > 0 and l2sp.trainer.freeze == [] and plain.trainer.l2sp == 0
    assert (l2sp.trainer.lr, l2sp.data.fidelities) == (plain.trainer.lr, plain.data.fidelities)
    # it trains to the end of its schedule: early stopping on the small molecules picked noisy steps
    assert l2sp.trainer.early_stopping_patience == 0 and plain.trainer.early_stopping_patience > 0
