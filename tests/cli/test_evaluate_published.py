"""`foundation evaluate --model ani-1x`: a registry name of a published ensemble works where a
model file does (no network: the converted ANI-1x ships with the package)."""

from __future__ import annotations

import json

from foundation.cli.main import main


def test_evaluate_a_file_with_the_published_ani1x(tmp_path, molecules_xyz, monkeypatch, capsys):
    monkeypatch.setenv("FOUNDATION_OFFLINE", "1")
    data, samples = molecules_xyz(n_molecules=2, n_conformers=2)
    out = tmp_path / "scores.json"
    code = main(["evaluate", "--model", "ani-1x", "--data", str(data), "--energy-key", "REF_energy",
                 "--forces-key", "REF_forces", "--device", "cpu", "--json", str(out)])
    printed = capsys.readouterr().out
    assert code == 0 and "ani-1x on" in printed and f"head wb97x_631gs, {len(samples)} structures" in printed
    record = json.loads(out.read_text())
    assert record["model"] == "ani-1x" and record["n_structures"] == len(samples)
    assert record["head"] == "wb97x_631gs"
