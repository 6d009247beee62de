"""Broken coordinates (nan, inf, an atom 1e6 or 1e10 Å away) through every command that reads
structures: `foundation evaluate`, `finetune`, `md`, `train` on an extxyz file and `train` on
shards written by the library's shard writer (its validation off, as another tool's would be).
Each is one line naming the file, the item and the atom, exit 2, in a process of its own (1e6 Å
used to kill it with SIGFPE, nan to end in a traceback); with on_error=skip each is left out and
counted. Models: the shipped ani-cc-mini, and the smoke experiment's tiny ANI for `train`."""

from __future__ import annotations

import re
import subprocess
import sys

import ase.io
import numpy as np
import pytest
from ase.build import molecule

from foundation.data.ase_io import samples_to_atoms
from foundation.data.shards.manifest import write_manifest
from foundation.data.shards.writer import ShardWriter
from tests.conftest import FIDELITY, make_molecule_samples, metric_rows
from tests.faults.cli_forks import ENV, run_commands

pytestmark = pytest.mark.integration  # the commands as child processes

BROKEN = {"nan": np.nan, "inf": np.inf, "1e6": 1e6, "1e10": 1e10}
FIRST_BAD = 2  # structures 2, 3, ... are broken: H2O (atom 1: H) first; see `_samples`
ATOM = {"nan": r"atom 1 \(H\) has a non-finite coordinate \(nan\)",
        "inf": r"atom 1 \(H\) has a non-finite coordinate \(inf\)",
        "1e6": r"atom 1 \(H\) is 1e\+06 Å from the origin \(limit 1e4 Å\)",
        "1e10": r"atom 1 \(H\) is 1e\+10 Å from the origin \(limit 1e4 Å\)"}


# Atom 1 is an H in structures 2 to 5 (H2O, NH3, CH4, H2O: one per broken value)
NAMES = ["CH4", "NH3", "H2O", "NH3", "CH4", "H2O", "C2H6", "CH3OH", "HCOOH", "CH3CHO", "C2H4", "HCN"]


def _samples(broken: list[str]):
    """Labelled molecules `NAMES`, those from FIRST_BAD on broken by the given `BROKEN` values."""
    samples = make_molecule_samples(len(NAMES), 1, fidelity=FIDELITY, molecules=NAMES)
    for k, name in enumerate(broken):
        samples[FIRST_BAD + k].positions[1, 0] = BROKEN[name]
    return samples


def _extxyz(path, broken: list[str]):
    images = samples_to_atoms(_samples(broken), energy_key="REF_energy", forces_key="REF_forces", fidelity=FIDELITY)
    ase.io.write(path, images, format="extxyz")
    return path


def _shards(folder, broken: list[str]):
    with ShardWriter(folder, "train", max_samples_per_shard=6, validate=False) as writer:
        for sample in _samples(broken):
            writer.write(sample)
    shards = list(writer.shards)
    with ShardWriter(folder, "val") as writer:
        for sample in make_molecule_samples(4, 1, seed=1, fidelity=FIDELITY):
            writer.write(sample)
    write_manifest(folder, shards + list(writer.shards))
    return folder


def _md_structure(path, name: str):
    water = molecule("H2O")
    water.positions[1, 0] = BROKEN[name]
    ase.io.write(path, water, format="extxyz")
    return path


def _evaluate(path, *extra):
    return ["evaluate", "--model", "ani-cc-mini", "--data", str(path), "--energy-key", "REF_energy",
            "--device", "cpu", *extra]


def _finetune(path, out, name, *extra):
    return ["finetune", "--model", "ani-cc-mini", "--data", str(path), "--energy-key", "REF_energy", "--quiet",
            f"out_dir={out}", f"name={name}", "trainer.max_steps=2", "trainer.val_every=2", "trainer.device=cpu",
            *extra]


def _train(data: list[str], out, name, *extra):
    return ["train", "experiment=smoke", *data, f"out_dir={out}", f"name={name}", "trainer.max_steps=2",
            "trainer.val_every=2", "trainer.ckpt_every=2", *extra]


