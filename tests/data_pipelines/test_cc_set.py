"""The new CC set: its molecule list and the active/random conformer picks."""

import json
from pathlib import Path

import numpy as np

from foundation.pipelines.cc_set.molecules import excluded, split_of
from foundation.pipelines.cc_set.select import interleave, picks, round_robin
from foundation.pipelines.chemistry.enumerate import canonical
from foundation.pipelines.chemistry.families import FAMILIES

CC_SET = Path(__file__).parents[2] / "data_pipelines" / "cc_set"


def test_committed_molecule_list_covers_every_family_twice_and_keeps_held_out_molecules_out():
    listing = json.loads((CC_SET / "molecules.json").read_text())
    molecules = listing["molecules"]
    assert len(molecules) >= 60
    for family in FAMILIES:
        assert sum(family in m["families"] for m in molecules) >= 2, family
    held_out = excluded()
    for name in ("propene", "C=CC"), ("formamide", "NC=O"), ("propan_2_ol", "CC(C)O"):
        assert canonical(name[1]) in held_out
    assert not held_out & {m["smiles"] for m in molecules}
    assert {m["split"] for m in molecules} == {"train", "val", "test"}


def test_splits_follow_the_order_of_choice():
    assert [split_of(k) for k in range(8)] == ["train"] * 3 + ["val"] + ["train"] * 3 + ["test"]


def test_active_picks_are_the_most_disagreed_and_random_picks_are_seeded():
    spread = np.array([0.1, 0.5, 0.3, 0.9, 0.2])
    p = picks("CCO", 5, spread, 2)
    assert p["active"] == [3, 1]
    assert p == picks("CCO", 5, spread, 2) and len(p["random"]) == 2
    assert picks("CCO", 5, None, 2)["active"] == [] and len(picks("CCO", 5, None, 2)["random"]) == 4


def test_round_robin_takes_pick_r_of_every_molecule_before_pick_r_plus_one():
    assert round_robin([[0, 1, 2], [5], [7, 8]]) == [(0, 0), (1, 5), (2, 7), (0, 1), (2, 8), (0, 2)]
    assert round_robin([[1, 1]]) == [(0, 1)]  # a conformer picked twice is labelled once
    assert interleave([1, 2, 3], [4]) == [1, 4, 2, 3]


def test_the_selection_records_the_committee_files_sha256_for_a_registry_name_and_a_path(tmp_path):
    from foundation.hub.registry import get_entry
    from foundation.pipelines.cc_set.select import committee_sha256

    assert committee_sha256("ani-1x") == get_entry("ani-1x").sha256
    (tmp_path / "m.safetensors").write_bytes(b"abc")
    assert committee_sha256(str(tmp_path / "m.safetensors")) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    committed = json.loads((Path(__file__).parents[2] / "data_pipelines/cc_set/selection.json").read_text())
    assert committed["committee_sha256"] == get_entry(committed["committee"]).sha256
