"""Choosing the transfer recipe on the validation molecules, the learning curves by structures and
by molecules, and the shipped-model recipe: tiny runs on the embedded data."""

import json
import math

import pytest
import torch

from foundation.data.batch import collate
from foundation.loading import load_model
from foundation.models.delta import DeltaModel
from foundation.models.ensemble import EnsembleModel
from foundation.models.routed import RoutedModel
from foundation.recipes import learning_curve, ship_model, transfer
from foundation.recipes.common import CC, DFT, embedded_samples


def test_choose_takes_the_lowest_validation_error_and_never_a_missing_one():
    scores = {"finetune": {"validation": {transfer.METRIC: 2.5}}, "delta": {"validation": {transfer.METRIC: 2.4}},
              "multihead": {"validation": {transfer.METRIC: math.nan}}}
    assert transfer.choose(scores) == "delta"
    scores["delta"]["validation"][transfer.METRIC] = 2.5
    assert transfer.choose(scores) == "finetune"  # a tie goes to the earlier candidate


def test_seeds_are_averaged_and_a_split_needs_two_conformers_of_a_molecule():
    from foundation.data.sample import Sample

    per_seed = [{transfer.METRIC: 2.0, "n_structures": 10, "head": "cc"}, {transfer.METRIC: 3.0, "n_structures": 10, "head": "cc"}]
    assert transfer.mean_scores(per_seed) == {transfer.METRIC: 2.5, "n_structures": 10.0, "per_seed": [2.0, 3.0]}
    one = lambda name: Sample([1, 1], [[0, 0, 0], [0, 0, 0.74]], {CC: -1.0}, molecule=name)  # noqa: E731
    assert not transfer.has_relative_energies([one("a"), one("b")])
    assert transfer.has_relative_energies([one("a"), one("b"), one("a")])
    assert transfer.run_name("finetune", 0) == "choose_finetune" and transfer.run_name("finetune", 2) == "choose_finetune_seed2"


def test_a_candidate_is_a_recipe_or_a_chain_of_two():
    from foundation.errors import UserError

    assert transfer.stages("finetune") == ["finetune"]
    assert transfer.stages("mp2_transfer>delta") == ["mp2_transfer", "delta"]
    assert transfer.run_name("mp2_transfer>delta", 1) == "choose_mp2_transfer-then-delta_seed1"
    for bad in ("a>b>c", ">delta", "mp2_transfer>"):
        with pytest.raises(UserError, match="a chain of two"):
            transfer.stages(bad)


@pytest.mark.integration  # trainings side by side in worker processes
def test_compare_trains_each_recipe_with_each_seed_and_chooses_on_the_first_labelled_split(pretrained_ensemble, tiny, runs_dir):
    overrides = [*tiny[:-1], f"out_dir={runs_dir / 'seeds'}", "trainer.max_steps=4"]  # not ship_model's choose_* runs
    compared = transfer.compare(str(pretrained_ensemble), ("finetune",), overrides, seeds=2,
                                splits=("no_such_split", "val"))
    row = compared["finetune"]
    assert row["choice_split"] == "val" and list(row["splits"]) == ["val"] and len(row["models"]) == 2
    assert len(row["validation"]["per_seed"]) == 2
    assert row["validation"][transfer.METRIC] == pytest.approx(sum(row["validation"]["per_seed"]) / 2)


@pytest.mark.integration  # trainings side by side in worker processes
def test_compare_scores_ensembles_whose_member_k_starts_from_member_k(pretrained_ensemble, tiny, runs_dir):
    import yaml

    overrides = [*tiny[:-1], f"out_dir={runs_dir / 'members'}", "trainer.max_steps=3"]
    compared = transfer.compare(str(pretrained_ensemble), ("finetune",), overrides, seeds=2, splits=("val",),
                                members=2)
    row = compared["finetune"]
    assert row["members"] == 2 and len(row["models"]) == 2 and len(row["validation"]["per_seed"]) == 2
    for path in row["models"]:
        model = load_model(path)
        assert isinstance(model, EnsembleModel) and len(model.members) == 2
    trainers = {name: yaml.safe_load((runs_dir / "members" / name / "config.yaml").read_text())["trainer"]
                for name in ("choose_finetune_member0", "choose_finetune_member1", "choose_finetune_seed1_member1")}
    assert [t["init_member"] for t in trainers.values()] == [0, 1, 1]
    assert [t["seed"] for t in trainers.values()] == [0, 2, 3]  # seed + k * seeds: no two trainings share one


def test_compare_refuses_more_members_than_the_start_has_in_one_line(pretrained_ensemble, pretrained):
    from foundation.errors import UserError

    with pytest.raises(UserError, match=r"--members 3: the choice trains member k from member k of the start, and .* has 2 members"):
        transfer.train_candidates(str(pretrained_ensemble), ["finetune"], [], True, 1, members=3)
    with pytest.raises(UserError, match="has no members"):
        transfer.train_candidates(str(pretrained), ["finetune"], [], True, 1, members=2)


