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
