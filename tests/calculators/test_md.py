"""`foundation.calculators.md.run_md`: NVE dynamics conserve energy, the error shrinking with the
time step as velocity Verlet's should (the command around it: tests/cli/test_md.py)."""

from __future__ import annotations

import torch
from ase.build import molecule

from foundation.calculators import FoundationCalculator
from foundation.calculators.md import run_md
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
