"""Active against random CC labels: the picks are split fairly, from the committed selection."""

import numpy as np

from foundation.data.sample import Sample
from foundation.recipes.active_vs_random import candidate_of, selection, split_picks


def sample(source):
    return Sample(np.array([1, 1]), np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.74]]), energies={"ccsdt_ccpvdz": -1.0},
                  source=source)


def test_picks_are_cut_to_the_same_count_per_molecule_and_the_rest_is_kept():
    chosen = {"molecules": [{"name": "CO", "split": "train", "active": [3, 1, 2], "random": [0, 1]},
                            {"name": "CN", "split": "test", "active": [], "random": [0, 1]}]}
    samples = [sample(f"labels:CO/{k:04d}") for k in range(4)] + [sample("labels:methane/0000"), sample("labels:CN/0000")]
    rest, active, random = split_picks(samples, chosen)
    assert [candidate_of(s) for s in active] == [("CO", 3), ("CO", 1)]
    assert [candidate_of(s) for s in random] == [("CO", 0), ("CO", 1)]
    assert [s.source for s in rest] == ["labels:methane/0000", "labels:CN/0000"]


def test_partly_labelled_molecules_compare_equal_numbers():
    chosen = {"molecules": [{"name": "CO", "split": "train", "active": [3, 1], "random": [0, 2]}]}
    rest, active, random = split_picks([sample("labels:CO/0003"), sample("labels:CO/0001"), sample("labels:CO/0000")], chosen)
    assert len(active) == len(random) == 1 and not rest


def test_the_committed_selection_is_package_data_with_both_ways_for_every_training_molecule():
    record = selection()
    train = [m for m in record["molecules"] if m["split"] == "train"]
    assert record["committee"] == "ani-1x" and len(train) >= 40
    assert all(len(m["active"]) == len(m["random"]) == record["k"] for m in train)
