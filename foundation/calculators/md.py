"""Molecular dynamics with a Foundation model through ASE: the driver behind `foundation md`, for
anyone holding `ase.Atoms` with a calculator attached (`foundation.calculator(...)`).

    from foundation.calculators.md import run_md
    summary = run_md(atoms, steps=2000, dt=0.5, temperature=300, ensemble="nve", traj="water.traj")

Velocities start from a Maxwell-Boltzmann distribution (`seed`), without net momentum (and, for
molecules, without net rotation). NVE uses velocity Verlet; `langevin` holds the temperature. Units:
fs, K, eV, Å. The trajectory is written under a temporary name and renamed when the run completes.
"""

from __future__ import annotations

import os
from contextlib import contextmanager

from foundation.files import replacing


def run_md(atoms, steps: int, dt: float, temperature: float, ensemble: str = "nve", friction: float = 0.01,
           traj: str | os.PathLike | None = None, interval: int = 10, seed: int = 0, progress: bool = True) -> dict:
    """Run MD on `atoms` (with a calculator attached); the trajectory is written under a temporary
    name and renamed when the run completes. Returns energies (eV) per step and the drift."""
    import numpy as np
    from ase import units
    from ase.md.langevin import Langevin
    from ase.constraints import FixCom
    from ase.md.velocitydistribution import Stationary, ZeroRotation
    from ase.md.verlet import VelocityVerlet

    from foundation.progress import progress_bar

    rng = np.random.default_rng(seed)
    if temperature > 0:
        thermalize(atoms, temperature, rng)
        Stationary(atoms)
        if not atoms.pbc.any():
            ZeroRotation(atoms)
    if ensemble == "nve":
        dyn = VelocityVerlet(atoms, timestep=dt * units.fs)
    else:
        # The centre of mass is held by a constraint (ASE's advice; its `fixcm` biases small systems).
        atoms.set_constraint([*atoms.constraints, FixCom()])
        dyn = Langevin(atoms, timestep=dt * units.fs, temperature_K=temperature, friction=friction / units.fs,
                       fixcm=False, rng=rng)
    energies, temperatures = [], []
    bar = progress_bar(total=steps, unit="step", desc=f"md {ensemble}", enabled=progress)

    def record():
        epot, ekin = atoms.get_potential_energy(), atoms.get_kinetic_energy()
        energies.append(epot + ekin)
        temperatures.append(atoms.get_temperature())
        if len(energies) > 1:
            bar.update(1)
            bar.set_postfix(E=f"{energies[-1]:.4f} eV", T=f"{temperatures[-1]:.0f} K", refresh=False)

    dyn.attach(record, interval=1)
    with bar, _trajectory(traj, atoms) as writer:
        if writer is not None:
            dyn.attach(writer.write, interval=interval)
        dyn.run(steps)
    energies = np.array(energies)
    return {"ensemble": ensemble, "steps": steps, "dt_fs": dt, "n_atoms": len(atoms), "total_energy": energies,
            "temperature": np.array(temperatures), "drift_ev": float(energies[-1] - energies[0]),
            "max_deviation_ev": float(np.abs(energies - energies[0]).max()), "traj": str(traj) if traj else None}


def thermalize(atoms, temperature: float, rng) -> None:
    """Maxwell-Boltzmann momenta at `temperature` K."""
    try:
        from ase.md.velocitydistribution import thermalize_momenta  # ASE >= 3.29
    except ImportError:
        from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

        MaxwellBoltzmannDistribution(atoms, temperature_K=temperature, rng=rng)
        return
    thermalize_momenta(atoms, temperature, rng=rng)


@contextmanager
def _trajectory(path, atoms):
    """An ASE trajectory written beside `path` and renamed only after the run, so a crash never
    leaves a truncated file under the name the user asked for."""
    if path is None:
        yield None
        return
    from ase.io.trajectory import Trajectory

    with replacing(path, suffix=".part") as tmp:
        writer = Trajectory(str(tmp), "w", atoms)
        try:
            yield writer
        finally:
            writer.close()
