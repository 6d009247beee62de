"""The active-learning loop with real PySCF labels (CCSD(T)/cc-pVDZ of H2 and H2 pairs: a few
hundredths of a second each) and real fine-tuning: killed after a round, it resumes without
computing any label again, and logs labels spent and held-out error per round."""

import collections
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from foundation.data.sample import Sample
from foundation.errors import UserError
from foundation.pipelines.active.ledger import Ledger
from foundation.pipelines.active.pool import save_labelled
from foundation.pipelines.label.levels import get_level
from foundation.pipelines.label.store import read_records
from foundation.recipes.active_learning import ActiveLearningConfig, main

REPO = Path(__file__).resolve().parents[2]
CC = "ccsdt_ccpvdz"


def _h2(r: float, at=(0.0, 0.0, 0.0)) -> np.ndarray:
    return np.array([[0.0, 0.0, 0.0], [0.0, 0.0, r]]) + np.asarray(at)


def _setup(tmp_path: Path) -> list[str]:
    """Pool (unlabelled H2 and H2···H2), a held-out set labelled at CC, a tiny 'pretrained' model."""
    from foundation.hub.format import save_model
    from foundation.models import ANIConfig

    pool = [Sample([1, 1], _h2(r), molecule="H2", source=f"h2/{k}") for k, r in enumerate(np.linspace(0.62, 0.95, 8))]
    pool += [Sample([1] * 4, np.concatenate([_h2(0.74), _h2(0.74, (d, 0, 0))]), molecule="H4", source=f"h4/{k}")
             for k, d in enumerate(np.linspace(1.6, 3.0, 6))]
    save_labelled(tmp_path / "pool", pool)
    level = get_level(CC)
    heldout = [Sample([1, 1], _h2(0.8), molecule="H2", source="test/0"),
               Sample([1] * 4, np.concatenate([_h2(0.7), _h2(0.76, (0, 2.2, 0))]), molecule="H4", source="test/1")]
    for s in heldout:
        s.energies[CC] = level.compute(s.numbers, s.positions).energy
    save_labelled(tmp_path / "heldout", heldout)
    model = ANIConfig(elements=[1], heads=["wb97x_631gs"], hidden={"H": [8, 8]}).build()
    model.set_reference_energies("wb97x_631gs", {1: -13.6})
    save_model(model, tmp_path / "pretrained.safetensors")
    return ["--work-dir", str(tmp_path / "al"), "--init-from", str(tmp_path / "pretrained.safetensors"),
            "--pool", str(tmp_path / "pool"), "--heldout", str(tmp_path / "heldout"), "--rounds", "1",
            "--n-initial", "3", "--n-per-round", "2", "--ensemble-size", "2",
            "--overrides", "trainer.max_steps=20", "trainer.val_every=10", "trainer.ckpt_every=10"]


def _label_ids(round_dir: Path) -> list[str]:
    return [r["id"] for r in read_records(round_dir / "labels" / "labels.jsonl")]


@pytest.mark.integration  # the loop killed as a child process
def test_loop_killed_after_a_round_resumes_without_relabelling(tmp_path):
    args = _setup(tmp_path)
    rounds = tmp_path / "al" / "rounds"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "foundation.recipes.active_learning", *args], cwd=REPO, env=env,
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while not (rounds / "round-000" / "round.json").exists():
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "round 0 did not finish"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the loop and its labelling workers, mid-way into round 1
    proc.wait()
    assert not (rounds / "round-001" / "round.json").exists()
    round0 = {name: (rounds / "round-000" / name).read_bytes()
              for name in ("round.json", "selected.json", "labels/labels.jsonl")}

    assert main(args) == 0

    for name, content in round0.items():  # round 0 untouched: nothing redrawn, nothing relabelled
        assert (rounds / "round-000" / name).read_bytes() == content
    log = Ledger(tmp_path / "al").log()
    assert [row["round"] for row in log] == [0, 1]
    picks = [row["picked"] for row in log]
    for r, row in enumerate(log):
        ids = _label_ids(rounds / f"round-{r:03d}")
        assert collections.Counter(ids) == collections.Counter(row["picked"])  # each pick labelled once
        assert row["labels_ok"] == row["labels_new"] and row["label_seconds"] > 0
        assert row["heldout"]["n_structures"] == 2 and np.isfinite(row["heldout"]["energy_rmse_kcal_mol"])
    assert not set(picks[0]) & set(picks[1])
    assert [len(p) for p in picks] == [3, 2] and log[1]["labels_total"] == 5
    assert log[1]["strategy"] == "spread" and log[1]["pick_spread"] >= log[1]["pool_spread"]
    assert log[1]["label_seconds_total"] == pytest.approx(log[0]["label_seconds"] + log[1]["label_seconds"])
    assert len(json.loads((rounds / "round-001" / "scores.json").read_text())) == log[1]["n_candidates"]


def test_a_resumed_loop_refuses_other_settings(tmp_path):
    ledger = Ledger(tmp_path)
    config = ActiveLearningConfig(work_dir=str(tmp_path), init_from=["m.safetensors"], pool="pool.xyz")
    ledger.check_config(config.record())
    ledger.check_config({**config.record(), "rounds": 9})  # more rounds: allowed
    with pytest.raises(UserError, match="strategy"):
        ledger.check_config({**config.record(), "strategy": "random"})


def test_bad_loop_settings_are_one_clear_error():
    with pytest.raises(UserError, match="exactly one source"):
        ActiveLearningConfig(work_dir="w", init_from=["m"])
    with pytest.raises(UserError, match="lookup oracle needs"):
        ActiveLearningConfig(work_dir="w", init_from=["m"], smiles="s.smi", oracle="lookup")
    with pytest.raises(UserError, match="ensemble_size >= 2"):
        ActiveLearningConfig(work_dir="w", init_from=["m"], pool="p", ensemble_size=1)
