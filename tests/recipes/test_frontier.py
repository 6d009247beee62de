"""The frontier table scores models and the exact methods against CCSD(T), by molecule size."""

import json

import numpy as np
import pytest

from foundation.evaluation import metrics
from foundation.recipes import frontier
from foundation.recipes.common import CC, DFT

EMBEDDED_LABELS = frontier.LABELS.parent.parent / "embedded" / "labels"


def test_exact_method_rows_are_the_labels_scored_against_cc():
    samples = frontier.frontier_samples("test", EMBEDDED_LABELS)
    assert samples and all(CC in s.energies for s in samples)
    rows = frontier.method_rows(samples, DFT)
    expected = metrics.relative_energy_rmse_kcal_mol(np.array([s.energies[DFT] for s in samples]),
                                                     np.array([s.energies[CC] for s in samples]),
                                                     [s.molecule for s in samples])
    assert frontier.summarise(rows)["relative_energy_rmse_kcal_mol"] == pytest.approx(expected)
    mp2 = frontier.method_rows(samples, "mp2_ccpvdz")  # the RI-MP2 partners of the CC structures
    assert len(mp2) == len(samples) and frontier.summarise(mp2)["relative_energy_rmse_kcal_mol"] < expected
    assert frontier.method_rows(samples, "no_such_fidelity") == []


def test_table_by_heavy_atoms_and_cli(tmp_path, capsys):
    code = frontier.main(["--split", "test", "--labels", str(EMBEDDED_LABELS), "--models", "ani-cc-mini",
                          "--json", str(tmp_path / "t.json")])
    assert code == 0
    table = json.loads((tmp_path / "t.json").read_text())
    row = table["rows"]["ani-cc-mini"]
    assert row["n_structures"] == sum(r["n_structures"] for r in row["by_heavy_atoms"])
    assert {r["heavy_atoms"] for r in row["by_heavy_atoms"]} == {m["heavy_atoms"] for m in row["per_molecule"].values()}
    out = capsys.readouterr().out
    assert "ani-cc-mini" in out and "exact ωB97X/6-31G*" in out and "heavy" in out


def test_a_split_without_cc_labels_is_one_line(tmp_path):
    from foundation.errors import UserError

    with pytest.raises(UserError, match="no CCSD\\(T\\)-labelled structure of split 'nope'"):
        frontier.frontier_table([], "nope", EMBEDDED_LABELS)