def _file_data(path):
    return [f"data.path={path}", "data.energy_key=REF_energy", "data.forces_key=REF_forces",
            f"data.fidelity={FIDELITY}", "data.split=conformer"]


def _one_line(outcome) -> str:
    assert outcome.code == 2, outcome
    lines = outcome.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in outcome.stderr, outcome
    return lines[0]


def test_each_broken_coordinate_stops_every_command_with_one_line_naming_file_item_and_atom(tmp_path):
    commands, expected = [], []
    for name in BROKEN:
        path = _extxyz(tmp_path / f"{name}.extxyz", [name])
        shards = _shards(tmp_path / f"shards_{name}", [name])
        md_file = _md_structure(tmp_path / f"md_{name}.extxyz", name)
        where = re.escape(f"{path}:{FIRST_BAD}: ")
        for command, message in [
            (_evaluate(path), where),
            (_finetune(path, tmp_path / "runs", f"ft_{name}"), where),
            (["md", str(md_file), "--model", "ani-cc-mini", "--steps", "2", "--device", "cpu"],
             re.escape(f"{md_file}:0: ")),
            (_train(_file_data(path), tmp_path / "runs", f"file_{name}"), where),
            (_train(["data=shards", f"data.path={shards}"], tmp_path / "runs", f"shards_{name}"),
             re.escape(f"{shards / 'train-000000.tar'}:000000002: H2O:0: ")),
        ]:
            commands.append(command)
            expected.append(rf"^foundation {command[0]}: error: {message}{ATOM[name]}$")
    for outcome, pattern in zip(run_commands(commands, tmp_path), expected, strict=True):
        assert re.match(pattern, _one_line(outcome)), (pattern, str(outcome))


def test_with_on_error_skip_every_broken_structure_is_left_out_and_counted(tmp_path):
    broken = list(BROKEN)  # structures 2-5, one of each
    path = _extxyz(tmp_path / "all.extxyz", broken)
    shards = _shards(tmp_path / "shards", broken)
    runs = tmp_path / "runs"
    evaluate, finetune, on_file, on_shards = run_commands([
        _evaluate(path, "--on-error", "skip"),
        _finetune(path, runs, "ft", "data.on_error=skip"),
        _train(_file_data(path), runs, "file", "data.on_error=skip"),
        _train(["data=shards", f"data.path={shards}"], runs, "shards", "data.on_error=skip", "data.shuffle_buffer=0"),
    ], tmp_path)
    for outcome in (evaluate, finetune, on_file, on_shards):
        assert outcome.code == 0, outcome
        for k, name in enumerate(broken):  # each one logged, by file (or shard), item and atom
            assert re.search(f":{FIRST_BAD + k}: " + ATOM[name], outcome.stderr) or \
                re.search(f"{FIRST_BAD + k}: [A-Z0-9]+:0: " + ATOM[name], outcome.stderr), (name, str(outcome))
    assert "8 structures" in evaluate.stdout and "(4 skipped)" in evaluate.stdout
    assert metric_rows(runs / "ft")[-1]["skipped_samples"] == "4"
    assert "skipped 4" in on_file.stdout and metric_rows(runs / "file")[-1]["skipped_samples"] == "4"
    assert int(metric_rows(runs / "shards")[-1]["skipped_samples"]) >= 4  # once per pass over them


def test_the_foundation_command_itself_reports_1e6_angstrom_in_one_line(tmp_path):
    # The exact case of the report: evaluate and md on water with an H at x = 1e6 Å (was SIGFPE).
    data = _extxyz(tmp_path / "f.extxyz", ["1e6"])
    md_file = _md_structure(tmp_path / "w.extxyz", "1e6")
    for argv, where in [(_evaluate(data), f"{data}:{FIRST_BAD}"), (["md", str(md_file), "--model", "ani-cc-mini"],
                                                                  f"{md_file}:0")]:
        done = subprocess.run([sys.executable, "-m", "foundation", *argv], env=ENV, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 2 and done.stderr == (
            f"foundation {argv[0]}: error: {where}: atom 1 (H) is 1e+06 Å from the origin (limit 1e4 Å)\n"), done
