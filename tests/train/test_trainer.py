"""The training loop end to end on a tiny model: learning, exact resume, freezing, non-finite steps,
initialising from another model, early stopping."""

from __future__ import annotations

import csv
import dataclasses
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from foundation.data.ase_io import write_extxyz
from foundation.data.sources.in_memory import FileDataConfig
from foundation.data.sample import Sample
from foundation.data.sources.shards import ShardDataConfig
from foundation.errors import UserError
from foundation.loading import load_model
from foundation.train.checkpoint import list_checkpoints
from foundation.train.trainer import Trainer, TrainingDiverged

from tests.conftest import FIDELITY

from .conftest import HookedData


def _rows(run_dir):
    with open(run_dir / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def _params(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def test_training_reduces_the_validation_loss_and_exports_the_model(tiny_run):
    result = Trainer(tiny_run(max_steps=60, val_every=30)).train()
    assert result.status == "completed" and result.step == 60
    val = {int(r["step"]): float(r["val/loss"]) for r in _rows(result.run_dir) if r["val/loss"]}
    assert sorted(val) == [0, 30, 60]
    assert val[60] < 0.75 * val[0]
    row = _rows(result.run_dir)[-1]
    for key in ("loss", f"loss/{FIDELITY}", "lr", "grad_norm", "atoms_per_s",
                f"val/{FIDELITY}/energy_mae", f"val/{FIDELITY}/energy_rmse", f"val/{FIDELITY}/forces_mae"):
        assert row[key] != "", key
    assert result.model_path == result.run_dir / "model.safetensors" and result.model_path.is_file()
    # The last training checkpoint rebuilds the same (EMA) model that was exported.
    exported, from_checkpoint = load_model(result.model_path), load_model(result.run_dir / "ckpt-00000060.pt")
    for name, p in exported.state_dict().items():
        assert torch.equal(p, from_checkpoint.state_dict()[name]), name


def test_float64_training_exports_float64_weights(tiny_run):
    result = Trainer(tiny_run(max_steps=2, dtype="float64")).train()
    assert load_model(result.model_path).dtype == torch.float64


def test_a_cpu_time_limit_ends_the_run_early_as_if_it_were_max_steps(tiny_run):
    """What `foundation adapt` relies on to keep its budget whatever a step costs on a busy machine."""
    result = Trainer(tiny_run(max_steps=100_000, val_every=50, cpu_seconds=1.0)).train()
    assert result.status == "completed" and 0 < result.step < 100_000
    assert result.model_path.is_file()
    assert int(_rows(result.run_dir)[-1]["step"]) == result.step  # validated at the step it ended
    with pytest.raises(UserError, match="cpu_seconds"):
        tiny_run(cpu_seconds=0.0)


EMBEDDED_SHARDS = Path(__file__).resolve().parents[2] / "foundation" / "data" / "embedded"


@pytest.mark.parametrize("source", ["extxyz", "shards"])
def test_resume_continues_exactly_like_an_uninterrupted_run(tiny_run, source):
    data = None if source == "extxyz" else ShardDataConfig(path=str(EMBEDDED_SHARDS), max_atoms_per_batch=48,
                                                           shuffle_buffer=8)
    straight = Trainer(tiny_run("straight", data=data))
    straight.train()

    first = Trainer(tiny_run("split", data=data))
    stopped = first.train(stop_at=5)  # mid-way between checkpoints, mid-epoch
    assert stopped.status == "interrupted" and stopped.model_path is None
    assert [step for step, _ in list_checkpoints(stopped.run_dir)] == [5]
    second = Trainer(tiny_run("split", data=data, resume=True))
    assert second.resumed_from == 5
    second.train()

    for name, p in straight.model.state_dict().items():
        assert torch.equal(p, second.model.state_dict()[name]), name
    for name, p in straight.ema.shadow.items():
        assert torch.equal(p, second.ema.shadow[name]), name
    a = load_file(straight.run_dir / "model.safetensors")
    b = load_file(second.run_dir / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    losses = lambda rows: [(r["step"], r["loss"], r["val/loss"]) for r in rows]  # noqa: E731
    assert losses(_rows(straight.run_dir)) == losses(_rows(second.run_dir))


def test_a_finished_run_is_not_overwritten_without_resume(tiny_run):
    Trainer(tiny_run("once", max_steps=2)).train()
    with pytest.raises(UserError, match="resume=true"):
        Trainer(tiny_run("once", max_steps=2))


def test_frozen_parameters_stay_bit_identical(tiny_run):
    trainer = Trainer(tiny_run(freeze=["networks.*.layers.0.*", r"re:networks\.H\.heads\..*"]))
    before = _params(trainer.model)
    assert set(trainer.frozen) == {n for n in before if ".layers.0." in n or n.startswith("networks.H.heads.")}
    trainer.train()
    after = _params(trainer.model)
    exported = dict(load_model(trainer.run_dir).named_parameters())
    for name in trainer.frozen:
        assert torch.equal(before[name], after[name]) and torch.equal(before[name], exported[name]), name
    # Every trainable weight matrix moved. (Head biases cancel in NN(AEV) - NN(0): no gradient.)
    assert all(not torch.equal(before[n], after[n]) for n in before
               if n not in trainer.frozen and n.endswith(".weight"))


def test_a_step_with_a_nan_label_is_skipped_and_counted(tiny_run):
    trainer = Trainer(tiny_run())
    batches = iter(trainer.stream)
    bad = next(batches)
    bad.energy[FIDELITY][0] = math.nan
    before, ema_before = _params(trainer.model), {k: v.clone() for k, v in trainer.ema.shadow.items()}

    metrics = trainer.train_step(bad)
    assert metrics["nonfinite_steps"] == 1 and trainer.state.nonfinite_run == 1
    after = _params(trainer.model)
    assert all(torch.equal(before[n], after[n]) for n in before)
    assert all(torch.equal(ema_before[n], trainer.ema.shadow[n]) for n in ema_before)
    assert all(p.grad is None for p in trainer.model.parameters())

    metrics = trainer.train_step(next(batches))
    assert math.isfinite(metrics["loss"]) and metrics["nonfinite_steps"] == 1
    assert trainer.state.nonfinite_run == 0
    assert any(not torch.equal(before[n], p) for n, p in trainer.model.named_parameters())


def test_too_many_nonfinite_steps_in_a_row_stop_and_keep_the_last_good_checkpoint(tiny_run):
    config = tiny_run(max_nonfinite_steps=3)

    def poison_from_8(n, batch):  # a label pipeline gone wrong mid-run
        if n >= 8:
            for energy in batch.energy.values():
                energy.fill_(math.nan)

    config = dataclasses.replace(config, data=HookedData(config.data, poison_from_8))
    trainer = Trainer(config)
    with pytest.raises(TrainingDiverged, match=r"step 10: .*3 steps in a row.*ckpt-00000006\.pt"):
        trainer.train()
    assert [step for step, _ in list_checkpoints(trainer.run_dir)] == [6]
    assert not (trainer.run_dir / "model.safetensors").exists()
    assert trainer.state.nonfinite_total == 3
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())


def test_init_from_a_model_adds_the_new_fidelity_and_fits_its_reference_energies(tiny_run, tmp_path, make_samples):
    pretrained = Trainer(tiny_run("pretrain", max_steps=4))
    pretrained.train()
    # CC-like labels: the DFT energies plus a per-element shift the new references must absorb.
    shift = {1: -0.02, 6: -1.5, 7: -2.0, 8: -2.5}
    samples = [Sample(s.numbers, s.positions, {"cc": s.energies["dft"] + sum(shift[int(z)] for z in s.numbers)})
               for s in make_samples(8, 3, seed=1)]
    write_extxyz(tmp_path / "cc.xyz", samples, energy_key="E_cc")
    cc = FileDataConfig(path=str(tmp_path / "cc.xyz"), energy_key="E_cc", fidelity="ccsdt_ccpvdz",
                        split="conformer", max_atoms_per_batch=48)
    exported = load_model(pretrained.run_dir)

    fine = Trainer(tiny_run("finetune", data=cc, max_steps=3,
                            init_from=str(pretrained.run_dir / "model.safetensors")))
    assert fine.model.heads == [FIDELITY, "ccsdt_ccpvdz"] and fine.state.step == 0
    assert list(fine.fitted_references) == ["ccsdt_ccpvdz"]
    refs = fine.model.reference_energies_dict()
    dft = exported.reference_energies_dict()[FIDELITY]
    assert refs[FIDELITY] == dft
    for z, delta in shift.items():  # the change also absorbs what the 4-step model misses at DFT
        assert refs["ccsdt_ccpvdz"][z] - dft[z] == pytest.approx(delta, abs=0.2)
    assert fine.reference_fits["ccsdt_ccpvdz"].method == "ridge"
    start = dict(fine.model.named_parameters())
    for name, p in exported.named_parameters():
        assert torch.equal(p, start[name]), name
    assert torch.equal(start["networks.C.heads.ccsdt_ccpvdz.weight"], start[f"networks.C.heads.{FIDELITY}.weight"])
    result = fine.train()
    assert result.step == 3 and load_model(result.run_dir).heads == [FIDELITY, "ccsdt_ccpvdz"]


def test_early_stopping_after_patience_validations_without_improvement(tiny_run):
    trainer = Trainer(tiny_run(early_stopping_patience=2))
    seen = [trainer._should_stop_early({"val/loss": v}) for v in (1.0, 0.9, 0.95, 0.91, 0.8, 0.85, 0.86)]
    assert seen == [False, False, False, True, False, False, True]
    assert trainer.state.best_metric == 0.8
    with pytest.raises(UserError, match="early_stopping_metric"):
        Trainer(tiny_run("other", early_stopping_patience=2, early_stopping_metric="val/nope"))._should_stop_early(
            {"val/loss": 1.0})


def test_early_stopping_exports_the_best_validation_weights_not_the_last(tiny_run):
    from foundation.hub.format import read_header

    trainer = Trainer(tiny_run(early_stopping_patience=3, ema_decay=0.0))
    best = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer._should_stop_early({"val/loss": 1.0})
    with torch.no_grad():
        for p in trainer.model.parameters():
            p.add_(1.0)
    last = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.state.step = 7
    assert not trainer._should_stop_early({"val/loss": 2.0})
    path = trainer.export({"val/loss": 2.0})
    exported = load_model(path).state_dict()
    assert all(torch.equal(exported[k], best[k]) for k in best)
    assert all(torch.equal(v, last[k]) for k, v in trainer.model.state_dict().items())  # training state untouched
    header = read_header(path)
    assert header["training"]["exported_step"] == 0 and header["metrics"] == {"val/loss": 1.0}


def test_steps_that_improve_but_are_not_yet_beyond_the_starts_sampling_error_keep_training(tiny_run, monkeypatch):
    """Patience counts validations that found nothing better, not those still short of the floor
    (the start minus its sampling error): on a small validation set the floor is far below the
    start, and a training that improved at every check stopped at patience, keeping its start
    (foundation adapt's first measured run: 1.47 -> 1.18 kcal/mol on validation, start kept)."""
    trainer = Trainer(tiny_run(early_stopping_patience=2))
    monkeypatch.setattr(Trainer, "_floor", property(lambda self: True))
    trainer.state.start_metric = trainer.state.best_metric = 1.0
    trainer.state.start_error = 0.3  # floor 0.7
    seen = [trainer._should_stop_early({"val/loss": v}) for v in (0.95, 0.9, 0.85, 0.8, 0.75, 0.78, 0.79)]
    assert seen == [False] * 6 + [True]
    assert trainer.state.best_step == 0 and trainer.state.best_trained_metric == 0.75  # the start is what is kept
    seen = [trainer._should_stop_early({"val/loss": v}) for v in (0.6, 0.65, 0.66)]
    assert seen == [False, False, True] and trainer.state.best_metric == 0.6  # beyond the floor: kept
