"""Candidates: what the user will simulate, sampled with the start model itself.

Each molecule starts from RDKit conformers (ETKDG + MMFF minima; `foundation.pipelines.label.
conformers.embed`) or from the structures given, and runs short Langevin dynamics with the start
model through its ASE calculator at each temperature asked for. A frame is kept every
`interval` steps. A trajectory stops where the model stops being trustworthy: when the
ensemble's spread per √atom passes `stop_spread` (that frame is kept: the candidates most worth
a label are there), or when a bond breaks or forms (that frame is dropped: the labeller and the
model describe the molecule that was asked for). Everything is seeded.

`candidates.jsonl` (one JSON object a line: id, molecule, numbers, positions Å, temperature K,
step, trajectory, how, spread eV) is this module's file: written once, atomically, and read back
by a resumed run, so it labels the same structures.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from foundation.calculators.md import thermalize
from foundation.files import write_text_atomic

FILE = "candidates.jsonl"


@dataclasses.dataclass
class SamplingConfig:
    temperatures: tuple[float, ...] = (300.0, 400.0, 500.0, 600.0)  # K, one trajectory each per start
    steps: int = 2000  # per trajectory (0.5 fs: 1 ps)
    dt: float = 0.5  # fs
    friction: float = 0.01  # 1/fs
    interval: int = 20  # steps between kept frames
    stop_spread: float = 0.04  # eV/√atom (0.9 kcal/mol): a trajectory ends where the ensemble disagrees this much
    starts: int = 2  # RDKit minima per SMILES (trajectories cycle over them)


@dataclasses.dataclass
class Candidate:
    id: str
    molecule: str
    numbers: np.ndarray
    positions: np.ndarray
    temperature: float
    step: int
    trajectory: int
    how: str
    spread: float  # eV, the ensemble's energy spread when it was sampled

    def record(self) -> dict:
        return {"id": self.id, "molecule": self.molecule, "numbers": self.numbers.tolist(),
                "positions": np.round(self.positions, 8).tolist(), "temperature": self.temperature,
                "step": self.step, "trajectory": self.trajectory, "how": self.how, "spread": self.spread}

    @classmethod
    def from_record(cls, r: dict) -> "Candidate":
        return cls(r["id"], r["molecule"], np.array(r["numbers"]), np.array(r["positions"]), r["temperature"],
                   r["step"], r["trajectory"], r["how"], r["spread"])


def read_candidates(out_dir: Path) -> list[Candidate] | None:
    path = Path(out_dir) / FILE
    if not path.exists():
        return None
    return [Candidate.from_record(json.loads(line)) for line in path.read_text().splitlines()]


def write_candidates(out_dir: Path, candidates: Sequence[Candidate]) -> None:
    write_text_atomic(Path(out_dir) / FILE, "".join(json.dumps(c.record()) + "\n" for c in candidates))


def sample(molecules, model, config: SamplingConfig, seed: int,
           say: Callable[[str], None] = print) -> list[Candidate]:
    """Candidates of every molecule (`foundation.recipes.adapt.door.Molecule`), in molecule order."""
    from foundation.calculators import FoundationCalculator
    from foundation.pipelines.label.conformers import bonds

    calculator = FoundationCalculator(model, device="cpu")
    out: list[Candidate] = []
    for k, molecule in enumerate(molecules):
        starts = molecule.starts or _minima(molecule, config.starts, seed + k)
        molecule.starts = starts
        reference = bonds(molecule.numbers, starts[0])
        found = []
        for t, temperature in enumerate(config.temperatures):
            found += _trajectory(molecule, starts[t % len(starts)], temperature, t, calculator, reference, config,
                                 seed=seed + 1000 * k + t)
        stopped = sum(1 for c in found if c.how.endswith("stopped"))
        say(f"  {molecule.label}: {len(found)} frames from {len(config.temperatures)} trajectories "
            f"({stopped} stopped where the ensemble's spread passed {config.stop_spread:g} eV/√atom)")
        out += found
    return out


def _minima(molecule, count: int, seed: int) -> list[np.ndarray]:
    from foundation.pipelines.label.conformers import embed

    mol, ids = embed(molecule.smiles, count, seed)
    numbers = np.array([a.GetAtomicNum() for a in mol.GetAtoms()])
    if not np.array_equal(numbers, molecule.numbers):
        raise RuntimeError(f"{molecule.label}: RDKit's atoms changed between reading and embedding")
    return [np.array(mol.GetConformer(c).GetPositions()) for c in ids]


def _trajectory(molecule, start: np.ndarray, temperature: float, index: int, calculator, reference: set,
                config: SamplingConfig, seed: int) -> list[Candidate]:
    """Frames of one Langevin run, up to the frame where the spread passed the threshold."""
    import ase
    from ase import units
    from ase.constraints import FixCom
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import Stationary, ZeroRotation

    from foundation.pipelines.label.conformers import acceptable

    atoms = ase.Atoms(molecule.numbers, start.copy())
    atoms.calc = calculator
    rng = np.random.RandomState(seed)
    thermalize(atoms, temperature, rng)
    Stationary(atoms)
    ZeroRotation(atoms)
    atoms.set_constraint(FixCom())  # ASE's advice over Langevin's fixcm (which skews small molecules' NVT)
    dynamics = Langevin(atoms, config.dt * units.fs, temperature_K=temperature,
                        friction=config.friction / units.fs, rng=rng, fixcm=False)
    root = math.sqrt(len(atoms))
    frames: list[Candidate] = []
    for step in range(config.interval, config.steps + 1, config.interval):
        try:
            dynamics.run(config.interval)
        except ValueError:  # BadStructureError: the geometry fell apart
            break
        positions = atoms.positions.copy()
        if not acceptable(molecule.numbers, positions, reference):
            break
        spread = float(calculator.get_property("energy_uncertainty", atoms))
        stop = spread / root > config.stop_spread
        how = f"md({temperature:.0f}K,{step * config.dt:.0f}fs)" + (",stopped" if stop else "")
        frames.append(Candidate(f"{molecule.name}/t{index}s{step:05d}", molecule.name, molecule.numbers.copy(),
                                positions, float(temperature), step, index, how, spread))
        if stop:
            break
    return frames
