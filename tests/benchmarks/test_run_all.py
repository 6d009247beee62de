"""`make bench` plumbing: which scripts run, the table printed for docs/benchmarks.md, and the check
that ours and TorchANI compute the same thing before anything is timed (real TorchANI, no timing
asserted)."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks import common, run_all
from foundation.models.mace_torch import installed


def test_scripts_are_the_benchmarks_and_long_ones_are_opt_in():
    default = run_all.scripts(include_long=False)
    assert {"train_step", "inference", "md"} <= set(default)
    assert not set(default) & (run_all.NOT_BENCHMARKS | set(run_all.HELPERS) | set(run_all.LONG))
    assert set(run_all.scripts(include_long=True)) >= set(default)


def _figure(name, ours, peer, goal, **extra):
    return {"name": name, "unit": "molecules/s", "ours": ours, "peer": peer, "ratio": ours / peer, "goal": goal,
            "goal_met": None if goal is None else ours / peer >= goal, "machine": "AMD EPYC, 2 cores, Linux",
            "threads": 1, "environment": {"MALLOC_TRIM_THRESHOLD_": "1"},
            "spread": {"ours": {"min": ours * 0.9, "max": ours * 1.1}}, **extra}


def test_table_has_a_row_per_figure_with_missed_goals_explained():
    figures = [_figure("train_step_vs_torchani", 1500.0, 700.0, 2.0),
               _figure("md_vs_torchani", 300.0, 220.0, 1.5, shortfall="ratio 1.36, 1.10x short of the goal 1.5",
                       limits="per-step overhead"),
               _figure("painn_md_vs_torchani", 100.0, 220.0, None, note="informational")]
    text = run_all.table(figures)
    lines = text.splitlines()
    assert lines[0].startswith("| Figure | Unit | Ours | Peer | Ratio")
    row = next(line for line in lines if line.startswith("| train_step_vs_torchani"))
    assert "1,500 (1,350-1,650)" in row and "| 2.14 |" in row and "| yes |" in row
    md = next(line for line in lines if line.startswith("| md_vs_torchani"))
    assert "**no**" in md and "1.10x short" in md and "per-step overhead" in md
    assert "informational" in next(line for line in lines if line.startswith("| painn_md"))
    assert "Machine: AMD EPYC, 2 cores, Linux" in text and "MALLOC_TRIM_THRESHOLD_=1" in text


def test_table_only_run_writes_table_md(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(run_all, "RESULTS", tmp_path)
    (tmp_path / "x.json").write_text(json.dumps(_figure("x", 2.0, 1.0, 1.5)))
    (tmp_path / "broken.json").write_text("{")
    assert run_all.main(["--table"]) == 0
    assert "| x |" in (tmp_path / "TABLE.md").read_text()
    assert "broken.json" in capsys.readouterr().err


def test_unknown_script_is_refused():
    with pytest.raises(SystemExit):
        run_all.main(["--only", "no_such_benchmark"])


def test_our_ani_and_torchani_agree_on_identical_weights():
    from benchmarks.train_step import ours_step, peer_step

    samples = common.molecules(conformers=1, names=["glycine", "pyridine", "caffeine"])
    agreement = common.check_agreement(common.torchani_ani1x(), samples, train_step=(ours_step, peer_step))
    assert agreement["ok"], agreement
    assert agreement["float64_ours_vs_peer"]["forces"] < 1e-10
    assert agreement["training_step_float64"]["first_layer_gradients"] < 1e-10


@pytest.mark.integration  # benchmark scripts as child processes
def test_every_benchmark_script_runs_at_a_tiny_size(tmp_path):
    """`run_all --quick` (~2 min): CI fails when any benchmark script breaks, and the quick run
    writes nowhere near benchmarks/results/."""
    before = {p.name: p.stat().st_mtime_ns for p in run_all.RESULTS.iterdir()}
    done = subprocess.run([sys.executable, "-m", "benchmarks.run_all", "--quick", "--out", str(tmp_path)],
                          cwd=run_all.HERE.parent, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for name in run_all.scripts(include_long=True):
        assert f"-- benchmarks.{name}: ok" in done.stdout
    written = {p.stem for p in tmp_path.glob("*.json")}
    assert {"train_step_vs_torchani", "inference_vs_torchani", "md_vs_torchani", "streaming_vs_hdf5",
            "streaming_rss_flat", "scaling_2proc", "active_learning", "scale_stream_5m",
            "ensemble_inference_vs_torchani", "ensemble_md_vs_torchani", "ensemble_latency_vs_torchani",
            "ensemble_cost_8_vs_1", "md_threads_under_load"} <= written
    if installed():  # the optional extra: peers_mace and peers_mace_transfer skip without it
        assert {"mace_rel_energy_rmse_vs_mace_torch", "mace_forces_mae_vs_mace_torch",
                "mace_train_throughput_vs_mace_torch", "mace_transfer_rel_energy_rmse_vs_mace_torch",
                "mace_neighbours_molecules_vs_mace_torch", "mace_neighbours_periodic_vs_mace_torch"} <= written
    assert "| train_step_vs_torchani |" in (tmp_path / "TABLE.md").read_text()
    assert {p.name: p.stat().st_mtime_ns for p in run_all.RESULTS.iterdir()} == before


@pytest.mark.integration  # benchmark scripts as child processes
def test_a_script_past_its_time_limit_is_stopped_with_the_processes_it_started(tmp_path):
    pid_file = tmp_path / "grandchild.pid"
    script = ("import subprocess, sys, time; "
              "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
              f"open({str(pid_file)!r}, 'w').write(str(p.pid)); time.sleep(60)")
    assert run_all.run_group([sys.executable, "-c", script], dict(os.environ), limit=3) == 124
    grandchild = Path("/proc") / pid_file.read_text() / "status"
    for _ in range(50):  # killed: gone, or a zombie until something reaps it
        if not grandchild.exists() or "State:\tZ" in grandchild.read_text():
            break
        time.sleep(0.1)
    else:
        raise AssertionError("the script's child outlived the time limit")
    assert run_all.run_group([sys.executable, "-c", "raise SystemExit(3)"], dict(os.environ), limit=30) == 3
