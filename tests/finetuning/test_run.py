"""`foundation.finetune`: a pretrained model fine-tuned on HF/STO-3G labels it has never seen gets
better on the held-out structures; the model file, report and plot it writes; its checks."""

from __future__ import annotations

import math

import numpy as np
import pytest

import foundation
from foundation.data.ase_io import UnitWarning
from foundation.errors import DataError, UserError
from foundation.evaluation.evaluate import evaluate
from foundation.finetuning import read_user_data
from foundation.hub.format import read_header
from tests.finetuning.conftest import ENERGY_KEY, FORCES_KEY

FIDELITY = "hf_sto3g"
QUICK = ["trainer.device=cpu", "trainer.val_every=20", "logger.progress_bar=false"]


def test_finetune_lowers_the_held_out_error(pretrained, hf_images, hf_test_images, tmp_path, capsys):
    out = tmp_path / "mine.safetensors"
    result = foundation.finetune(pretrained, hf_images, energy_key=ENERGY_KEY, forces_key=FORCES_KEY,
                                 fidelity=FIDELITY, out=out,
                                 overrides=[*QUICK, "trainer.max_steps=300", "trainer.lr=3e-3", f"out_dir={tmp_path}",
                                            "name=ft"])
    printed = capsys.readouterr().out

    assert result.copied_from is not None and result.fidelity == FIDELITY
    # Three molecules: too few to hold whole molecules out, so conformers are split (and said so).
    assert result.split_by == "conformer" and "split: by conformer (3 molecules told apart by formula and bonds" in printed
    assert result.n_train + result.n_val == len(hf_images) and result.n_val >= 2
    before, after = result.before, result.after
    assert after["relative_energy_rmse_kcal_mol"] < before["relative_energy_rmse_kcal_mol"]
    assert after["energy_rmse_kcal_mol"] < before["energy_rmse_kcal_mol"]
    assert after["forces_mae_ev_per_a"] < before["forces_mae_ev_per_a"]
    assert 0 < result.best_step <= result.steps  # the best validation's weights, not the last ones
    # The reference energies were refit first: step 0 is not electron-volts off.
    assert before["energy_mae_kcal_mol"] < 0.5 * 23.06
    assert "relative energy RMSE (kcal/mol)" in printed and "before" in printed and "after" in printed

    # On conformers neither training nor early stopping saw, against the pretrained model's own
    # head (relative energies and forces do not depend on the reference energies).
    test = read_user_data(hf_test_images, ENERGY_KEY, FORCES_KEY, FIDELITY)[0]
    original = foundation.load_pretrained(pretrained, device="cpu")
    tuned = foundation.load_pretrained(out, device="cpu")
    was = evaluate(original, test, head=result.copied_from, fidelity=FIDELITY)
    now = evaluate(tuned, test, head=FIDELITY)
    assert now["relative_energy_rmse_kcal_mol"] < was["relative_energy_rmse_kcal_mol"]
    assert now["forces_mae_ev_per_a"] < was["forces_mae_ev_per_a"]

    assert tuned.default_head == FIDELITY and result.copied_from in tuned.heads
    header = read_header(out)
    assert header["finetune"]["after"] == after and header["finetune"]["energy_key"] == ENERGY_KEY
    report = result.report_path.read_text()
    assert result.report_path == tmp_path / "mine.md"
    assert "| relative energy RMSE (kcal/mol) |" in report and f"]({result.plot_path.name})" in report
    assert result.plot_path.read_bytes().startswith(b"\x89PNG")

    # Ready to use: the calculator takes the fine-tuned head by default.
    atoms = hf_images[0].copy()
    atoms.calc = foundation.calculator(out, device="cpu")
    assert math.isclose(atoms.get_potential_energy(), atoms.info[ENERGY_KEY], abs_tol=0.5)


def test_an_existing_head_is_continued_and_its_references_refit(pretrained, hf_xyz, tmp_path):
    head = foundation.load_pretrained(pretrained, device="cpu").heads[0]
    result = foundation.finetune(pretrained, hf_xyz, energy_key=ENERGY_KEY, fidelity=head, verbose=False,
                                 overrides=[*QUICK, "trainer.max_steps=2", f"out_dir={tmp_path}", "name=cont"])
    assert result.copied_from is None
    model = foundation.load_pretrained(result.model_path, device="cpu")
    assert model.heads == foundation.load_pretrained(pretrained, device="cpu").heads
    # The refit moved the head onto HF/STO-3G: total energies within an eV, not tens of them.
    assert result.before["energy_mae_kcal_mol"] < 23.06
    assert result.report_path == tmp_path / "cont" / "report.md"


