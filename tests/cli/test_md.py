"""`foundation md`: NVE dynamics conserve energy (error shrinking with the time step, as velocity
Verlet's should), the command writes a trajectory and reports the drift, bad input fails clearly."""

from __future__ import annotations

import pytest
import torch
from ase.build import molecule
from ase.io import read, write

from foundation.calculators import FoundationCalculator
from foundation.cli.main import main
from foundation.cli.md import run_md
from foundation.models import ANIConfig


def small_model(dtype=torch.float64):
    torch.manual_seed(0)  # this seed's potential keeps methanol bound over the runs below
    return ANIConfig(hidden={s: [16, 8] for s in "HCNO"}).build().to(dtype).eval()


def _nve(model, dt, steps):
    atoms = molecule("CH3OH")
    atoms.calc = FoundationCalculator(model, device="cpu")
    return run_md(atoms, steps=steps, dt=dt, temperature=300, ensemble="nve", seed=0, progress=False)


def test_nve_conserves_energy_and_the_error_scales_with_the_time_step():
    model = small_model()
    coarse = _nve(model, dt=0.5, steps=100)  # 50 fs each
    fine = _nve(model, dt=0.25, steps=200)
    kinetic = 1.5 * 6 * 300 * 8.617e-5  # eV, 6 atoms at 300 K
    report = (f"dt 0.5 fs: drift {coarse['drift_ev']:+.2e} eV, max deviation {coarse['max_deviation_ev']:.2e} eV; "
              f"dt 0.25 fs: drift {fine['drift_ev']:+.2e} eV, max deviation {fine['max_deviation_ev']:.2e} eV; "
              f"kinetic energy ~{kinetic:.3f} eV")
    assert coarse["max_deviation_ev"] < 0.02 * kinetic, report
    assert abs(coarse["drift_ev"]) < 1e-3, report
    # Verlet's energy error is O(dt^2): halving dt must cut it (by ~4x); wrong forces would not.
    assert fine["max_deviation_ev"] < 0.5 * coarse["max_deviation_ev"], report


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
