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


def test_weights_matched_by_name_take_their_own_strength():
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Linear(2, 1))
    anchor = Anchor(model, 1.0, by_name={"0.*": 10.0, "1.bias": 0.0})
    assert anchor.strengths == {"0.weight": 10.0, "0.bias": 10.0, "1.weight": 1.0, "1.bias": 0.0}
    with torch.no_grad():
        for p in model.parameters():
            p += 1.0
    # 0.weight 6 + 0.bias 2 entries at 10, 1.weight 2 at 1, 1.bias free
    assert float(anchor.penalty(model).detach()) == pytest.approx(0.5 * (10.0 * 8 + 1.0 * 2), rel=1e-6)
    free = Anchor(model, 0.0, by_name={"*": 0.0})
    assert float(free.penalty(model)) == 0.0


def test_a_pattern_that_matches_no_weight_is_refused_in_one_line():
    from foundation.errors import UserError

    with pytest.raises(UserError, match=r"trainer.l2sp_by_name: 'networks.Cl.\*' matches no trainable parameter"):
        Anchor(torch.nn.Linear(3, 2), 1.0, by_name={"networks.Cl.*": 1.0})


def test_by_name_strengths_come_from_the_command_line_and_anchor_alone(tiny_run):
    from foundation.train.compose import load_run_config

    cfg = load_run_config(["recipe=finetune_l2sp", "trainer.init_from=ani-1x",
                           "trainer.l2sp_by_name={networks.N.*:1e-2,*.layers.0.*:0}"])
    assert cfg.trainer.l2sp_by_name == {"networks.N.*": 1e-2, "*.layers.0.*": 0.0}
    trainer = Trainer(tiny_run("by_name", max_steps=3, l2sp=0.0, l2sp_by_name={"*": 1e3}))
    assert trainer.anchor is not None and set(trainer.anchor.strengths.values()) == {1e3}
    assert "loss/l2sp" in (trainer.train().run_dir / "metrics.csv").read_text().splitlines()[0]
