"""The added small validation molecules are new to every other set, 2-5 heavy atoms, split val, and
their committed files are the builder's."""

import json

import numpy as np

from foundation.pipelines.chemistry.enumerate import canonical
from foundation.pipelines.small_val import build


def _committed():
    molecules = json.loads((build.HERE / "molecules.json").read_text())["molecules"]
    structures = [json.loads(line) for line in (build.HERE / "labels" / "structures.jsonl").read_text().splitlines()]
    return molecules, structures


def test_molecules_are_new_to_every_set_small_and_validation_only():
    molecules, structures = _committed()
    smiles = [canonical(m["smiles"], max_heavy=99) for m in molecules]
    assert len(smiles) == len(set(smiles)) == build.N_MOLECULES
    assert not set(smiles) & build.taken()  # in no training, validation or test split of any other set
    assert all(2 <= m["heavy_atoms"] <= build.MAX_HEAVY and m["split"] == "val" for m in molecules)
    assert {s["split"] for s in structures} == {"val"} and all(s["id"].startswith(build.PREFIX) for s in structures)
    assert all(s["levels"] == ["ccsdt_ccpvdz"] for s in structures)


def test_the_committed_files_are_the_builders(tmp_path):
    molecules, structures = _committed()
    out = tmp_path / "labels"
    assert build.build(out) == len(structures) == 2 * build.K * build.N_MOLECULES
    assert json.loads((tmp_path / "molecules.json").read_text())["molecules"] == molecules
    ours = [json.loads(line) for line in (out / "structures.jsonl").read_text().splitlines()]
    for a, b in zip(ours, structures):
        assert a["id"] == b["id"] and np.allclose(a["positions"], b["positions"], atol=1e-6)
    # round-robin: the first structure of every molecule before a second of any
    assert len({s["molecule"] for s in ours[:build.N_MOLECULES]}) == build.N_MOLECULES


def test_a_labelled_folder_is_not_overwritten(tmp_path, capsys):
    out = tmp_path / "labels"
    out.mkdir()
    (out / "labels.jsonl").write_text('{"id": "x"}\n')
    assert build.main(["--out", str(out)]) != 0
    assert "label" in capsys.readouterr().err and (out / "labels.jsonl").read_text() == '{"id": "x"}\n'
