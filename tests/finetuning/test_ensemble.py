"""`foundation finetune` from an ensemble start (ANI-1x's shape, in small: `pretrained_ensemble`,
three members): the members fine-tuned one by one, each from its own start member with its own
seed, on one split, and written as one ensemble; `--members K`; the ensemble's never-worse floor."""

from __future__ import annotations

import pytest
import torch
import yaml

from foundation.cli.main import main
from foundation.hub.format import read_header
from foundation.loading import load_model
from foundation.models.ensemble import EnsembleModel
from tests.finetuning.conftest import ENERGY_KEY, FORCES_KEY

QUICK = ["trainer.max_steps=10", "trainer.val_every=5", "trainer.device=cpu"]


def _finetune(start, data, tmp_path, name: str, *extra: str) -> tuple[int, list[str]]:
    out = tmp_path / f"{name}.safetensors"
    code = main(["finetune", "--model", str(start), "--data", str(data), "--energy-key", ENERGY_KEY,
                 "--forces-key", FORCES_KEY, "--fidelity", "hf_sto3g", "--out", str(out), *QUICK,
                 f"out_dir={tmp_path}", f"name={name}", *extra])
    return code, out


def _differ(a, b) -> bool:
    """Whether two networks' weights differ (the parameters both have, reference energies aside)."""
    theirs = dict(b.named_parameters())
    shared = [(p, theirs[n]) for n, p in a.named_parameters() if n in theirs and theirs[n].shape == p.shape]
    assert shared
    return any(not torch.equal(p.detach(), q.detach()) for p, q in shared)


def test_an_ensemble_start_gives_an_ensemble_of_its_fine_tuned_members(pretrained_ensemble, hf_xyz, tmp_path, capsys):
    code, out = _finetune(pretrained_ensemble, hf_xyz, tmp_path, "ens", "trainer.lr=3e-3")
    captured = capsys.readouterr()
    assert code == 0, captured.err
    start, tuned = load_model(pretrained_ensemble), load_model(out)
    assert isinstance(tuned, EnsembleModel) and len(tuned.members) == 3 and tuned.default_head == "hf_sto3g"
    for k, member in enumerate(tuned.members):
        assert _differ(member, start.members[k])  # trained, from its own start member
    assert all(_differ(tuned.members[i], tuned.members[j]) for i, j in ((0, 1), (0, 2), (1, 2)))

    recorded = read_header(out)["finetune"]
    assert [m["seed"] for m in recorded["members"]] == [0, 1, 2]
    assert len({m["split"] for m in recorded["members"]}) == 1  # one split for every member
    for k in range(3):
        config = yaml.safe_load((tmp_path / "ens" / f"member{k}" / "config.yaml").read_text())
        assert config["trainer"]["init_member"] == k and config["trainer"]["seed"] == k
        assert config["data"]["seed"] == 0
    # The ensemble is scored against its start members, and fine-tuning helped it.
    assert recorded["after"]["relative_energy_rmse_kcal_mol"] < recorded["before"]["relative_energy_rmse_kcal_mol"]
    printed = captured.out
    assert "member 2/3: from member 1 of the start, trainer.seed=1" in printed
    assert "3 members fine-tuned, each its own run, in" in printed and "  member 3/3: completed after 10 steps" in printed
    assert "validation errors of the ensemble (" in printed and "before: its 3 start members" in printed
    assert "members:" in captured.err and "3/3" in captured.err  # the bar over the members


def test_members_1_writes_member_0_fine_tuned_as_a_single_model(pretrained_ensemble, hf_xyz, tmp_path, capsys):
    code, out = _finetune(pretrained_ensemble, hf_xyz, tmp_path, "one", "--members", "1", "trainer.lr=3e-3")
    printed = capsys.readouterr().out
    assert code == 0
    tuned = load_model(out)
    assert not isinstance(tuned, EnsembleModel)
    assert _differ(tuned, load_model(pretrained_ensemble).members[0])
    assert printed.startswith(f"model: {pretrained_ensemble}, member 0 of 3 (heads ")
    config = yaml.safe_load((tmp_path / "one" / "config.yaml").read_text())
    assert config["trainer"]["init_member"] == 0


def test_an_ensemble_not_better_than_its_start_is_not_written(pretrained_ensemble, hf_xyz, tmp_path, capsys):
    code, out = _finetune(pretrained_ensemble, hf_xyz, tmp_path, "worse", "--members", "2", "trainer.lr=5")
    printed = capsys.readouterr().out
    assert code == 0
    assert "not better: the fine-tuned ensemble's validation relative-energy RMSE" in printed
    assert "so the start ensemble is written; --allow-worse writes the fine-tuned ensemble instead" in printed
    written, start = load_model(out), load_model(pretrained_ensemble)
    assert len(written.members) == 2 and read_header(out)["finetune"]["kept_start"] is True
    assert not any(_differ(written.members[k], start.members[k]) for k in range(2))  # the start's weights


def test_more_members_than_the_start_has_is_one_line(pretrained_ensemble, pretrained, hf_xyz, tmp_path, capsys):
    code, out = _finetune(pretrained_ensemble, hf_xyz, tmp_path, "many", "--members", "4")
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and not out.exists()
    assert err == f"foundation finetune: error: --members 4: {pretrained_ensemble} has 3 members; give 1 to 3\n"
    code, _ = _finetune(pretrained, hf_xyz, tmp_path, "single", "--members", "2")
    err = capsys.readouterr().err
    assert code == 2 and err == (f"foundation finetune: error: --members 2: {pretrained} is one model, "
                                 "not an ensemble; drop --members\n")


@pytest.mark.integration
def test_members_side_by_side_are_the_members_one_after_another(pretrained_ensemble, hf_xyz, tmp_path, monkeypatch):
    """With two processes (member 0 here, the others in a spawned worker or here once free) each
    member's weights are what the one-process run gives: every member is its own seeded run."""
    written = {}
    for jobs in ("1", "2"):
        monkeypatch.setenv("FOUNDATION_JOBS", jobs)
        code, out = _finetune(pretrained_ensemble, hf_xyz, tmp_path, f"jobs{jobs}", "trainer.lr=3e-3")
        assert code == 0
        written[jobs] = load_model(out)
        recorded = read_header(out)["finetune"]
        assert [m["member"] for m in recorded["members"]] == [0, 1, 2]
    for one, two in zip(written["1"].members, written["2"].members):
        assert all(torch.equal(a, b) for a, b in zip(one.state_dict().values(), two.state_dict().values()))
