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
    picks = set(json.loads((select.HERE / "cc_picks.json").read_text())["structures"])
    assert len(lines) >= 3000 and all(r["levels"] == ["mp2_ccpvdz_ri"] + ["ccsdt_ccpvdz"] * (r["id"] in picks) for r in lines)
    per_molecule = collections.Counter(r["molecule"] for r in lines)
    assert len(per_molecule) >= 300 and set(per_molecule.values()) == {10}
    first_round = [r["molecule"] for r in lines[: len(per_molecule)]]
    assert len(set(first_round)) == len(per_molecule)  # every molecule before any second pick
    selection = json.loads((select.HERE / "selection.json").read_text())
    record = selection["molecules"][0]
    assert record["picks"] == select.most_disagreed(np.array(record["spread_ev_per_atom"]), 10)
    for r in lines[:40]:
        assert len(bonds(np.array(r["numbers"]), np.array(r["positions"]))) >= len(r["numbers"]) - 1


def test_every_cc_structure_gets_an_mp2_partner_once_and_its_labels_stay(tmp_path):
    from foundation.pipelines.label.structures import Structure, read_structures, write_structures
    from foundation.pipelines.mp2_set.partners import add_partners

    def s(i, levels):
        return Structure(id=f"m/{i}", molecule="m", numbers=np.array([8, 1, 1]), positions=np.eye(3),
                         sampling="given", split="train", levels=levels)

    write_structures(tmp_path, [s(0, ["wb97x_631gs"]), s(1, ["wb97x_631gs", "ccsdt_ccpvdz"])])
    (tmp_path / "labels.jsonl").write_text('{"id": "m/1", "fidelity": "ccsdt_ccpvdz", "status": "ok"}\n')
    assert add_partners(tmp_path) == 1 and add_partners(tmp_path) == 0
    got = read_structures(tmp_path)
    assert [x.levels for x in got] == [["wb97x_631gs"], ["wb97x_631gs", "ccsdt_ccpvdz", "mp2_ccpvdz_ri"]]
    np.testing.assert_array_equal(got[1].positions, np.eye(3))
    assert "m/1" in (tmp_path / "labels.jsonl").read_text()


def test_the_shipped_cc_structures_plan_their_mp2_partners():
    from foundation.pipelines.label.structures import read_structures
    from foundation.pipelines.mp2_set.partners import FOLDERS

    for folder in FOLDERS:
        cc = [s for s in read_structures(folder) if "ccsdt_ccpvdz" in s.levels]
        assert cc and all("mp2_ccpvdz_ri" in s.levels for s in cc)


def test_cc_picks_cover_families_first_then_the_committees_doubt_at_5_to_7_heavy_atoms():
    from foundation.pipelines.mp2_set.cc_picks import choose_molecules

    mols = [{"name": n, "heavy_atoms": h, "families": f} for n, h, f in
            [("a", 5, ["ester"]), ("b", 6, ["ester"]), ("c", 7, ["amine"]), ("d", 4, ["nitrile"]), ("e", 8, ["diol"])]]
    spread = {"a": 0.1, "b": 0.3, "c": 0.2, "d": 0.9, "e": 0.9}
    assert [m["name"] for m in choose_molecules(mols, spread, 2)] == ["b", "c"]  # one ester (the doubted one), the amine
    assert [m["name"] for m in choose_molecules(mols, spread, 3)] == ["b", "c", "a"]


def test_the_shipped_cc_picks_are_frontier_sized_committee_picks_of_30_molecules():
    summary = json.loads((select.HERE / "cc_picks.json").read_text())
    selection = {r["name"]: r for r in json.loads((select.HERE / "selection.json").read_text())["molecules"]}
    heavy = {m["name"]: m["heavy_atoms"] for m in json.loads((molecules.HERE / "molecules.json").read_text())["molecules"]}
    assert len(summary["molecules"]) >= 30 and len(summary["structures"]) >= 100
    assert all(5 <= heavy[m] <= 7 for m in summary["molecules"])
    for sid in summary["structures"]:
        name, conf = sid.rsplit("/", 1)
        assert int(conf) in selection[name]["picks"][:3]
