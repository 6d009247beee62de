"""`finetune()` takes `Sample`s from a program (issue 27: `foundation adapt` hands over its PySCF
labels that way): in eV and Å already, named by their molecule, and labels of other fidelities
beside the one chosen train extra heads (here an MP2-like second level with forces)."""

from __future__ import annotations

from foundation.data.sample import Sample
from foundation.finetuning import finetune
from foundation.hub.format import read_header
from foundation.loading import load_pretrained
from tests.finetuning.conftest import ENERGY_KEY, FORCES_KEY


def test_samples_with_two_fidelities_train_the_chosen_head_and_an_extra_one(pretrained, hf_images, tmp_path):
    samples = []
    for k, atoms in enumerate(hf_images):
        energies = {"cc_like": atoms.info[ENERGY_KEY]}
        forces = {}
        if k % 2:  # every other structure also at a cheaper level, with forces
            energies["mp2_like"] = atoms.info[ENERGY_KEY] + 0.05
            forces["mp2_like"] = atoms.arrays[FORCES_KEY]
        samples.append(Sample(atoms.numbers, atoms.positions, energies, forces, molecule=atoms.get_chemical_formula()))
    out = tmp_path / "tuned.safetensors"
    result = finetune(pretrained, samples, fidelity="cc_like", out=out, verbose=False,
                      overrides=["trainer.max_steps=6", "trainer.val_every=3", "trainer.device=cpu",
                                 f"out_dir={tmp_path}", "name=given"])
    model = load_pretrained(out, "cpu")
    assert {"cc_like", "mp2_like"} <= set(model.heads) and model.default_head == "cc_like"
    assert read_header(out)["finetune"]["data"] == "the 36 samples given (cc_like, mp2_like)"
    assert result.n_molecules == 3 and result.before["relative_energy_rmse_kcal_mol"] >= 0
