"""Levels of theory for the labeller's fault tests, loaded by the labeller's workers through
`FOUNDATION_LABEL_LEVELS=faulty_levels`: real PySCF calculations, cheap ones (RHF/STO-3G), one
that never converges, one that raises on molecules with nitrogen, and one whose worker process
dies on any molecule with oxygen (`os._exit`, as a segfault in native code or the kernel's OOM
killer ends a process: no exception, no cleanup)."""

from __future__ import annotations

import os
import time

from foundation.pipelines.label.levels import Label, Level
from foundation.units import HARTREE_TO_EV


def hf_sto3g(numbers, positions, max_cycle: int = 50) -> Label:
    from pyscf import gto, scf

    start = time.perf_counter()
    mol = gto.M(atom=[(int(z), tuple(map(float, p))) for z, p in zip(numbers, positions)], basis="sto-3g",
                unit="Angstrom", verbose=0)
    mf = scf.RHF(mol)
    mf.conv_tol, mf.max_cycle = 1e-10, max_cycle
    energy = mf.kernel()
    return Label(energy=float(energy) * HARTREE_TO_EV, forces=None, converged=bool(mf.converged),
                 method="RHF", basis="STO-3G", program="pyscf", seconds=time.perf_counter() - start)


def never_converges(numbers, positions) -> Label:
    return hf_sto3g(numbers, positions, max_cycle=1)


def raises_on_nitrogen(numbers, positions) -> Label:
    if 7 in list(numbers):
        raise RuntimeError("SCF diverged to a NaN density")
    return hf_sto3g(numbers, positions)


def dies_on_oxygen(numbers, positions) -> Label:
    if 8 in list(numbers):
        os._exit(9)
    return hf_sto3g(numbers, positions)


LEVELS = {
    "hf_sto3g": Level("hf_sto3g", "RHF", "STO-3G", False, hf_sto3g),
    "hf_unconverged": Level("hf_unconverged", "RHF", "STO-3G", False, never_converges),
    "hf_raises_on_nitrogen": Level("hf_raises_on_nitrogen", "RHF", "STO-3G", False, raises_on_nitrogen),
    "hf_dies_on_oxygen": Level("hf_dies_on_oxygen", "RHF", "STO-3G", False, dies_on_oxygen),
}
