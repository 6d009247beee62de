"""`foundation md`: molecular dynamics with a Foundation model through ASE.

    foundation md water.xyz --model ani-cc-mini --steps 2000 --dt 0.5 --temperature 300 \\
        --ensemble nve --traj water.traj

Velocities start from a Maxwell-Boltzmann distribution (`--seed`), without net momentum (and,
for molecules, without net rotation). NVE uses velocity Verlet; `langevin` holds the temperature.
The model runs in float64 by default: NVE energy conservation over long runs needs it. At the end
the total-energy drift is printed (for NVE it measures the integration error). The driver is
`foundation.calculators.md.run_md`; this module reads the command line and the structure.
"""

from __future__ import annotations

from pathlib import Path

from foundation.errors import UserError


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "md", help="run molecular dynamics with a model (ASE)",
        description="Molecular dynamics of a structure with a model; writes an ASE trajectory and "
                    "prints the total-energy drift. Units: fs, K, eV, Å.")
    parser.add_argument("structure", help="starting structure (any file ASE reads; the last frame by default)")
    parser.add_argument("--model", required=True, help="registry name, URL, hf:// path, .safetensors file or run directory")
    parser.add_argument("--head", default=None, help="fidelity head (default: the model's default)")
    parser.add_argument("--steps", type=int, default=1000, help="number of steps (default 1000)")
    parser.add_argument("--dt", type=float, default=0.5, help="time step in fs (default 0.5)")
    parser.add_argument("--temperature", type=float, default=300.0, help="initial / bath temperature in K (default 300)")
    parser.add_argument("--ensemble", choices=["nve", "langevin"], default="nve", help="default nve")
    parser.add_argument("--friction", type=float, default=0.01, help="Langevin friction in 1/fs (default 0.01)")
    parser.add_argument("--traj", default=None, help="trajectory file to write (ASE .traj)")
    parser.add_argument("--interval", type=int, default=10, help="write every N steps (default 10)")
    parser.add_argument("--index", default="-1", help="which frame of STRUCTURE (ASE syntax, default -1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the initial velocities and the thermostat")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    parser.add_argument("--dtype", choices=["float64", "float32"], default="float64", help="model precision (default float64)")
    parser.set_defaults(func=run)


def run(args) -> int:
    import torch

    from foundation.calculators import FoundationCalculator
    from foundation.calculators.md import run_md

    if args.steps < 1 or args.dt <= 0 or args.interval < 1 or args.temperature < 0:
        raise UserError("--steps and --interval must be >= 1, --dt > 0 and --temperature >= 0")
    atoms = read_structure(args.structure, args.index)
    atoms.calc = FoundationCalculator(args.model, head=args.head, device=args.device,
                                      dtype=getattr(torch, args.dtype))
    atoms.calc.check_charge_state(atoms)  # a charged or open-shell start the model cannot represent: before any step
    summary = run_md(atoms, steps=args.steps, dt=args.dt, temperature=args.temperature, ensemble=args.ensemble,
                     friction=args.friction, traj=args.traj, interval=args.interval, seed=args.seed)
    print(format_summary(summary, args))
    return 0


def read_structure(path: str, index: str = "-1"):
    import ase.io

    if not Path(path).is_file():
        raise UserError(f"{path}: no such structure file")
    from foundation.data.xyz_counts import check_xyz_counts

    check_xyz_counts(path)  # a count of 1e9 would keep ASE's reader busy for minutes
    try:
        atoms = ase.io.read(path, index=index)
    except Exception as e:  # ASE raises many types for unreadable files
        raise UserError(f"{path}: cannot read a structure ({type(e).__name__}: {e})") from None
    if isinstance(atoms, list):
        raise UserError(f"{path}: --index {index} selects {len(atoms)} frames; give one (e.g. -1)")
    if len(atoms) == 0:
        raise UserError(f"{path}: structure has no atoms")
    _check(atoms, path, index)
    return atoms


def _check(atoms, path: str, index: str) -> None:
    """Positions and cell as every structure is checked (`foundation.data.geometry`): one line
    naming the file, the frame and the atom, before any model sees them."""
    import numpy as np

    from foundation.data.geometry import check_geometry
    from foundation.errors import BadStructureError

    cell = np.asarray(atoms.cell)
    try:
        check_geometry(atoms.numbers, atoms.positions, cell, atoms.pbc)
    except BadStructureError:  # again, naming the frame by its place in the file (-1 of 3 frames: 2)
        check_geometry(atoms.numbers, atoms.positions, cell, atoms.pbc, where=f"{path}:{_frame(path, index)}")


def _frame(path: str, index: str) -> str:
    import ase.io

    try:
        i = int(index)
    except ValueError:
        return index
    return str(i if i >= 0 else len(ase.io.read(path, index=":")) + i)


def format_summary(summary: dict, args) -> str:
    e = summary["total_energy"]
    n = summary["n_atoms"]
    length_ps = summary["steps"] * summary["dt_fs"] / 1000
    lines = [f"{summary['ensemble'].upper()} MD of {args.structure}: {summary['steps']} steps of "
             f"{summary['dt_fs']:g} fs ({length_ps:g} ps), {n} atoms",
             f"  total energy    {e[0]:.6f} -> {e[-1]:.6f} eV",
             f"  energy drift    {summary['drift_ev']:+.6f} eV ({summary['drift_ev'] / n * 1000:+.4f} meV/atom), "
             f"max deviation {summary['max_deviation_ev']:.6f} eV",
             f"  temperature     mean {summary['temperature'][1:].mean():.1f} K"]
    if summary["ensemble"] != "nve":
        lines.append("  (a thermostat exchanges energy with the system: the drift is not an integration error)")
    if summary["traj"]:
        lines.append(f"wrote {summary['traj']}")
    return "\n".join(lines)
