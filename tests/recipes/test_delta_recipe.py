"""The `delta` recipe: a correction trained on CC − DFT on top of the frozen pretrained model."""


import numpy as np
import pytest
import torch
from safetensors.torch import load_file as weights  # the tensors exactly as stored

from foundation.data.batch import collate
from foundation.hub.format import read_header
from foundation.loading import load_model
from foundation.models.delta import DeltaModel
from foundation.recipes import delta
from foundation.recipes.common import CC, DFT, embedded_samples
from foundation.models.mace_torch import installed

# Found, not imported: importing mace directly sets TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD for the process.
HAVE_MACE = installed()
NO_MACE = "mace-torch not installed: pip install 'foundation-mlip[mace]'"


def test_trains_the_correction_and_keeps_the_base_bit_identical(pretrained, tiny, runs_dir):
    # The mechanism, not the floor (tests/finetuning): 10 steps need not beat the start on
    # validation, whose molecules change as the embedded data grows, so the steps are written
    # whatever validation says (trainer.allow_worse)
    result = delta.run(pretrained, [*tiny, "name=delta", "trainer.max_steps=10", "trainer.allow_worse=true"], quiet=True)
    base, init, after = weights(pretrained), weights(runs_dir / "delta" / delta.INIT_NAME), weights(result.model_path)
    assert set(after) == {f"base.{n}" for n in base} | {n for n in after if n.startswith("delta.")}
    for name, tensor in base.items():  # weights and the DFT head's reference energies
        assert torch.equal(after[f"base.{name}"], tensor), name
    name = f"delta.networks.C.heads.{CC}.weight"
    assert torch.equal(init[name], torch.zeros_like(init[name]))  # the correction starts at zero ...
    assert not torch.equal(after[name], init[name])  # ... and trains

    model = load_model(result.model_path)
    assert isinstance(model, DeltaModel) and model.heads == [CC, DFT] and model.config.base_head == DFT
    assert model.config.delta["hidden"]["C"] == [16, 8]  # the correction is the `model` group's
    refs, dft_refs = model.reference_energies_dict()[CC], load_model(pretrained).reference_energies_dict()[DFT]
    assert refs != dft_refs  # refit on the CC energies
    frozen = read_header(result.model_path)["training"]["frozen_parameters"]
    assert frozen == len(list(model.base.parameters())) > 0


def test_the_init_model_starts_as_base_plus_ridge_offsets(pretrained, tiny, runs_dir):
    """Its CC references are the base's plus offsets δ fitted to CC − base prediction by ridge
    regression toward zero: the residual r on the training structures meets the ridge normal
    equations Cᵀr = n λ δ (C the element counts, λ = RIDGE × the largest eigenvalue of CᵀC/n)."""
    from foundation.models.reference import RIDGE

    path, _, fitted = delta.build_init_model(pretrained, [*tiny, "name=delta_init"])
    assert fitted and path == runs_dir / "delta_init" / delta.INIT_NAME
    model, base = load_model(path), load_model(pretrained)
    training = embedded_samples("train", CC)
    batch = collate(training, fidelities=[CC])
    counts = np.array([[np.sum(s.numbers == z) for z in model.elements] for s in training])
    residual = batch.energy[CC].numpy() - model(batch, head=CC, forces=False)["energy"].detach().numpy()
    unfitted = batch.energy[CC].numpy() - base(batch, head=DFT, forces=False)["energy"].detach().numpy()
    offsets = {z: model.reference_energies_dict()[CC][z] - base.reference_energies_dict()[DFT][z]
               for z in model.elements}
    n = len(training)
    penalty = RIDGE * np.linalg.eigvalsh(counts.T @ counts / n)[-1]
    ridge = n * penalty * np.array([offsets[z] for z in model.elements])
    assert np.abs(counts.T @ residual - ridge).max() < 0.05  # eV·atoms, float32 predictions
    assert np.abs(counts.T @ unfitted).max() > 10.0
    refs = load_model(path).delta.reference_energies_dict()[CC]  # the correction holds the offsets
    assert refs == pytest.approx(offsets, abs=1e-9)


def test_a_missing_base_model_is_one_clear_error(tiny, capsys):
    assert delta.main(["--from", "no_such_model.safetensors", *tiny, "name=delta_missing"]) == 2
    err = capsys.readouterr().err.strip()
    assert "no_such_model.safetensors" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("correction", ["painn", "mace"])
def test_any_model_is_the_correction(pretrained, tiny, runs_dir, correction):
    """PaiNN and MACE corrections (their own narrow sizes, recipe_model/delta_<model>.yaml) on the
    ANI base: each starts at exactly zero (each architecture zeroes its own output layers) and trains."""
    if correction == "mace" and not HAVE_MACE:
        pytest.skip(NO_MACE)
    name = f"delta_{correction}"
    result = delta.run(pretrained, [*tiny, f"model={correction}", f"name={name}", "trainer.max_steps=4",
                                     "trainer.allow_worse=true"], quiet=True)  # the trained weights, better or not
    init, after, base = load_model(runs_dir / name / delta.INIT_NAME), load_model(result.model_path), load_model(pretrained)
    assert after.config.delta["name"] == correction and after.heads == [CC, DFT]
    training = embedded_samples("train", CC)[:16]
    batch = collate(training, fidelities=[CC])
    refs = init.delta.reference_energies_dict()[CC]
    learned = init.delta(batch, head=CC, forces=False)["energy"].detach().numpy() - \
        np.array([sum(refs[int(z)] for z in s.numbers) for s in training])
    assert np.abs(learned).max() < 1e-9  # the correction starts as no correction
    start, trained = weights(runs_dir / name / delta.INIT_NAME), weights(result.model_path)
    assert all(torch.equal(trained[n], t) for n, t in start.items() if n.startswith("base."))
    assert any(not torch.equal(trained[n], t) for n, t in start.items() if n.startswith("delta."))
    np.testing.assert_array_equal(after(batch, head=DFT, forces=False)["energy"].detach().numpy(),
                                  base(batch, head=DFT, forces=False)["energy"].detach().numpy())


def test_a_mace_corrections_statistics_come_from_what_it_learns(pretrained, tiny, runs_dir):
    """avg_num_neighbors=auto and energy_scale=auto of a MACE correction: computed as for any MACE
    run, on the training structures with energies CC − base prediction (std scaling: no forces)."""
    if not HAVE_MACE:
        pytest.skip(NO_MACE)
    from foundation.models import mace_statistics

    path, _, _ = delta.build_init_model(pretrained, [*tiny, "model=mace", "name=delta_mace_init"])
    config = load_model(path).config.delta
    residuals = delta.residual_samples(load_model(pretrained), DFT, embedded_samples("train", CC), [CC])
    assert config["energy_scale"] == pytest.approx(mace_statistics.energy_scale(residuals, config["elements"]),
                                                   rel=1e-9)
    assert config["avg_num_neighbors"] == pytest.approx(
        mace_statistics.avg_num_neighbors(residuals, config["r_max"], config["elements"]), rel=1e-12)
    assert 0 < config["energy_scale"] < 0.5  # eV per atom: the CC − DFT spread, not the CC energies'
