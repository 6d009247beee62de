"""`FoundationCalculator`: a Foundation model as an ASE calculator.

Properties: `energy` (= `free_energy`, eV), `forces` (eV/Å), `energies` (per atom, eV:
`atoms.get_potential_energies()`), `stress` (eV/Å³, Voigt order xx yy zz yz xz xy; fully periodic
cells) and, for ensembles, `energy_uncertainty` (eV, the members' standard deviation).

Stress is a strain derivative: a symmetric strain ε (zero-valued, differentiable) deforms positions
and cell inside torch, r' = r (1 + ε), h' = h (1 + ε), and σ = (1/V) ∂E/∂ε. Periodic image shifts
are built from the cell by the model's neighbour list, so they follow the strain too. Forces and
stress come from one backward pass.

Threads: on the CPU, the first call for a system of a new size fits torch's thread count to it
(`foundation.threads.fit_system`: one thread for small molecules), unless the user chose the
count (OMP_NUM_THREADS, FOUNDATION_THREADS, `foundation --threads`, `torch.set_num_threads`).

Positions and cell are checked first (`foundation.data.geometry`): NaN, inf, an atom more than
1e4 Å from the origin or a singular periodic cell raise `foundation.errors.BadStructureError`, a
`ValueError` naming the atom. Then the structure's charge and spin multiplicity (`atoms.info`
keys `charge` and `spin`; a neutral singlet without them): one the model was not trained on raises
`foundation.models.states.UnsupportedStateError` (a `ValueError` too), never a silent prediction.
"""

from __future__ import annotations

import copy
import dataclasses
import os

import numpy as np
import torch
from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes
from ase.stress import full_3x3_to_voigt_6_stress

from foundation.data.batch import collate
from foundation.data.electrons import from_info
from foundation.data.geometry import check_geometry
from foundation.data.sample import Sample
from foundation.dtypes import torch_dtype
from foundation.models.states import check_state
from foundation.threads import fit_system


class FoundationCalculator(Calculator):
    """ASE calculator for a `PotentialModel` (or anything `foundation.load_pretrained` takes).

    `head`: the fidelity to predict (default: the model's default head, else its first);
    `device`: "auto" (GPU if any), "cpu", "cuda:0", ...; `dtype`: "float64" or `torch.float64` (or
    float32) e.g. for MD with tight energy conservation (the model is copied, the caller's is untouched).
    """

    def __init__(self, model, head: str | None = None, device: str | torch.device = "auto",
                 dtype: str | torch.dtype | None = None, **kwargs):
        super().__init__(**kwargs)
        from foundation.loading import load_pretrained, resolve_device

        dtype = None if dtype is None else torch_dtype(dtype)  # before any loading: a typo fails fast
        device = resolve_device(device)
        if isinstance(model, (str, os.PathLike)):
            model = load_pretrained(model, device)
        if dtype is not None and model.dtype != dtype:
            model = copy.deepcopy(model).to(dtype)
        self.model = model.to(device).eval()
        self.device = device
        self.head = model.heads[model.head_index(head)]
        self.is_ensemble = hasattr(model, "member_atomic_energies")
        self.implemented_properties = ["energy", "free_energy", "energies", "forces", "stress"] + \
            (["energy_uncertainty"] if self.is_ensemble else [])
        self._threads_for: int | None = None  # the system size the thread count was fitted to

    def check_charge_state(self, atoms) -> None:
        """Raise `UnsupportedStateError` when the charge and spin multiplicity of `atoms` (info keys
        `charge`, `spin`) are not among those the model was trained on. (Not `check_state`: that is
        ASE's own method, which says what changed since the last calculation; shadowing it made
        every call after the first return the first call's results.)"""
        where = f"atoms {atoms.get_chemical_formula()}"
        charge, multiplicity = from_info(atoms.info, atoms.numbers, where)
        check_state(self.model, charge, multiplicity, where)

    def get_energy_uncertainty(self, atoms=None) -> float:
        """The ensemble's spread (eV) for `atoms`; only for ensemble models."""
        return self.get_property("energy_uncertainty", atoms)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        if len(atoms) != self._threads_for and self.device.type == "cpu":
            fit_system(len(atoms))  # few threads for a small molecule, unless the user chose
            self._threads_for = len(atoms)
        strained = bool(atoms.pbc.all())
        if "stress" in properties and not strained:
            raise PropertyNotImplementedError("stress needs a cell periodic in all three directions")
        where = f"atoms {atoms.get_chemical_formula()}"
        # BadStructureError (a ValueError): an optimiser or MD run stops on it, cleanly, instead of
        # the neighbour list or a NaN gradient taking the process down
        check_geometry(atoms.numbers, atoms.positions, np.asarray(atoms.cell), atoms.pbc, where)
        self.check_charge_state(atoms)
        sample = Sample(atoms.numbers, atoms.positions, cell=np.asarray(atoms.cell), pbc=atoms.pbc, source=where)
        batch = collate([sample], fidelities=[], dtype=self.model.dtype).to(self.device)
        leaf = batch.positions.detach().requires_grad_(True)
        strain = torch.zeros(3, 3, dtype=leaf.dtype, device=self.device, requires_grad=strained)
        deform = 0.5 * (strain + strain.T)
        positions = leaf + leaf @ deform
        batch = dataclasses.replace(batch, positions=positions, cell=batch.cell + batch.cell @ deform)
        with torch.enable_grad():
            if self.is_ensemble:
                members = self.model.member_atomic_energies(batch, self.head, positions)  # (M, N)
                atomic = members.mean(0)
            else:
                atomic = self.model.atomic_energies(batch, [self.head], positions)[:, 0]
            energy = atomic.sum()
            grads = torch.autograd.grad(energy, [leaf, strain] if strained else [leaf])
        self.results = {
            "energy": float(energy.detach()), "free_energy": float(energy.detach()),
            "energies": atomic.detach().cpu().double().numpy(),
            "forces": -grads[0].detach().cpu().double().numpy(),
        }
        if strained:
            virial = grads[1].detach().cpu().double().numpy()
            self.results["stress"] = full_3x3_to_voigt_6_stress(virial / atoms.get_volume())
        if self.is_ensemble:
            totals = members.detach().sum(1)
            spread = totals.std(correction=1) if len(totals) > 1 else totals.new_zeros(())
            self.results["energy_uncertainty"] = float(spread)
