"""The MP2 curve: nested subsets of the MP2 set's molecules, every other label kept, tiny trainings."""

import pytest

from foundation.data.sample import Sample
from foundation.recipes import mp2_curve
from foundation.recipes.transfer import METRIC


def _s(molecule, energies):
    return Sample([1, 1], [[0, 0, 0], [0, 0, 0.74]], energies, molecule=molecule)


def test_the_mp2_set_is_what_has_an_mp2_energy_alone_and_grows_by_nested_molecules():
    assert mp2_curve.mp2_only(_s("a", {"mp2_ccpvdz": -1.0}))
    assert not mp2_curve.mp2_only(_s("a", {"mp2_ccpvdz": -1.0, "ccsdt_ccpvdz": -1.1}))  # a CC structure's partner
    samples = [_s(m, {"mp2_ccpvdz": -1.0}) for m in "abcdefgh" for _ in range(2)]
    points = mp2_curve.nested(samples, (0.0, 0.25, 0.5, 1.0))
    assert [n for n, _ in points] == [0, 2, 4, 8] and [len(s) for _, s in points] == [0, 4, 8, 16]
    names = [{s.molecule for s in chosen} for _, chosen in points]
    assert names[1] < names[2] < names[3]


@pytest.mark.integration  # trainings in worker processes
def test_the_curve_trains_each_point_and_scores_it(pretrained_ensemble, tiny, runs_dir):
    rows = mp2_curve.mp2_curve("mp2_transfer>finetune", str(pretrained_ensemble), runs_dir / "mp2_curve",
                               fractions=(0.0, 1.0), split="val", overrides=[*tiny[:-1], "trainer.max_steps=3"])
    assert [r["n_molecules"] for r in rows][0] == 0 and rows[-1]["n_structures"] > rows[0]["n_structures"] == 0
    assert all(r[METRIC] > 0 and len(r["per_seed"]) == 1 for r in rows)
