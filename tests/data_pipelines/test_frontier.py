"""The frontier evaluation set holds molecules of 5-7 heavy atoms that no training split holds."""

import json

import numpy as np

from foundation.pipelines.frontier import build
from foundation.pipelines.label.conformers import bonds


def canonical(smiles: str) -> str:
    from rdkit import Chem

    return Chem.MolToSmiles(Chem.MolFromSmiles(smiles), isomericSmiles=False)


def _molecules(path):
    data = json.loads(path.read_text())
    return data["molecules"]


def _training_smiles() -> set[str]:
    here = build.HERE.parent
    embedded = _molecules(here / "embedded" / "plan.json")
    cc_set = _molecules(here / "cc_set" / "molecules.json")
    return {canonical(m["smiles"]) for m in embedded + cc_set}


def test_frontier_molecules_are_new_and_5_to_7_heavy_atoms():
    from rdkit import Chem

    molecules = _molecules(build.HERE / "molecules.json")
    smiles = [canonical(m["smiles"]) for m in molecules]
    assert len(set(smiles)) == len(smiles)
    assert not set(smiles) & _training_smiles()  # not trained on, not even held out elsewhere
    assert all(5 <= Chem.MolFromSmiles(s).GetNumHeavyAtoms() <= 7 for s in smiles)
    splits = [m["split"] for m in molecules]
    assert splits.count("frontier_val") >= 8 and splits.count("frontier_test") >= 8


def test_structures_file_matches_the_builder(tmp_path):
    """The committed structures.jsonl is what build() writes (deterministic), so labels stay attached."""
    build.build(4, build.HERE / "molecules.json", tmp_path)
    ours = (tmp_path / "structures.jsonl").read_text().splitlines()
    committed = (build.HERE / "labels" / "structures.jsonl").read_text().splitlines()
    assert len(ours) == len(committed) == 64
    for a, b in zip(map(json.loads, ours), map(json.loads, committed)):
        assert a["id"] == b["id"] and a["split"] == b["split"] and a["levels"] == b["levels"] == build.LEVELS
        assert np.allclose(a["positions"], b["positions"], atol=1e-6)
        numbers = np.array(a["numbers"])
        assert len(bonds(numbers, np.array(a["positions"]))) > 0


def test_the_adapt_measurements_held_out_molecules_are_in_no_training_set_and_their_file_is_the_builders(tmp_path):
    """foundation adapt's measured run is scored on molecules no set trains on (nor the MP2 set),
    conformers the builder writes at CCSD(T) only (`--levels`)."""
    here = build.HERE.parent / "adapt_eval"
    molecules = _molecules(here / "molecules.json")
    mp2_set = {canonical(m["smiles"]) for m in _molecules(build.HERE.parent / "mp2_set" / "molecules.json")}
    frontier = {canonical(m["smiles"]) for m in _molecules(build.HERE / "molecules.json")}
    smiles = {canonical(m["smiles"]) for m in molecules}
    assert len(smiles) >= 4 and not smiles & (_training_smiles() | mp2_set | frontier)
    build.build(6, here / "molecules.json", tmp_path, levels=["ccsdt_ccpvdz"])
    ours = (tmp_path / "structures.jsonl").read_text().splitlines()
    committed = (here / "labels" / "structures.jsonl").read_text().splitlines()
    assert len(ours) == len(committed) == 6 * len(molecules)
    for a, b in zip(map(json.loads, ours), map(json.loads, committed)):
        assert a["id"] == b["id"] and a["levels"] == b["levels"] == ["ccsdt_ccpvdz"]
        assert np.allclose(a["positions"], b["positions"], atol=1e-6)


def test_an_unknown_level_is_one_line_before_anything_is_written(tmp_path, capsys):
    code = build.main(["--molecules", str(build.HERE / "molecules.json"), "--out", str(tmp_path / "x"),
                       "--levels", "ccsdt_ccpvdz,b3lyp_sto3g"])
    assert code == 2 and "b3lyp_sto3g" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
