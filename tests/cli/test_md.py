"""`foundation md`: the command writes a trajectory and reports the drift, bad input fails clearly
(the driver's physics: tests/calculators/test_md.py)."""

from __future__ import annotations

import pytest
import torch
from ase.build import molecule
from ase.io import read, write

from foundation.cli.main import main
from foundation.models import ANIConfig


def small_model(dtype=torch.float64):
    torch.manual_seed(0)  # this seed's potential keeps methanol bound over the runs below
    return ANIConfig(hidden={s: [16, 8] for s in "HCNO"}).build().to(dtype).eval()


def test_md_command_writes_a_trajectory_and_prints_the_drift(tmp_path, capsys):
    from foundation.hub.format import save_model

    model_file = save_model(small_model(torch.float32), tmp_path / "model.safetensors")
    structure = tmp_path / "methanol.xyz"
    write(structure, molecule("CH3OH"))
    traj = tmp_path / "out" / "run.traj"
    code = main(["md", str(structure), "--model", str(model_file), "--steps", "20", "--dt", "0.5",
                 "--interval", "5", "--traj", str(traj), "--device", "cpu"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "NVE MD" in out and "energy drift" in out and f"wrote {traj}" in out
    frames = read(traj, index=":")
    assert len(frames) == 5  # steps 0, 5, 10, 15, 20
    assert not [p for p in traj.parent.iterdir() if p.name.endswith(".part")]

    code = main(["md", str(structure), "--model", str(model_file), "--steps", "10", "--ensemble", "langevin",
                 "--temperature", "500", "--device", "cpu"])
    out = capsys.readouterr().out
    assert code == 0 and "LANGEVIN MD" in out and "thermostat" in out


@pytest.mark.parametrize("argv, message", [
    (["missing.xyz"], "no such structure file"),
    (["BAD"], "cannot read a structure"),
    (["BAD", "--steps", "0"], "--steps and --interval must be >= 1"),
])
def test_md_bad_input_is_one_line(tmp_path, capsys, argv, message):
    structure = tmp_path / "bad.xyz"
    structure.write_text("not an xyz file\n")
    argv = [str(structure) if a == "BAD" else str(tmp_path / a) if a.endswith(".xyz") else a for a in argv]
    code = main(["md", *argv, "--model", "ani-cc-mini"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("foundation md: error: ") and message in err and "\n" not in err, err
