"""Molecular dynamics through ASE, ours vs TorchANI 2.9 (`python -m benchmarks.md`, ~1 minute).

One molecule (ibuprofen, 33 atoms, RDKit conformer), velocity Verlet at 0.5 fs from 300 K
Maxwell-Boltzmann velocities (fixed seed), identical float32 ANI-1x weights:
  ours = `foundation.calculators.FoundationCalculator(model, device="cpu")`;
  peer = TorchANI's own ASE calculator (`torchani.ase.Calculator`, via `ANI.ase()`).
Steps/s over `STEPS` steps per repeat; both trajectories start from the same state, and their
energies are compared after the first repeat. Also our PaiNN through our calculator
(`painn_md_vs_torchani`).
"""

from __future__ import annotations

import statistics

import numpy as np
import torch

from benchmarks import common
from foundation.errors import entry_point

SMILES, TIMESTEP_FS = "CC(C)Cc1ccc(cc1)C(C)C(=O)O", 0.5
STEPS, REPEATS = common.sized((100, 7), (5, 1))


def molecule(smiles: str = SMILES):
    """ASE Atoms of one RDKit conformer of `smiles`, hydrogens included."""
    from ase import Atoms
    from rdkit import Chem
    from rdkit.Chem import AllChem

    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    AllChem.EmbedMolecule(mol, randomSeed=0)
    return Atoms(numbers=[a.GetAtomicNum() for a in mol.GetAtoms()], positions=mol.GetConformer().GetPositions())


def dynamics(calculator):
    """A velocity Verlet integrator on a fresh copy of the molecule, same start for every calculator."""
    from ase import units
    from ase.md.velocitydistribution import thermalize_momenta
    from ase.md.verlet import VelocityVerlet

    atoms = molecule()
    thermalize_momenta(atoms, temperature_K=300, rng=np.random.default_rng(0))
    atoms.calc = calculator
    return atoms, VelocityVerlet(atoms, timestep=TIMESTEP_FS * units.fs)


def null_calculator():
    """A calculator that does no work (zero energy and forces): ASE's own cost per step."""
    from ase.calculators.calculator import Calculator, all_changes

    class Null(Calculator):
        implemented_properties = ["energy", "free_energy", "forces"]

        def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
            super().calculate(atoms, properties, system_changes)
            n = len(self.atoms)
            self.results = {"energy": 0.0, "free_energy": 0.0, "forces": np.zeros((n, 3))}

    return Null()


def run(steps: int = STEPS, repeats: int = REPEATS) -> list[dict]:
    from foundation.calculators.ase_calculator import FoundationCalculator

    torch.set_num_threads(1)
    # Weights frozen on both sides, as TorchANI's ANI1x() builder and loaded checkpoints have them.
    peer = common.torchani_ani1x().eval().requires_grad_(False)
    ours = common.ours_from(peer).eval().requires_grad_(False)
    painn = common.painn().eval().requires_grad_(False)
    with torch.no_grad():  # random weights give forces that blow the molecule apart: damp them
        for mlp in painn.readout.heads.values():
            mlp[-1].weight.mul_(1e-3)
    systems = {"ours": dynamics(FoundationCalculator(ours, device="cpu")), "peer": dynamics(peer.ase()),
               "painn": dynamics(FoundationCalculator(painn, device="cpu")), "ase": dynamics(null_calculator())}

    def runner(md):
        def go():
            md.run(steps)
            return steps
        return go

    runs = {name: runner(md) for name, (_, md) in systems.items()}
    for go in runs.values():  # warm-up, and the trajectories' agreement after `steps` steps
        go()
    energies = {name: atoms.get_potential_energy() + atoms.get_kinetic_energy()
                for name, (atoms, _) in systems.items() if name != "ase"}
    drift = abs(energies["ours"] - energies["peer"])
    rates = common.interleaved(runs, repeats)
    atoms = systems["ours"][0]
    inputs = {"molecule": f"ibuprofen {SMILES} ({len(atoms)} atoms)", "integrator": "ASE VelocityVerlet",
              "timestep_fs": TIMESTEP_FS, "steps_per_repeat": steps, "dtype": "float32",
              "peer": "torchani.ase.Calculator (ANI.ase()), ANI1x() architecture, fresh weights",
              "ours": "foundation.calculators.FoundationCalculator(model, device='cpu') with the peer's weights"}
    agreement = {"total_energy_after_warmup_eV": {k: float(energies[k]) for k in ("ours", "peer")},
                 "ours_minus_peer_eV": float(drift)}
    ase_ms = 1e3 / statistics.median(rates["ase"]["cpu"])
    per_step = {k: 1e3 / statistics.median(rates[k]["cpu"]) for k in ("ours", "peer")}
    overhead = {"ase_integrator_and_calculator_base_ms": ase_ms,
                "ours_ms": per_step["ours"], "peer_ms": per_step["peer"],
                "ratio_without_ase_cost": (per_step["peer"] - ase_ms) / (per_step["ours"] - ase_ms)}
    ani = common.figure("md_vs_torchani", "steps/s", rates["ours"], rates["peer"], goal=1.5, inputs=inputs,
                        agreement=agreement, per_step=overhead)
    common.explain(ani, f"ASE's own per-step cost ({ase_ms:.2f} ms with a calculator that does no work), "
                        f"the same on both sides, and Python/torch call overhead (hundreds of small ops "
                        f"per step for one 33-atom molecule); without ASE's cost the ratio is "
                        f"{overhead['ratio_without_ase_cost']:.2f}")
    painn_fig = common.painn_figure("painn_md_vs_torchani", "steps/s", rates, inputs,
                                    f"FoundationCalculator with foundation PaiNN {common.painn_size(painn)}, random "
                                    "weights, output layer scaled by 1e-3 so the molecule stays intact")
    return [ani, painn_fig]


@entry_point
def main() -> None:
    common.run_and_report(run)


if __name__ == "__main__":
    main()
