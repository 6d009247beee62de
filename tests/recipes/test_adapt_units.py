"""The pieces of `foundation adapt` that need no calculation (issue 27): the cost model and its
calibration, the choice of what to label within a budget, the arguments' parsing."""

from __future__ import annotations

import numpy as np
import pytest

from foundation.errors import UserError
from foundation.recipes.adapt import parse_budget, parse_mix, parse_temperatures
from foundation.recipes.adapt.choose import HOLDOUT_GAP, PICK_GAP, Scores, allocate, choose_holdout, rank
from foundation.recipes.adapt.costs import CostModel, basis_functions
from foundation.recipes.adapt.sampling import Candidate

CC, MP2 = "ccsdt_ccpvdz", "mp2_ccpvdz"


def test_the_cost_model_calibrates_scale_and_exponent_on_the_runs_calculations():
    assert basis_functions([8, 1, 1]) == 24 and basis_functions([6, 6, 8] + [1] * 6) == 72
    prior = CostModel.prior([CC, MP2])
    assert prior.seconds(CC, 72) == pytest.approx(6.65) and prior.levels[CC].calibrated_on == 0
    # CC measured at two sizes growing like nbf^5 and 3x the prior's scale; MP2 at one size only
    measured = [(CC, 48, 3 * 6.65 * (48 / 72) ** 5), (CC, 96, 3 * 6.65 * (96 / 72) ** 5), (MP2, 72, 1.0)]
    fitted = prior.calibrated(measured)
    assert fitted.levels[CC].exponent == pytest.approx(5.0) and fitted.seconds(CC, 72) == pytest.approx(3 * 6.65)
    assert fitted.levels[MP2].exponent == 4.0 and fitted.seconds(MP2, 72) == pytest.approx(1.0)  # scale only
    assert fitted.levels[CC].calibrated_on == 2 and "calibrated on 2" in fitted.describe({"m": 72})[0]


def _candidates(molecules=("a", "b"), trajectories=2, frames=30, interval=20):
    out = []
    for m, name in enumerate(molecules):
        numbers = np.array([8, 1, 1] if m == 0 else [6, 8] + [1] * 4)
        for t in range(trajectories):
            for f in range(1, frames + 1):
                out.append(Candidate(f"{name}/t{t}s{f * interval:05d}", name, numbers, np.zeros((len(numbers), 3)),
                                     300.0, f * interval, t, "md", 0.0))
    return out


def test_picks_take_molecules_and_levels_in_turn_within_the_shares_and_keep_clear_of_the_held_out():
    candidates = _candidates()
    rng = np.random.default_rng(0)
    scores = Scores(energy=rng.normal(size=len(candidates)), spread=rng.uniform(size=len(candidates)),
                    atom_spread=rng.uniform(size=len(candidates)))
    held = choose_holdout(candidates, 3, seed=0)
    assert [c.molecule for c in held] == ["a"] * 3 + ["b"] * 3 and {c.trajectory for c in held[:3]} == {0, 1}
    costs = CostModel.prior([CC, MP2])
    mix = {CC: 0.7, MP2: 0.3}
    tasks = allocate(candidates, rank(candidates, scores), mix, 60.0, costs, holdout=held)
    for fid, share in mix.items():
        assert sum(t.estimate for t in tasks if t.fidelity == fid) <= 60.0 * share
    assert {t.candidate.molecule for t in tasks[:4]} == {"a", "b"}  # molecules in turn
    assert {t.fidelity for t in tasks} == {CC, MP2}
    picked = [t.candidate for t in tasks]
    assert len({c.id for c in picked}) == len(picked)
    for c in picked:
        for h in held:
            assert (c.molecule, c.trajectory) != (h.molecule, h.trajectory) or abs(c.step - h.step) > HOLDOUT_GAP
        for d in picked:
            if d is not c and (c.molecule, c.trajectory) == (d.molecule, d.trajectory):
                assert abs(c.step - d.step) > PICK_GAP


def test_the_arguments_are_read_or_refused_in_one_line():
    assert parse_budget("3h") == 10800 and parse_budget("90m") == 5400 and parse_budget("45s") == 45
    assert parse_temperatures("300..600") == (300.0, 400.0, 500.0, 600.0) and parse_temperatures("450") == (450.0,)
    assert parse_mix(None) == {CC: 0.5, MP2: 0.5} and parse_mix("ccsdt_ccpvdz=7,mp2_ccpvdz=3") == {CC: 0.7, MP2: 0.3}
    for bad, call in (("3 hours", parse_budget), ("hot", parse_temperatures), ("mp2_ccpvdz=1", parse_mix),
                      ("ccsdt_ccpvdz=1,b3lyp=1", parse_mix)):
        with pytest.raises(UserError):
            call(bad)


def test_molecules_come_from_smiles_files_and_structures_and_an_open_shell_structure_is_refused(tmp_path):
    import ase.io
    from ase.build import molecule

    from foundation.recipes.adapt.door import read_molecules

    (tmp_path / "mols.smi").write_text("# mine\nCCO ethanol\nC=O\n")
    frames = [molecule("H2O"), molecule("CH3OH"), molecule("H2O")]
    frames[2].positions += 0.01
    ase.io.write(tmp_path / "mine.xyz", frames)
    found = read_molecules([str(tmp_path / "mols.smi"), "N"], str(tmp_path / "mine.xyz"), [1, 6, 7, 8], "start")
    assert [m.name for m in found[:3]] == ["ethanol", "mol0001", "mol02"] and found[0].smiles == "CCO"
    assert [len(m.starts) for m in found[3:]] == [2, 1] and found[3].smiles is None  # water twice, methanol once
    ase.io.write(tmp_path / "radical.xyz", [molecule("CH3")])
    with pytest.raises(UserError, match=r"radical.xyz:0: charge \+0, doublet; adapt labels neutral closed-shell"):
        read_molecules([], str(tmp_path / "radical.xyz"), [1, 6, 7, 8], "start")


