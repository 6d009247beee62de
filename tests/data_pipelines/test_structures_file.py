"""`foundation.pipelines.label.structures`: the one reader and writer of `structures.jsonl` and of
SMILES files. Every writer of a labelling folder goes through it (checked from the source)."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.io import write

from foundation.errors import DataError, UserError
from foundation.pipelines.label.structures import (FILE, Structure, has_structures, read_smiles, read_structures,
                                                   record, structures_from_file, write_structures)

REPO = Path(__file__).resolve().parents[2]
WATER = np.array([[0.0, 0.0, 0.117], [0.0, 0.757, -0.467], [0.0, -0.757, -0.467]])


def _water(k: int, **kw) -> Structure:
    return Structure(id=f"water/{k:04d}", molecule="water", numbers=np.array([8, 1, 1]), positions=WATER + 1e-9 * k,
                     sampling="test", split="train", levels=["wb97x_631gs"], **kw)


def test_structures_read_back_as_written_and_a_neutral_singlet_has_no_charge_keys(tmp_path):
    written = [_water(0), _water(1, charge=1, multiplicity=2)]
    write_structures(tmp_path, written)
    lines = [json.loads(line) for line in (tmp_path / FILE).read_text().splitlines()]
    assert "charge" not in lines[0] and (lines[1]["charge"], lines[1]["multiplicity"]) == (1, 2)
    assert list(lines[0]) == ["id", "molecule", "numbers", "positions", "sampling", "split", "levels"]
    back = read_structures(tmp_path)
    assert [s.id for s in back] == ["water/0000", "water/0001"] and (back[1].charge, back[1].multiplicity) == (1, 2)
    assert np.array_equal(back[0].positions, np.round(WATER, 8))  # rounded to 1e-8 Å: rebuilt files are identical
    assert record(back[1]) == lines[1]


def test_a_file_is_written_once_unless_replaced(tmp_path):
    write_structures(tmp_path, [_water(0), _water(1)])
    write_structures(tmp_path, [_water(2)])  # a resumed run labels what it began with
    assert [s.id for s in read_structures(tmp_path)] == ["water/0000", "water/0001"]
    write_structures(tmp_path, [_water(2)], replace=True)
    assert [s.id for s in read_structures(tmp_path)] == ["water/0002"] and has_structures(tmp_path)


def test_a_bad_line_or_a_missing_file_is_one_line_naming_it(tmp_path):
    with pytest.raises(DataError, match="structures.jsonl: no such file"):
        read_structures(tmp_path)
    (tmp_path / FILE).write_text(json.dumps(record(_water(0))) + "\n{\"id\": \"x\"}\n")
    with pytest.raises(DataError, match=r"structures.jsonl: line 2: no key 'molecule'"):
        read_structures(tmp_path)
    (tmp_path / FILE).write_text("not json\n")
    with pytest.raises(DataError, match="line 1: not a valid structure record"):
        read_structures(tmp_path)


def test_smiles_files_name_unnamed_molecules_and_skip_comments(tmp_path):
    path = tmp_path / "mols.smi"
    path.write_text("# a comment\nCO methanol\n\nc1ccccc1\n")
    assert read_smiles(path) == [("CO", "methanol"), ("c1ccccc1", "mol0001")]
    with pytest.raises(UserError, match="missing.smi: cannot read SMILES file"):
        read_smiles(tmp_path / "missing.smi")


def test_structures_from_a_file_carry_their_declared_charge_and_spin(tmp_path):
    cation = Atoms("OH3", positions=[[0, 0, 0], [0.97, 0, 0], [-0.3, 0.92, 0], [-0.3, -0.46, 0.8]], info={"charge": 1})
    write(tmp_path / "in.xyz", [Atoms("OH2", positions=WATER), cation])
    s = structures_from_file(tmp_path / "in.xyz", ["wb97x_631gs"])
    assert [(x.id, x.charge, x.multiplicity, x.sampling) for x in s] == [("in/00000", 0, 1, "given"),
                                                                          ("in/00001", 1, 1, "given")]
    write(tmp_path / "odd.xyz", Atoms("OH", positions=[[0, 0, 0], [0.97, 0, 0]], info={"spin": 1}))
    with pytest.raises(UserError, match="odd.xyz:0"):
        structures_from_file(tmp_path / "odd.xyz", ["wb97x_631gs"])


def _names_the_file(path: Path) -> bool:
    """The string "structures.jsonl" in code (not in prose): a module that opens the file itself."""
    tree = ast.parse(path.read_text())
    docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                  if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))
                  and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    return any(isinstance(n, ast.Constant) and n.value == FILE and id(n) not in docstrings for n in ast.walk(tree))


def test_no_other_module_opens_structures_jsonl_itself():
    owner = REPO / "data_pipelines" / "label" / "structures.py"
    sources = [p for d in ("foundation", "data_pipelines", "recipes", "benchmarks") for p in (REPO / d).rglob("*.py")]
    assert sorted(str(p.relative_to(REPO)) for p in sources if p != owner and _names_the_file(p)) == []


def test_a_selection_is_refused_once_labelling_has_started_on_its_folder(tmp_path):
    from foundation.errors import UserError
    from foundation.pipelines.frontier import build
    from foundation.pipelines.label.structures import refuse_if_labelled

    refuse_if_labelled(tmp_path)  # nothing labelled: fine
    (tmp_path / "labels.jsonl").write_text("")
    with pytest.raises(UserError, match="labels.jsonl exists: labelling has started on these structures; pass --force"):
        refuse_if_labelled(tmp_path, "pass --force")
    assert build.main(["--out", str(tmp_path)]) == 2  # one line, exit 2; nothing rewritten
    assert not (tmp_path / "structures.jsonl").exists()
