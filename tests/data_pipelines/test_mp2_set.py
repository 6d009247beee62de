"""The MP2 set: >= 300 training molecules of 4-8 heavy atoms, none held out anywhere, >= 3,000
committee-chosen structures labelled at mp2_ccpvdz."""

import collections
import json

import numpy as np

from foundation.pipelines.chemistry.enumerate import canonical, enumerate_molecules
from foundation.pipelines.label.conformers import bonds
from foundation.pipelines.mp2_set import molecules, select


def test_molecules_are_4_to_8_heavy_atoms_and_never_a_held_out_molecule():
    chosen = json.loads((molecules.HERE / "molecules.json").read_text())["molecules"]
    assert len(chosen) >= 300 and all(4 <= m["heavy_atoms"] <= 8 for m in chosen)
    held_out = molecules.held_out()
    assert "CCOCC" in held_out and "C=CC" in held_out  # a frontier and an embedded test molecule
    assert not {canonical(m["smiles"], 8) for m in chosen} & held_out
    assert all(m["split"] == "train" for m in chosen)


def test_the_larger_enumeration_keeps_the_small_one():
    assert set(enumerate_molecules()) <= set(enumerate_molecules(8, large=True))


def test_structures_are_the_committees_picks_round_robin():
    lines = [json.loads(x) for x in (select.HERE / "labels" / "structures.jsonl").read_text().splitlines()]
    assert len(lines) >= 3000 and all(r["levels"] == ["mp2_ccpvdz"] for r in lines)
    per_molecule = collections.Counter(r["molecule"] for r in lines)
    assert len(per_molecule) >= 300 and set(per_molecule.values()) == {10}
    first_round = [r["molecule"] for r in lines[: len(per_molecule)]]
    assert len(set(first_round)) == len(per_molecule)  # every molecule before any second pick
    selection = json.loads((select.HERE / "selection.json").read_text())
    record = selection["molecules"][0]
    assert record["picks"] == select.most_disagreed(np.array(record["spread_ev_per_atom"]), 10)
    for r in lines[:40]:
        assert len(bonds(np.array(r["numbers"]), np.array(r["positions"]))) >= len(r["numbers"]) - 1
