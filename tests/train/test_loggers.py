"""metrics.csv (always) and wandb (offline)."""

from __future__ import annotations

import csv

import pytest

from foundation.train.config import LoggerConfig
from foundation.train.loggers import CSVLogger, Loggers


def _read(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_csv_widens_its_header_for_new_metrics(tmp_path):
    log = CSVLogger(tmp_path / "metrics.csv")
    log.log(1, {"loss": 0.5})
    log.log(2, {"loss": 0.25, "val/loss": 0.3})
    log.log(3, {"loss": 0.125})
    rows = _read(tmp_path / "metrics.csv")
    assert [r["step"] for r in rows] == ["1", "2", "3"]
    assert [r["val/loss"] for r in rows] == ["", "0.3", ""]


def test_on_resume_rows_after_the_checkpoint_and_a_cut_line_are_dropped(tmp_path):
    log = CSVLogger(tmp_path / "metrics.csv")
    for step in (5, 10, 15):
        log.log(step, {"loss": 1.0 / step})
    with open(tmp_path / "metrics.csv", "a") as f:
        f.write("20,0.0")  # the interrupted run died while writing
    CSVLogger(tmp_path / "metrics.csv", resume_step=10).log(15, {"loss": 0.5})
    rows = _read(tmp_path / "metrics.csv")
    assert [(r["step"], r["loss"]) for r in rows] == [("5", "0.2"), ("10", "0.1"), ("15", "0.5")]


@pytest.mark.integration  # wandb starts its own service process
def test_wandb_offline_needs_no_network(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_SILENT", "true")
    loggers = Loggers(LoggerConfig(wandb=True, wandb_mode="offline"), tmp_path, "offline-run",
                      {"trainer": {"lr": 1e-3}}, resume_step=None)
    loggers.log(1, {"loss": 0.5})
    loggers.close()
    assert (tmp_path / "metrics.csv").is_file()
    assert list((tmp_path / "wandb").glob("offline-run-*"))
