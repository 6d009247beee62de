"""The never-worse floor holds when the labels carry no signal (issue 27): `foundation finetune` on
CCSD(T) energies plus 2 eV of Gaussian noise writes a model no worse than its start (within 2 %) on
the true labels of conformers it never saw. Before, the floor compared two noisy validation
numbers and kept a step that moved by chance (seed 1: 40.6 kcal/mol written where the start was
at 7.8; seed 2: 14.5). The model is the shipped ani-cc-mini, the data the embedded CC test
molecules (which it was not trained on): half the conformers of each molecule, noisy, to fine-tune
on; the other half, with their true labels, to score."""

from __future__ import annotations

import ase
import ase.io
import numpy as np
import pytest

from foundation.cli.main import main
from foundation.data.sources.embedded import EMBEDDED_DIR
from foundation.data.shards.manifest import load_manifest
from foundation.data.shards.reader import iter_samples
from foundation.evaluation.evaluate import evaluate
from foundation.evaluation.metrics import relative_energy_rmse_kcal_mol
from foundation.loading import load_pretrained

START, CC, NOISE_EV = "ani-cc-mini", "ccsdt_ccpvdz", 2.0


def held_out_error(model, samples) -> float:
    rows = evaluate(model, samples, head=CC, fidelity=CC, include_forces=False)["structures"]
    return relative_energy_rmse_kcal_mol([r["energy_pred_ev"] for r in rows], [r["energy_ref_ev"] for r in rows],
                                         [r["molecule"] for r in rows])


@pytest.fixture(scope="module")
def halves():
    """(conformers to fine-tune on, held-out conformers): half of each CC test molecule's each."""
    by_molecule: dict[str, list] = {}
    for s in iter_samples(load_manifest(EMBEDDED_DIR), "test"):
        if CC in s.energies:
            by_molecule.setdefault(s.molecule, []).append(s)
    train, held = [], []
    for _, samples in sorted(by_molecule.items()):
        train += samples[: len(samples) // 2]
        held += samples[len(samples) // 2:]
    return train, held


@pytest.mark.parametrize("seed", [1, 2])  # the two seeds whose noise the old floor took for signal
def test_noise_only_labels_write_a_model_no_worse_than_its_start(halves, seed, tmp_path, capsys):
    train, held = halves
    rng = np.random.default_rng(seed)
    images = []
    for s in train:
        atoms = ase.Atoms(s.numbers, s.positions)
        atoms.info["E"] = s.energies[CC] + rng.normal(0.0, NOISE_EV)
        atoms.info["molecule"] = s.molecule
        images.append(atoms)
    ase.io.write(tmp_path / "noisy.xyz", images, format="extxyz")
    out = tmp_path / "tuned.safetensors"
    code = main(["finetune", "--model", START, "--data", str(tmp_path / "noisy.xyz"), "--energy-key", "E",
                 "--fidelity", CC, "--out", str(out), f"out_dir={tmp_path}", "name=noise", "trainer.device=cpu",
                 "--quiet"])
    assert code == 0, capsys.readouterr().err
    start, tuned = held_out_error(load_pretrained(START, "cpu"), held), held_out_error(load_pretrained(out, "cpu"), held)
    assert tuned <= 1.02 * start, f"held-out relative-energy RMSE {tuned:.2f} kcal/mol, start {start:.2f}"