@pytest.mark.integration  # trainings side by side in worker processes
def test_a_chain_starts_its_second_stage_from_the_head_its_first_added(pretrained_ensemble, tiny, runs_dir):
    overrides = [*tiny[:-1], f"out_dir={runs_dir / 'chains'}", "trainer.max_steps=3"]
    compared = transfer.compare(str(pretrained_ensemble), ("mp2_transfer>finetune", "mp2_transfer>delta"),
                                overrides, seeds=1, splits=("val",))
    first = load_model(runs_dir / "chains" / "choose_mp2_transfer" / "model.safetensors")
    assert set(first.heads) == {DFT, "mp2_ccpvdz"}
    finetuned = load_model(compared["mp2_transfer>finetune"]["model"])
    assert set(finetuned.heads) >= {"mp2_ccpvdz", CC}
    delta = load_model(compared["mp2_transfer>delta"]["model"])
    assert isinstance(delta, DeltaModel) and delta.config.base_head == "mp2_ccpvdz"
    assert compared["mp2_transfer>delta"]["validation"][transfer.METRIC] > 0


def test_subsets_grow_nested_by_structures_and_by_whole_molecules():
    samples = embedded_samples("train", CC)
    by_structures = learning_curve.subsets(samples, "structures", (0.25, 1.0))
    assert [n for n, _ in by_structures] == [round(0.25 * len(samples)), len(samples)]
    small, full = (set(map(id, s)) for _, s in by_structures)
    assert small < full
    by_molecules = learning_curve.subsets(samples, "molecules", (0.25, 1.0))
    names = {s.molecule for s in samples}
    (n_small, small), (n_full, full) = by_molecules
    assert n_full == len(names) and {s.molecule for s in small} < names and len({s.molecule for s in small}) == n_small
    kept = {x.molecule for x in small}
    assert len(small) == sum(s.molecule in kept for s in samples)  # every structure of a chosen molecule


@pytest.mark.integration  # trainings side by side in worker processes
def test_learning_curve_trains_every_start_at_every_size_on_both_axes(pretrained_ensemble, tiny, runs_dir):
    starts = {"from ensemble": ("finetune", str(pretrained_ensemble)), "scratch": ("scratch", None)}
    rows = learning_curve.learning_curve(starts, runs_dir / "curve", fractions=(0.5, 1.0),
                                         overrides=[*tiny[:-1], "trainer.max_steps=10"])
    assert len(rows) == 2 * 2 * 2
    assert {(r["axis"], r["model"]) for r in rows} == {(a, m) for a in learning_curve.AXES for m in starts}
    assert all(math.isfinite(r["relative_energy_rmse_kcal_mol"]) for r in rows)
    assert learning_curve.curve_plot(rows, runs_dir / "curve.png").stat().st_size > 0


@pytest.mark.integration  # trainings in worker processes
def test_learning_curve_scores_the_frontier_test_molecules_when_asked(pretrained_ensemble, tiny, runs_dir):
    from foundation.recipes.common import evaluate_models
    from foundation.recipes.frontier import frontier_samples

    rows = learning_curve.learning_curve({"e": ("finetune", str(pretrained_ensemble))}, runs_dir / "curve_frontier",
                                         axes=("molecules",), fractions=(1.0,), split="frontier_test",
                                         overrides=[*tiny[:-1], "trainer.max_steps=3"])
    (row,) = rows
    model = runs_dir / "curve_frontier" / f"molecules_{row['n']}_e" / "model.safetensors"
    expected = evaluate_models({"e": model}, frontier_samples("frontier_test"), CC)["e"]
    assert row["relative_energy_rmse_kcal_mol"] == pytest.approx(expected["relative_energy_rmse_kcal_mol"])


@pytest.mark.integration  # trainings side by side in worker processes
def test_ship_model_chooses_on_validation_and_installs_an_ensemble_that_keeps_the_dft_head(
        pretrained_ensemble, tiny, runs_dir, tmp_path, monkeypatch):
    hub = tmp_path / "hub"
    hub.mkdir()
    (hub / "registry.json").write_text(json.dumps({"format_version": 1, "models": {}}))
    monkeypatch.setattr(ship_model, "SEEDS", 1)  # seeds are tested on transfer.compare itself
    # a chain: both stages member by member, the CC head a Δ on the MP2 head, the DFT head the start's
    path, choice = ship_model.make_ani_1x_ccsdt(2, [*tiny, "trainer.max_steps=15"], start=str(pretrained_ensemble),
                                                recipes=("mp2_transfer>delta",))
    assert choice["recipe"] == min(choice["validation"], key=choice["validation"].get)
    assert choice["choice_members"] == 2  # chosen on ensembles of what ships
    first = ship_model.against_installed(path, "ani-1x-ccsdt", hub, tmp_path)
    assert [list(first[split]) for split in ("val", "test")] == [["new"], ["new"]]
    assert not ship_model.keeps_installed(first)  # nothing installed yet
    entry = ship_model.install(path, "ani-1x-ccsdt", hub)
    scored = ship_model.against_installed(path, "ani-1x-ccsdt", hub, tmp_path)  # now it replaces itself
    for split in ("val", "test"):
        assert scored[split]["new"] == scored[split]["replaced"] and scored[split]["new"]["n_structures"] > 0
    assert not ship_model.keeps_installed(scored)  # a tie goes to the new model
    registry = json.loads((hub / "registry.json").read_text())["models"]["ani-1x-ccsdt"]
    assert registry["sha256"] == entry["sha256"] and registry["default_head"] == CC and "MIT" in registry["license"]
    model = load_model(hub / "weights" / "ani-1x-ccsdt.safetensors")
    assert isinstance(model, EnsembleModel) and len(model.members) == 2 and CC in model.heads
    assert isinstance(model.members[0], RoutedModel) and choice["start_head_kept"] == DFT
    assert isinstance(model.members[0].parts[1], DeltaModel) and set(model.heads) == {DFT, "mp2_ccpvdz", CC}
    start = load_model(pretrained_ensemble)
    batch = collate(embedded_samples("test", CC)[:4]).to("cpu", model.dtype)
    # The start's members, untouched; the ensemble of routed members sums them one by one where the
    # start's shares its AEV: equal to float rounding
    assert torch.allclose(model(batch, DFT)["energy"], start(batch, DFT)["energy"], rtol=0, atol=1e-5)


