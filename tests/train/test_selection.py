"""What chooses the weights a run keeps: the relative-energy RMSE of validation, the `auto`
metric, and the floor (early stopping never keeps weights worse than the start)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from foundation.data.batch import collate
from foundation.data.sample import Sample
from foundation.errors import UserError
from foundation.loading import load_model
from foundation.train.loss import LossConfig
from foundation.train.selection import resolve, validation_profile
from foundation.train.trainer import Trainer
from foundation.train.validate import validate

from tests.conftest import FIDELITY, file_data


def _samples(per_molecule: dict[str, int], forces: bool = False) -> list[Sample]:
    out = []
    for name, n in per_molecule.items():
        for k in range(n):
            positions = [[0, 0, 0], [0, 0, 0.74 + 0.01 * k]]
            labels = {"cc": np.zeros((2, 3))} if forces else {}
            out.append(Sample(numbers=[1, 1], positions=positions, energies={"cc": -30.0 + 0.1 * k},
                              forces=labels, molecule=name, source=f"{name}:{k}"))
    return out


def test_validation_scores_energies_relative_to_each_molecules_mean():
    samples = _samples({"a": 3, "b": 2, "c": 1})
    rng = np.random.default_rng(0)
    offset = {"a": 5.0, "b": -3.0, "c": 7.0}  # per molecule: no relative error
    noise = rng.normal(0, 0.01, len(samples))
    pred = torch.tensor([s.energies["cc"] + offset[s.molecule] + e for s, e in zip(samples, noise)])

    def predict_fn(batch, heads, force_heads):
        return {"energy": {"cc": pred[: batch.n_structures]}}

    val = validate(predict_fn, [collate(samples, ["cc"])], ["cc"], LossConfig(1.0, 0.0), torch.device("cpu"),
                   torch.float64)
    # By hand: molecules with two structures or more, errors less their molecule's mean error.
    expected = np.concatenate([noise[:3] - noise[:3].mean(), noise[3:5] - noise[3:5].mean()])
    assert val["val/cc/relative_energy_rmse"] == pytest.approx(np.sqrt(np.mean(expected**2)), rel=1e-9)
    assert val["val/cc/energy_rmse"] > 1.0  # the offsets dominate the absolute error


def test_auto_is_the_relative_energy_rmse_with_conformers_else_the_energy_rmse_and_adds_forces():
    def auto(samples, forces_weight=0.1):
        profile = lambda: validation_profile([collate(samples, ["cc"])], ["cc"])  # noqa: E731
        return resolve("val/cc/auto", ["cc"], profile, forces_weight)

    assert auto(_samples({"a": 3, "b": 3})).terms == ((1.0, "val/cc/relative_energy_rmse"),)
    assert auto(_samples({m: 1 for m in "abcdef"})).terms == ((1.0, "val/cc/energy_rmse"),)
    assert auto(_samples({"a": 2, **{m: 1 for m in "bcdef"}})).terms == ((1.0, "val/cc/energy_rmse"),)
    with_forces = auto(_samples({"a": 3, "b": 3}, forces=True))
    assert with_forces.terms == ((1.0, "val/cc/relative_energy_rmse"), (0.1, "val/cc/forces_rmse"))
    assert with_forces.describe() == ("validation relative-energy RMSE (energies relative to each "
                                      "molecule's mean) + 0.1 Å × forces RMSE")
    assert with_forces.value({"val/cc/relative_energy_rmse": 0.1, "val/cc/forces_rmse": 0.5}) == pytest.approx(0.15)
    assert auto(_samples({"a": 3}, forces=True), forces_weight=0.0).terms == ((1.0, "val/cc/relative_energy_rmse"),)


def test_a_weighted_sum_and_mistakes():
    plain = resolve("val/loss", ["cc"], dict, 1.0)
    assert plain.terms == ((1.0, "val/loss"),) and not plain.composite
    summed = resolve("val/cc/energy_rmse + 2*val/cc/forces_mae", ["cc"], dict, 1.0)
    assert summed.terms == ((1.0, "val/cc/energy_rmse"), (2.0, "val/cc/forces_mae"))
    with pytest.raises(UserError, match="'x' is not a number"):
        resolve("x*val/loss", ["cc"], dict, 1.0)
    with pytest.raises(UserError, match="fidelities are cc"):
        resolve("val/dft/auto", ["cc"], dict, 1.0)
    with pytest.raises(UserError, match="terms are validation keys"):
        resolve("loss", ["cc"], dict, 1.0)


def _start_weights(trainer):
    return {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}


def test_no_step_better_than_the_start_writes_the_start(tiny_run):
    # A rate this high only makes the model worse: the start must be what is written.
    trainer = Trainer(tiny_run("worse", max_steps=6, val_every=3, lr=5.0, warmup_steps=0,
                               early_stopping_patience=5, early_stopping_metric=f"val/{FIDELITY}/auto"))
    start = _start_weights(trainer)
    result = trainer.train()
    assert result.kept_start and result.best_step == 0
    assert result.note.startswith("not better: fine-tuning did not improve on the start's validation")
    assert "the starting weights are written" in result.note and "\n" not in result.note
    assert result.selection.startswith("validation energy RMSE")  # one conformer per molecule there
    exported = load_model(result.model_path).state_dict()
    assert all(torch.equal(exported[k], start[k].to(exported[k].dtype)) for k in start)
    assert trainer.state.best_trained_metric > trainer.state.start_metric

    allowed = Trainer(tiny_run("allowed", max_steps=6, val_every=3, lr=5.0, warmup_steps=0,
                               early_stopping_patience=5, allow_worse=True,
                               early_stopping_metric=f"val/{FIDELITY}/auto"))
    start = _start_weights(allowed)
    result = allowed.train()
    assert not result.kept_start and result.best_step in (3, 6) and result.note is None
    exported = load_model(result.model_path).state_dict()
    assert not all(torch.equal(exported[k], start[k].to(exported[k].dtype)) for k in start)


def test_a_run_that_improves_keeps_its_best_step_and_logs_the_selection(tiny_run, xyz_path):
    # Half of 8 molecules × 4 conformers held out: validation has several conformers per molecule.
    data = file_data(xyz_path, val_fraction=0.5)
    result = Trainer(tiny_run("better", data=data, max_steps=12, val_every=6, early_stopping_patience=3,
                              early_stopping_metric=f"val/{FIDELITY}/auto")).train()
    assert not result.kept_start and result.best_step in (6, 12)
    assert result.selection.startswith("validation relative-energy RMSE")
    import csv

    with open(result.run_dir / "metrics.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("val/selection")]
    assert [int(r["step"]) for r in rows] == [0, 6, 12]
    first = rows[0]
    relative = float(first[f"val/{FIDELITY}/relative_energy_rmse"])
    forces = float(first[f"val/{FIDELITY}/forces_rmse"])
    assert float(first["val/selection"]) == pytest.approx(relative + 1.0 * forces, rel=1e-6)
    assert math.isfinite(relative)


def test_the_floor_needs_no_validation_at_start_setting(tiny_run, xyz_path):
    trainer = Trainer(tiny_run("nostart", data=file_data(xyz_path), max_steps=3, val_every=3, lr=5.0,
                               warmup_steps=0, val_at_start=False, early_stopping_patience=2))
    result = trainer.train()
    assert result.kept_start and math.isfinite(trainer.state.start_metric)


def test_the_bootstrap_of_the_whole_set_is_validate_and_its_error_shrinks_with_more_structures():
    """`foundation.train.significance`: resampled sums go through the same metrics as a whole
    validation pass (all weights 1: exactly validate's numbers), and the standard error of a
    relative-energy RMSE falls as molecules and conformers are added (about 1/√n)."""
    from foundation.train.significance import Bootstrap, weighted_sums, standard_error
    from foundation.train.validate import metrics_from_sums

    rng = np.random.default_rng(0)

    def samples(n_molecules, n_conformers):
        return [Sample([8, 1, 1], rng.normal(size=(3, 3)) * [1, 2, 3], {"cc": float(rng.normal())},
                       {"cc": rng.normal(size=(3, 3))}, molecule=f"m{m}")
                for m in range(n_molecules) for _ in range(n_conformers)]

    def predict_fn(batch, heads, force_heads):  # a fixed "model": labels plus noise
        return {"energy": {"cc": batch.energy["cc"] + torch.as_tensor(rng.normal(size=batch.n_structures))},
                "forces": {"cc": batch.forces["cc"] + 0.1}}

    config = LossConfig(1.0, 0.1, {})
    heads = ["cc"]

    def error(n_molecules, n_conformers):
        rows: list = []
        batches = [collate(samples(n_molecules, n_conformers), fidelities=heads)]
        val = validate(predict_fn, batches, heads, config, torch.device("cpu"), torch.float64, rows=rows)
        sums = {k: float(v[0]) for k, v in weighted_sums(rows, np.ones((1, Bootstrap(rows).n))).items()}
        assert metrics_from_sums(sums, heads, config) == pytest.approx(val)

        def metric(s):
            return metrics_from_sums(s, heads, config)["val/cc/relative_energy_rmse"]

        return standard_error(rows, metric, draws=300, seed=0)

    small, large = error(3, 4), error(30, 8)
    assert 0 < large < small / 3  # 20x the structures: about 1/4.5 of the error