def test_ri_mp2_labels_train_the_mp2_head_and_are_priced_as_ri(tmp_path):
    import json

    from foundation.recipes.adapt.tuning import train_samples

    folder = tmp_path / "round1"
    folder.mkdir()
    s = {"id": "m/0", "molecule": "m", "numbers": [8, 1, 1], "positions": [[0, 0, 0.12], [0, 0.76, -0.47], [0, -0.76, -0.47]],
         "sampling": "md", "split": "train", "levels": ["mp2_ccpvdz_ri"]}
    (folder / "structures.jsonl").write_text(json.dumps(s) + "\n")
    r = {"id": "m/0", "fidelity": "mp2_ccpvdz_ri", "status": "ok", "energy": -2075.0, "forces": None}
    (folder / "labels.jsonl").write_text(json.dumps(r) + "\n")
    train, held = train_samples(tmp_path)
    assert [t.energies for t in train] == [{MP2: -2075.0}] and held == []
    prior = CostModel.prior([MP2, "mp2_ccpvdz_ri"])
    assert prior.seconds("mp2_ccpvdz_ri", 96) < prior.seconds(MP2, 96) / 10  # energies with fitted integrals


@pytest.mark.integration
def test_the_ledger_charges_child_processes_cpu_unless_it_is_counted_elsewhere(tmp_path):
    """Fine-tuning members run in child processes: their CPU is the budget's too; the labeller's
    workers' is not charged again (each calculation records its own)."""
    import subprocess
    import sys

    from foundation.recipes.adapt.ledger import Ledger

    burn = [sys.executable, "-c", "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass"]
    ledger = Ledger(tmp_path)
    subprocess.run(burn, check=True)
    assert ledger.seconds() >= 0.3
    assert ledger.charge("fine-tuning") >= 0.3
    ledger.labelling = True
    subprocess.run(burn, check=True)
    assert ledger.seconds() < 0.6  # not even before it is charged
    assert ledger.charge("labelling (this process)") < 0.3
    ledger.labelling = False
    assert 0.3 <= ledger.seconds() < 0.6


def test_a_later_round_keeps_for_its_fine_tune_what_one_cost_not_the_whole_share():
    """A 3 h run's fine-tunes cost 1-2 % of it: keeping a quarter for them left 0.7 CPU-hours unspent."""
    from foundation.recipes.adapt.run import FINETUNE_MARGIN, labelling_limit

    assert labelling_limit(10800.0, 2, 0.25, 1) == pytest.approx(5400 - 1350)  # nothing measured: the share
    assert labelling_limit(10800.0, 2, 0.25, 2, [40.0]) == pytest.approx(10800 - FINETUNE_MARGIN * 40.0)
    assert labelling_limit(10800.0, 2, 0.25, 2, [1000.0, 30.0]) == pytest.approx(10800 - 1350)  # never above the share


def test_a_start_without_a_cc_head_such_as_ani_1x_gets_one_copied_from_its_default_head(tmp_path, make_samples):
    """adapt's fine-tune named the CC head as the one to copy new heads from, which ANI-1x lacks."""
    from foundation.hub.format import save_model
    from foundation.loading import load_model
    from foundation.models.ensemble import EnsembleModel
    from foundation.models.registry import build_model
    from foundation.recipes.adapt.tuning import finetune_round

    from tests.conftest import TINY_MODEL

    import torch

    members = []
    for k in range(2):
        torch.manual_seed(k)
        members.append(build_model(dict(TINY_MODEL)))
    start = save_model(EnsembleModel.from_members(members), tmp_path / "dft_only.safetensors")
    assert CC not in load_model(start).heads
    samples = make_samples(n_molecules=3, n_conformers=4, fidelity=CC, forces=False)
    result = finetune_round(str(start), samples, tmp_path / "model.safetensors", tmp_path / "run", None, 4, 0,
                            start_heads=load_model(start).heads)
    tuned = load_model(result.model_path)
    assert CC in tuned.heads and tuned.default_head == CC


def test_the_command_and_the_function_start_from_the_same_model():
    from foundation.cli.main import build_parser
    from foundation.recipes.adapt.run import DEFAULT_START, adapt
    import inspect

    args = build_parser().parse_args(["adapt", "--smiles", "O", "--budget", "1m", "--out", "x"])
    assert args.model == DEFAULT_START == inspect.signature(adapt).parameters["model"].default == "ani-1x"


def test_admission_starts_a_calculation_only_while_spent_in_flight_and_its_estimate_fit(tmp_path):
    from types import SimpleNamespace

    from foundation.recipes.adapt.labelling import Admission

    costs = CostModel.prior(["ccsdt_ccpvdz"])
    water = np.array([8, 1, 1])
    estimate = costs.seconds("ccsdt_ccpvdz", basis_functions(water))
    spent = [0.0]
    admit = Admission(tmp_path, tmp_path / "labels", costs, limit=10.0, spent_elsewhere=lambda: spent[0],
                      always=frozenset({"held"}))
    task = lambda name: SimpleNamespace(id=name, numbers=water)  # noqa: E731
    assert admit(task("a"), "ccsdt_ccpvdz")  # 0 + its estimate fits 10 s
    spent[0] = 10.0 - 1.5 * estimate  # a's estimate still in flight: one more does not fit
    assert not admit(task("b"), "ccsdt_ccpvdz")
    assert admit(task("held"), "ccsdt_ccpvdz")  # the held-out set is labelled whatever the budget
    spent[0] = 10.0 - 3.5 * estimate  # a and held in flight
    assert admit(task("b"), "ccsdt_ccpvdz")