def test_an_element_the_model_does_not_know_is_named(pretrained, hf_images, tmp_path):
    from ase.build import molecule

    sulfur = molecule("SH2")
    sulfur.info[ENERGY_KEY] = -10.0 * 27.2
    with pytest.raises(UserError, match=r"atoms\[36\]: element S is unknown to the pretrained model"):
        foundation.finetune(pretrained, [*hf_images, sulfur], energy_key=ENERGY_KEY, verbose=False,
                            overrides=[f"out_dir={tmp_path}"])


def test_too_few_structures_is_an_error(pretrained, hf_images, tmp_path):
    with pytest.raises(DataError, match="3 structure.s. are too few to split"):
        foundation.finetune(pretrained, hf_images[:3], energy_key=ENERGY_KEY, verbose=False,
                            overrides=[f"out_dir={tmp_path}"])


def test_a_missing_key_names_the_structure_and_the_keys_present(hf_xyz):
    with pytest.raises(DataError, match=rf"{hf_xyz}:0: structure has no energy key 'E_ccsdt'.*{ENERGY_KEY}"):
        read_user_data(hf_xyz, "E_ccsdt", None, FIDELITY)
    with pytest.raises(DataError, match="no forces key 'forces'"):
        read_user_data(hf_xyz, ENERGY_KEY, "forces", FIDELITY)


def test_hartree_energies_are_refused_unless_declared_and_then_converted(hf_images):
    images = [a.copy() for a in hf_images]
    for a in images:
        a.info[ENERGY_KEY] /= 27.211386245988
    with pytest.raises(DataError, match=f"energies under key '{ENERGY_KEY}' look like hartree, not eV"):
        read_user_data(images, ENERGY_KEY, None, FIDELITY)
    converted = read_user_data(images, ENERGY_KEY, None, FIDELITY, energy_unit="hartree").samples
    expected = read_user_data(hf_images, ENERGY_KEY, None, FIDELITY).samples
    assert [s.energies[FIDELITY] for s in converted] == pytest.approx([s.energies[FIDELITY] for s in expected],
                                                                       rel=1e-12)


def test_many_molecules_are_split_by_molecule(make_samples):
    from foundation.finetuning import UserDataConfig

    config = UserDataConfig(fidelity="dft", val_fraction=0.25)
    config.samples = make_samples(n_molecules=12, n_conformers=3, forces=False)
    data = config.build()
    assert data.split_by == "molecule"
    assert not {s.molecule for s in data.train} & {s.molecule for s in data.val}
    assert len(data.val) == pytest.approx(9, abs=3)


@pytest.mark.parametrize("override, message", [
    ("data.val_fraction=0", "data.val_fraction=0.0: must be in (0, 1)"),
    ("data=extxyz", "data=extxyz: fine-tuning reads the structures it is given"),
    ("recipe=finetune", "recipe=finetune: fine-tuning reads"),
    ("trainer.max_stepz=5", "unknown key trainer.max_stepz"),
    ("data.fidelity=hf.sto3g", "head name 'hf.sto3g' must be letters"),
])
def test_bad_settings_fail_before_reading_anything(override, message, tmp_path):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        foundation.finetune("unused", tmp_path / "missing.xyz", verbose=False, overrides=[override])


def test_hf_labels_are_consistent():
    """The fixture's forces are the energy's gradient (units and sign), checked on one water."""
    from ase.build import molecule

    from tests.finetuning.conftest import hf_sto3g

    water = molecule("H2O")
    _, forces = hf_sto3g(water.numbers, water.positions)
    step = 1e-4
    shifted = water.positions.copy()
    shifted[0, 2] += step
    e_plus, _ = hf_sto3g(water.numbers, shifted)
    shifted[0, 2] -= 2 * step
    e_minus, _ = hf_sto3g(water.numbers, shifted)
    assert np.isclose(-(e_plus - e_minus) / (2 * step), forces[0, 2], rtol=1e-3, atol=1e-3)
