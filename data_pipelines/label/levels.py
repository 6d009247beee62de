"""Levels of theory, each a named fidelity. Adding a level is adding a function and a line in
`LEVELS`; the labeller and the manifest read everything else from here.

Every calculator takes atomic numbers and positions (Å) and returns a `Label`: energy in eV,
forces in eV/Å (or None), and what a reader needs to trust it — method, basis, program version,
convergence, SCF cycles and wall time. An unconverged calculation is returned with
`converged=False` and the labeller never writes it as a label.

Levels of a site (or of a test) can live outside the package: `FOUNDATION_LABEL_LEVELS` names
modules (comma-separated, importable) whose own `LEVELS` dicts are added to these.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import time
from collections.abc import Callable

import numpy as np

from foundation.units import BOHR_TO_ANGSTROM, HARTREE_TO_EV


@dataclasses.dataclass
class Label:
    energy: float  # eV
    forces: list | None  # eV/Å, (n, 3) as nested lists so records stay JSON
    converged: bool
    method: str
    basis: str
    program: str
    seconds: float
    details: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Level:
    fidelity: str
    method: str
    basis: str
    has_forces: bool
    compute: Callable[..., Label]  # (numbers, positions Å, max_cycle=...) -> Label


def _molecule(numbers, positions, basis: str):
    from pyscf import gto

    mol = gto.Mole()
    mol.atom = [(int(z), tuple(map(float, p))) for z, p in zip(numbers, positions)]
    mol.unit = "Angstrom"
    mol.basis = basis
    mol.charge = 0
    mol.spin = 0
    mol.verbose = 0
    mol.build()
    return mol


def _pyscf_version() -> str:
    import pyscf

    return f"pyscf {pyscf.__version__}"


def wb97x_631gs(numbers, positions, max_cycle: int = 100) -> Label:
    """ωB97X/6-31G* (spherical functions, PySCF's default), restricted Kohn-Sham with density
    fitting; energy and analytic forces."""
    from pyscf import dft

    start = time.perf_counter()
    mol = _molecule(numbers, positions, "6-31g*")
    mf = dft.RKS(mol).density_fit()
    mf.xc = "wb97x"
    mf.conv_tol = 1e-9
    mf.max_cycle = max_cycle
    energy = mf.kernel()
    converged = bool(mf.converged)
    forces = None
    if converged:
        gradient = mf.nuc_grad_method().kernel()  # Hartree/Bohr
        forces = (-gradient * HARTREE_TO_EV / BOHR_TO_ANGSTROM).tolist()
    return Label(
        energy=float(energy) * HARTREE_TO_EV, forces=forces, converged=converged,
        method="wB97X (RKS, density fitting)", basis="6-31G*", program=_pyscf_version(),
        seconds=time.perf_counter() - start,
        details={"scf_cycles": int(getattr(mf, "cycles", -1)), "grid_level": int(mf.grids.level),
                 "auxbasis": str(mf.with_df.auxbasis)},
    )


def ccsdt_ccpvdz(numbers, positions, max_cycle: int = 100) -> Label:
    """CCSD(T)/cc-pVDZ on an RHF reference with frozen core; energy only."""
    from pyscf import cc, scf

    start = time.perf_counter()
    mol = _molecule(numbers, positions, "cc-pvdz")
    mf = scf.RHF(mol)
    mf.conv_tol = 1e-10
    mf.max_cycle = max_cycle
    mf.kernel()
    if not mf.converged:
        return Label(energy=float("nan"), forces=None, converged=False, method="CCSD(T) (RHF, frozen core)",
                     basis="cc-pVDZ", program=_pyscf_version(), seconds=time.perf_counter() - start,
                     details={"failed": "RHF"})
    n_core = sum(_core_orbitals(int(z)) for z in numbers)
    mycc = cc.CCSD(mf, frozen=n_core if n_core else None)
    mycc.conv_tol = 1e-8
    mycc.max_cycle = max_cycle
    mycc.kernel()
    converged = bool(mycc.converged)
    e_t = float(mycc.ccsd_t()) if converged else float("nan")
    energy = (mycc.e_tot + e_t) * HARTREE_TO_EV
    return Label(
        energy=float(energy), forces=None, converged=converged, method="CCSD(T) (RHF, frozen core)",
        basis="cc-pVDZ", program=_pyscf_version(), seconds=time.perf_counter() - start,
        details={"frozen_orbitals": n_core, "e_hf_ev": float(mf.e_tot) * HARTREE_TO_EV,
                 "e_triples_ev": e_t * HARTREE_TO_EV},
    )


def mp2_ccpvdz(numbers, positions, max_cycle: int = 100) -> Label:
    """MP2/cc-pVDZ on an RHF reference with frozen core; energy and analytic forces. The rung
    between ωB97X and CCSD(T): 20-50x cheaper than CCSD(T) at 5-7 heavy atoms and much closer to it
    than DFT. Canonical (no density fitting), so it is exactly the method its name says."""
    from pyscf import mp, scf

    start = time.perf_counter()
    method = "MP2 (RHF, frozen core)"
    mol = _molecule(numbers, positions, "cc-pvdz")
    mf = scf.RHF(mol)
    mf.conv_tol = 1e-10
    mf.max_cycle = max_cycle
    mf.kernel()
    if not mf.converged:
        return Label(energy=float("nan"), forces=None, converged=False, method=method, basis="cc-pVDZ",
                     program=_pyscf_version(), seconds=time.perf_counter() - start, details={"failed": "RHF"})
    n_core = sum(_core_orbitals(int(z)) for z in numbers)
    pt = mp.MP2(mf, frozen=n_core if n_core else None)
    pt.kernel()
    gradient = pt.nuc_grad_method().kernel()  # Hartree/Bohr
    return Label(
        energy=float(pt.e_tot) * HARTREE_TO_EV,
        forces=(-gradient * HARTREE_TO_EV / BOHR_TO_ANGSTROM).tolist(), converged=True, method=method,
        basis="cc-pVDZ", program=_pyscf_version(), seconds=time.perf_counter() - start,
        details={"frozen_orbitals": n_core, "e_hf_ev": float(mf.e_tot) * HARTREE_TO_EV},
    )


def _core_orbitals(z: int) -> int:
    """Doubly occupied core orbitals frozen in correlated methods: 1s for Li-Ne, 1s2s2p for Na-Ar."""
    return 0 if z <= 2 else 1 if z <= 10 else 5 if z <= 18 else 9


LEVELS: dict[str, Level] = {
    "wb97x_631gs": Level("wb97x_631gs", "wB97X", "6-31G*", True, wb97x_631gs),
    "ccsdt_ccpvdz": Level("ccsdt_ccpvdz", "CCSD(T)", "cc-pVDZ", False, ccsdt_ccpvdz),
    "mp2_ccpvdz": Level("mp2_ccpvdz", "MP2", "cc-pVDZ", True, mp2_ccpvdz),
}


PLUGINS_ENV = "FOUNDATION_LABEL_LEVELS"


def get_level(name: str) -> Level:
    from foundation.errors import UserError

    if name not in LEVELS:
        _load_plugins()
    if name not in LEVELS:
        raise UserError(f"unknown level of theory {name!r}; known: {', '.join(LEVELS)}")
    return LEVELS[name]


def _load_plugins() -> None:
    from foundation.errors import UserError

    for module in filter(None, (m.strip() for m in os.environ.get(PLUGINS_ENV, "").split(","))):
        try:
            extra = importlib.import_module(module).LEVELS
        except (ImportError, AttributeError) as e:
            raise UserError(f"{PLUGINS_ENV}: cannot load levels from module {module!r} ({e})") from None
        for name, level in extra.items():
            LEVELS.setdefault(name, level)
