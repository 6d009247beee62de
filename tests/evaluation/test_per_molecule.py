"""Errors per molecule, worst first, and `foundation evaluate --per-molecule`."""

import math

import numpy as np
import pytest

from foundation.evaluation.per_molecule import by_size, format_by_size, format_per_molecule, heavy_atoms, per_molecule


def rows(molecule, ref, pred, formula="CH4"):
    return [{"molecule": molecule, "formula": formula, "energy_ref_ev": r, "energy_pred_ev": p} for r, p in zip(ref, pred)]


def test_each_molecule_gets_its_own_relative_error_and_the_worst_comes_first():
    good = rows("good", [0.0, 0.1, 0.2], [5.0, 5.1, 5.2])  # a constant offset: no relative error
    bad = rows("bad", [0.0, 0.1], [0.0, 0.2], formula="H2O")
    lone = rows("", [1.0], [1.5], formula="NH3")  # no molecule key: grouped by formula
    table = per_molecule(good + bad + lone)
    assert [r["molecule"] for r in table] == ["bad", "good", "NH3"]
    assert table[0]["relative_energy_rmse_kcal_mol"] == pytest.approx(0.05 * 23.0605, rel=1e-3)
    assert table[1]["relative_energy_rmse_kcal_mol"] == pytest.approx(0.0, abs=1e-9)
    assert table[1]["energy_mae_kcal_mol"] == pytest.approx(5 * 23.0605, rel=1e-3)
    assert math.isnan(table[2]["relative_energy_rmse_kcal_mol"]) and table[2]["n_structures"] == 1
    text = format_per_molecule(table)
    assert text.splitlines()[2].split()[0] == "bad" and "–" in text.splitlines()[-1]


def test_heavy_atoms_and_the_breakdown_by_size():
    assert heavy_atoms("C4H10O") == 5 and heavy_atoms("H2") == 0 and heavy_atoms("CH4") == 1
    small = rows("methane", [0.0, 0.1], [0.0, 0.2], formula="CH4")  # relative error 0.05 eV
    large_a = rows("ether", [0.0, 0.1], [0.0, 0.1], formula="C4H10O")  # none
    large_b = rows("butanol", [0.0, 0.1], [0.0, 0.3], formula="C4H10O")  # 0.1 eV
    table = by_size(small + large_a + large_b)
    assert [r["heavy_atoms"] for r in table] == [1, 5]
    assert table[1]["n_molecules"] == 2 and table[1]["n_structures"] == 4
    # pooled over the molecules of one size, each molecule's own mean removed
    assert table[1]["relative_energy_rmse_kcal_mol"] == pytest.approx(np.sqrt((0 + 0.1**2) / 2) * 23.0605, rel=1e-3)
    assert per_molecule(large_b)[0]["heavy_atoms"] == 5
    assert format_by_size(table).splitlines()[1].split()[:3] == ["1", "1", "2"]


def test_forces_are_scored_per_molecule_when_compared():
    r = rows("w", [0.0, 0.1], [0.0, 0.1])
    for row in r:
        row["forces_ref_ev_per_a"], row["forces_pred_ev_per_a"] = [[0.0, 0.0, 0.0]], [[0.3, 0.0, 0.0]]
    assert per_molecule(r)[0]["forces_mae_ev_per_a"] == pytest.approx(0.1)


def test_cli_prints_the_per_molecule_table(tmp_path, molecules_xyz, capsys):
    from foundation.cli.main import main

    data, _ = molecules_xyz(n_molecules=3, n_conformers=3, energy_key="E_cc")
    code = main(["evaluate", "--model", "ani-cc-mini", "--data", str(data), "--energy-key", "E_cc",
                 "--head", "ccsdt_ccpvdz", "--per-molecule", "--device", "cpu", "--json", str(tmp_path / "s.json")])
    out = capsys.readouterr().out
    assert code == 0 and "rel. E RMSE" in out and "heavy atoms" in out
    import json

    table = json.loads((tmp_path / "s.json").read_text())["per_molecule"]
    assert len(table) == 3 and sum(r["n_structures"] for r in table) == 9
    values = [r["relative_energy_rmse_kcal_mol"] for r in table]
    assert values == sorted(values, reverse=True) and np.all(np.isfinite(values))
    sizes = json.loads((tmp_path / "s.json").read_text())["by_heavy_atoms"]
    assert sum(r["n_structures"] for r in sizes) == 9
