"""Issue 20, as a user meets it: a file of conformers of 12 small molecules (normal-mode and
random distortions up to ~130 kcal/mol above the minimum) labelled at RHF/STO-3G by PySCF, each
named by the info key `molecule` (tests/finetuning/data/generate.py made it), and the shipped
ANI-style `ani-cc-mini` to start from. The molecules are grouped right, the error on other
conformers of the same molecules drops, and where fine-tuning cannot help (labels that are the
starting model's energies plus pure noise) the start is written and the output says so."""

from __future__ import annotations

from pathlib import Path

import ase.io
import numpy as np
import pytest
import torch

import foundation
from foundation.cli.main import main
from foundation.errors import DataError
from foundation.evaluation.evaluate import evaluate
from foundation.evaluation.metrics import relative_energy_rmse_kcal_mol
from foundation.finetuning import read_user_data

DATA = Path(__file__).resolve().parent / "data"
FILE, HELDOUT = DATA / "conformers.xyz", DATA / "heldout.xyz"
ENERGY_KEY, FIDELITY = "E_hf", "hf_sto3g"
QUICK = ["trainer.device=cpu", "logger.progress_bar=false", "trainer.val_every=25"]


def _names(samples):
    """The partition of the structures into molecules, independent of how the groups are named."""
    groups = {}
    for k, s in enumerate(samples):
        groups.setdefault(s.molecule, []).append(k)
    return sorted(map(tuple, groups.values()))


def test_molecules_are_named_by_the_files_key_and_alike_by_bonds(tmp_path):
    named = read_user_data(FILE, ENERGY_KEY, None, FIDELITY)
    assert named.molecules == "named by the file's 'molecule' key"
    assert len({s.molecule for s in named.samples}) == 12 and "ethanol" in {s.molecule for s in named.samples}
    # Without the key, formula and bonds find the same 12 molecules (isomers apart, conformers together).
    by_bonds = read_user_data(FILE, ENERGY_KEY, None, FIDELITY, group_key="bonds")
    assert by_bonds.molecules == "told apart by formula and bonds"
    assert _names(by_bonds.samples) == _names(named.samples)
    # A key that names each structure (a conformer id) does not name molecules: bonds are used.
    images = ase.io.read(FILE, ":")
    for k, atoms in enumerate(images):
        del atoms.info["molecule"]
        atoms.info["name"] = f"conf{k}"
    found = read_user_data(images, ENERGY_KEY, None, FIDELITY)
    assert found.molecules == "told apart by formula and bonds" and _names(found.samples) == _names(named.samples)
    given = read_user_data(images, ENERGY_KEY, None, FIDELITY, group_key="name")
    assert given.molecules == "named by the given key 'name'" and len({s.molecule for s in given.samples}) == 96
    with pytest.raises(DataError, match=r"atoms\[0\]: structure has no info key 'mol' naming its molecule"):
        read_user_data(images, ENERGY_KEY, None, FIDELITY, group_key="mol")


def _relative_rmse(model, head, samples) -> float:
    rows = evaluate(model, samples, head=head, fidelity=FIDELITY, include_forces=False)["structures"]
    return relative_energy_rmse_kcal_mol([r["energy_pred_ev"] for r in rows], [r["energy_ref_ev"] for r in rows],
                                         [r["molecule"] for r in rows])


def test_the_molecules_are_grouped_right_and_held_out_conformers_get_better(pretrained, tmp_path, capsys):
    out = tmp_path / "mine.safetensors"
    code = main(["finetune", "--model", pretrained, "--data", str(FILE), "--energy-key", ENERGY_KEY,
                 "--fidelity", FIDELITY, "--out", str(out), *QUICK, "trainer.max_steps=600",
                 f"out_dir={tmp_path}", "name=conformers"])
    printed = capsys.readouterr().out
    assert code == 0
    lines = printed.splitlines()
    split = next(line for line in lines if line.startswith("split: "))
    assert split.startswith("split: by molecule (12 molecules named by the file's 'molecule' key; none in both sets)")
    assert "not better" not in printed
    chosen = next(line for line in lines if line.startswith("weights chosen on "))
    assert chosen.startswith("weights chosen on the validation relative-energy RMSE")

    # Other conformers of the same 12 molecules, never shown to the fine-tune: relative energies
    # (what no reference energy can fix) are better than the starting model's own head.
    heldout = read_user_data(HELDOUT, ENERGY_KEY, None, FIDELITY).samples
    start = foundation.load_pretrained(pretrained, device="cpu")
    tuned = foundation.load_pretrained(out, device="cpu")
    was = _relative_rmse(start, start.default_head or start.heads[-1], heldout)
    now = _relative_rmse(tuned, FIDELITY, heldout)
    assert now < 0.8 * was, (was, now)


def _noise_file(pretrained, path: Path) -> None:
    """The file's structures labelled with the starting model's own energies plus noise (0.5 eV):
    the start already predicts all there is to predict."""
    model = foundation.load_pretrained(pretrained, device="cpu")
    head = model.default_head or model.heads[-1]
    samples = read_user_data(FILE, ENERGY_KEY, None, FIDELITY).samples
    rows = evaluate(model, samples, head=head, fidelity=FIDELITY, include_forces=False)["structures"]
    noise = np.random.default_rng(0).normal(0.0, 0.5, len(rows))
    images = ase.io.read(FILE, ":")
    for atoms, row, e in zip(images, rows, noise):
        atoms.info["E_noise"] = row["energy_pred_ev"] + float(e)
    ase.io.write(path, images, format="extxyz")


def test_when_fine_tuning_cannot_help_the_start_is_written_and_said(pretrained, tmp_path, capsys):
    path = tmp_path / "noise.xyz"
    _noise_file(pretrained, path)
    out = tmp_path / "noise.safetensors"
    argv = ["finetune", "--model", pretrained, "--data", str(path), "--energy-key", "E_noise",
            "--fidelity", "noise", *QUICK, "trainer.max_steps=300", f"out_dir={tmp_path}"]
    code = main([*argv, "--out", str(out), "name=floor"])
    printed = capsys.readouterr().out
    assert code == 0
    said = [line for line in printed.splitlines() if line.startswith("not better: ")]
    assert len(said) == 1 and "so the starting model (pretrained weights, refit reference energies) is written" in said[0]
    assert "no step beat the start" in printed
    report = out.with_suffix(".md").read_text()
    assert said[0] in report

    # What was written is the start: every pretrained weight as it was, the new head a copy.
    start = foundation.load_pretrained(pretrained, device="cpu")
    head = start.default_head or start.heads[-1]
    written = foundation.load_pretrained(out, device="cpu").state_dict()
    for name, value in start.state_dict().items():
        # (per-head tensors such as the reference energies gain a row for the new head)
        assert torch.equal(written[name][: len(value)] if value.dim() else written[name], value), name
        if f".heads.{head}." in name:
            assert torch.equal(written[name.replace(f".heads.{head}.", ".heads.noise.")], value), name

    # --allow-worse: the best fine-tuned step is written, worse or not.
    worse = tmp_path / "worse.safetensors"
    assert main([*argv, "--out", str(worse), "name=worse", "--allow-worse"]) == 0
    printed = capsys.readouterr().out
    assert "not better" not in printed and "never worse" not in printed
    changed = foundation.load_pretrained(worse, device="cpu").state_dict()
    assert any(not torch.equal(changed[name], value) for name, value in start.state_dict().items()
               if changed[name].shape == value.shape)