def test_a_remade_model_replaces_the_installed_one_only_if_it_is_not_worse_on_validation():
    def pair(new, replaced):
        return {"new": {"relative_energy_rmse_kcal_mol": new}, "replaced": {"relative_energy_rmse_kcal_mol": replaced}}

    def compared(new, replaced, frontier=None):
        out = {"val": pair(new, replaced), "test": pair(0.1, 9.0), "frontier_test": pair(0.1, 9.0)}
        return out | ({"frontier_val": pair(*frontier)} if frontier else {})

    assert ship_model.keeps_installed(compared(1.83, 1.80))  # validation decides; test (report only) does not
    assert not ship_model.keeps_installed(compared(1.80, 1.83))
    assert not ship_model.keeps_installed(compared(1.80, 1.80))
    # with frontier labels: better (or equal) there, and no more than the tolerance worse on the small ones
    assert not ship_model.keeps_installed(compared(1.84, 1.80, frontier=(0.45, 0.52)))
    assert ship_model.keeps_installed(compared(1.90, 1.80, frontier=(0.45, 0.52)))  # lost on the small ones
    assert ship_model.keeps_installed(compared(1.70, 1.80, frontier=(0.53, 0.52)))  # lost on the frontier


def test_a_remade_model_is_the_next_version_and_says_what_changed(tmp_path, pretrained_ensemble):
    hub = tmp_path / "hub"
    (hub / "weights").mkdir(parents=True)
    (hub / "registry.json").write_text(json.dumps({"format_version": 1, "models": {}}))
    first = ship_model.install(pretrained_ensemble, "ani-1x-ccsdt", hub)
    assert first["version"] == 1 and "changes" not in first
    assert ship_model.install(pretrained_ensemble, "ani-1x-ccsdt", hub)["version"] == 1  # the same file again
    other = tmp_path / "other.safetensors"
    choice = {"recipe": "mp2_transfer>delta", "start": "ani-1x", "choice_split": "frontier_val",
              "compared": {"frontier_val": {"new": {"relative_energy_rmse_kcal_mol": 0.41},
                                            "replaced": {"relative_energy_rmse_kcal_mol": 0.52}}}}
    from foundation.hub.format import save_model
    model = load_model(pretrained_ensemble)
    with torch.no_grad():
        next(model.parameters()).add_(0.01)
    second = ship_model.install(save_model(model, other), "ani-1x-ccsdt", hub, ship_model.describe_change(choice))
    assert second["version"] == 2
    assert second["changes"] == ("recipe mp2_transfer>delta from ani-1x, chosen on frontier_val; "
                                 "frontier_val rel. E RMSE 0.41 (was 0.52) kcal/mol")


def test_keep_start_head_routes_the_dft_head_to_the_start_members(pretrained_ensemble, tmp_path):
    from foundation.hub.format import save_model
    from foundation.models.ensemble import EnsembleModel

    start = load_model(pretrained_ensemble)
    members = load_model(pretrained_ensemble).members
    for member in members:
        member.add_head(CC, copy_from=DFT)
    tuned = EnsembleModel.from_members(list(members))
    with torch.no_grad():
        for p in tuned.parameters():
            p.add_(0.01)
    routed = load_model(ship_model.keep_start_head(save_model(tuned, tmp_path / "t.safetensors"),
                                                    str(pretrained_ensemble), tmp_path / "r.safetensors"))
    batch = collate(embedded_samples("test", CC)[:4]).to("cpu", routed.dtype)
    # routed members run whole, the start's share one AEV: equal to float rounding (float32)
    assert torch.allclose(routed(batch, DFT)["forces"], start(batch, DFT)["forces"], rtol=0, atol=1e-5)
    assert torch.allclose(routed(batch, CC)["energy"], tuned(batch, CC)["energy"], rtol=0, atol=1e-5)
