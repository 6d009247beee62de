"""foundation.recipes.adapt.score: an adapt run scored on conformers it never produced."""

from __future__ import annotations

import json
import shutil

import pytest

from foundation.errors import UserError
from foundation.hub.resolve import resolve
from foundation.loading import load_pretrained
from foundation.pipelines.frontier import build
from foundation.recipes.adapt import score
from foundation.recipes.adapt.tuning import heldout_errors

LABELS = build.HERE / "labels"  # real CCSD(T) labels of the frontier molecules


def test_a_run_is_scored_start_rounds_and_final_model_with_the_cpu_hours_of_each(tmp_path, capsys):
    run = tmp_path / "run"
    (run / "rounds" / "round-1").mkdir(parents=True)
    shutil.copy(resolve("ani-1x-ccsdt", progress=False)[0], run / "rounds" / "round-1" / "model.safetensors")
    shutil.copy(resolve("ani-1x-ccsdt", progress=False)[0], run / "model.safetensors")
    (run / "report.json").write_text(json.dumps({"start": "ani-1x", "spent_cpu_hours": 2.5,
                                                 "rounds": [{"round": 1, "cpu_seconds": 3600.0}]}))
    assert score.main(["--labels", str(LABELS), "--run", str(run), "--out", str(tmp_path / "s.json")]) == 0
    result = json.loads((tmp_path / "s.json").read_text())
    assert [(r["name"], r["cpu_hours"]) for r in result["models"]] == [("start", 0.0), ("round 1", 1.0), ("adapted", 2.5)]
    samples = score.conformers(LABELS)
    direct = heldout_errors(load_pretrained("ani-1x", "cpu"), samples)
    assert result["models"][0]["all_kcal_mol"] == pytest.approx(direct["all"])
    assert result["models"][1]["molecules_kcal_mol"] == result["models"][2]["molecules_kcal_mol"]
    assert set(result["conformers"]) == {s.molecule for s in samples}
    printed = capsys.readouterr().out
    assert "| start | 0.00 |" in printed and "| adapted | 2.50 |" in printed


def test_nothing_to_score_or_no_cc_labels_is_one_line(tmp_path, capsys):
    assert score.main(["--labels", str(LABELS)]) == 2
    assert "nothing to score" in capsys.readouterr().err
    assert score.main(["--labels", str(LABELS), "--run", str(tmp_path)]) == 2
    assert "no report.json" in capsys.readouterr().err
    (tmp_path / "l").mkdir()
    (tmp_path / "l" / "structures.jsonl").write_text((LABELS / "structures.jsonl").read_text().splitlines()[0] + "\n")
    (tmp_path / "l" / "labels.jsonl").write_text("")
    with pytest.raises(UserError, match="no CCSD"):
        score.conformers(tmp_path / "l")
