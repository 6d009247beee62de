"""The labeller on real (tiny) PySCF calculations: records, resume, repair, failures."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from foundation.pipelines.label.conformers import bonds, embed, md_conformers, mmff_gradient, mmff_hessian, sample_conformers
from foundation.pipelines.label.export import labels_by_structure, level_metadata, load_samples
from foundation.pipelines.label.levels import LEVELS, ccsdt_ccpvdz, mp2_ccpvdz, mp2_ccpvdz_ri, wb97x_631gs
from foundation.pipelines.label.run import run_labelling
from foundation.pipelines.label.store import LabelStore, read_records
from foundation.units import HARTREE_TO_EV

WATER = (np.array([8, 1, 1]), np.array([[0.0, 0.0, 0.117], [0.0, 0.757, -0.469], [0.0, -0.757, -0.469]]))

PLAN = {"seed": 3, "molecules": [
    {"name": "methane", "smiles": "C", "conformers": 3, "levels": {"wb97x_631gs": 3, "ccsdt_ccpvdz": 1}},
    {"name": "water", "smiles": "O", "conformers": 2, "levels": {"wb97x_631gs": 2}, "split": "test"},
]}


def _finite_difference_force(level, h: float = 1e-3) -> float:
    """-dE/dy of water's first hydrogen by central differences, eV/Å."""
    numbers, x = WATER
    xp, xm = x.copy(), x.copy()
    xp[1, 1] += h
    xm[1, 1] -= h
    return -(level(numbers, xp).energy - level(numbers, xm).energy) / (2 * h)


def test_wb97x_energy_and_forces_are_ev_and_consistent():
    label = wb97x_631gs(*WATER)
    assert label.converged and label.basis == "6-31G*" and "pyscf" in label.program
    assert -2090 < label.energy < -2070  # water, ~ -76.4 Hartree
    # forces are -dE/dx: a finite difference of the energy along one coordinate agrees (eV/Å)
    assert label.forces[1][1] == pytest.approx(_finite_difference_force(wb97x_631gs), abs=2e-3)


def test_ccsdt_frozen_core_below_hf():
    label = ccsdt_ccpvdz(*WATER)
    assert label.converged and label.details["frozen_orbitals"] == 1
    assert label.energy < label.details["e_hf_ev"]  # correlation lowers the energy
    assert label.energy / HARTREE_TO_EV == pytest.approx(-76.24, abs=0.05)


def test_mp2_frozen_core_energy_and_forces_match_pyscf_and_finite_differences():
    from pyscf import gto, mp, scf

    label = mp2_ccpvdz(*WATER)
    mol = gto.M(atom=[(8, WATER[1][0]), (1, WATER[1][1]), (1, WATER[1][2])], basis="cc-pvdz", verbose=0)
    direct = mp.MP2(scf.RHF(mol).run(conv_tol=1e-10), frozen=1).run().e_tot
    assert label.converged and label.details["frozen_orbitals"] == 1 and label.basis == "cc-pVDZ"
    assert label.energy == pytest.approx(direct * HARTREE_TO_EV, abs=1e-6)
    assert label.forces[1][1] == pytest.approx(_finite_difference_force(mp2_ccpvdz), abs=2e-3)


def test_ri_mp2_moves_relative_energies_by_far_less_than_its_fidelity_allows():
    numbers, x = WATER
    bent = x.copy()
    bent[1] += [0.0, 0.05, 0.08]
    ri = [mp2_ccpvdz_ri(numbers, g) for g in (x, bent)]
    exact = [mp2_ccpvdz(numbers, g).energy for g in (x, bent)]
    assert all(r.converged and r.forces is None and r.method.startswith("RI-MP2") for r in ri)
    moved = (ri[1].energy - ri[0].energy) - (exact[1] - exact[0])
    assert abs(moved) * 23.0605 < 0.05  # kcal/mol, the fidelity's promise
    assert abs(ri[0].energy - exact[0]) < 0.01  # eV: the same method, fitted integrals


def test_two_levels_of_one_fidelity_become_one_label_the_one_with_forces_first(tmp_path):
    canonical = {"id": "a", "fidelity": "mp2_ccpvdz", "status": "ok", "energy": -1.0, "forces": [[0, 0, 0]],
                 "method": "MP2 (RHF, frozen core)", "basis": "cc-pVDZ", "program": "pyscf"}
    ri = canonical | {"fidelity": "mp2_ccpvdz_ri", "energy": -1.001, "forces": None, "method": "RI-MP2 (DF-RHF, frozen core)"}
    only_ri = ri | {"id": "b"}
    got = labels_by_structure([ri, canonical, only_ri])
    assert got["a"] == {"mp2_ccpvdz": canonical} and got["b"] == {"mp2_ccpvdz": only_ri}
    (tmp_path / "labels.jsonl").write_text("".join(json.dumps(r) + "\n" for r in (canonical, only_ri)))
    assert level_metadata(tmp_path)["mp2_ccpvdz"]["method"] == "MP2 (RHF, frozen core); RI-MP2 (DF-RHF, frozen core)"


def test_mmff_gradient_is_the_gradient_of_the_energy_on_every_call():
    # RDKit's CalcGrad(pos) alone answers for the previous energy call's positions; mmff_gradient not
    from rdkit.Chem import AllChem

    mol, ids = embed("CCOCC", 1, seed=1)
    ff = AllChem.MMFFGetMoleculeForceField(mol, AllChem.MMFFGetMoleculeProperties(mol), confId=ids[0])
    x0 = np.array(mol.GetConformer(ids[0]).GetPositions()).reshape(-1)
    rng = np.random.default_rng(0)
    for _ in range(3):
        x = x0 + rng.normal(scale=0.1, size=x0.shape)
        g = mmff_gradient(ff, x)
        k = int(np.argmax(np.abs(g)))
        e = np.zeros_like(x)
        e[k] = 1e-5
        fd = (ff.CalcEnergy((x + e).tolist()) - ff.CalcEnergy((x - e).tolist())) / 2e-5
        assert g[k] == pytest.approx(fd, rel=1e-5)


def test_mmff_hessian_at_a_minimum_has_six_zero_modes_and_no_negative_one():
    mol, ids = embed("CCOCC", 1, seed=1)
    hess = mmff_hessian(mol, ids[0])
    masses = np.repeat([a.GetMass() for a in mol.GetAtoms()], 3)
    eig = np.linalg.eigvalsh(hess / np.sqrt(np.outer(masses, masses)))
    assert np.all(np.abs(eig[:6]) < 1e-2) and eig[6] > 0.1


def test_thermal_conformers_of_a_flexible_molecule():
    a = md_conformers("CCOCC", 3, seed=4, steps=400)
    b = md_conformers("CCOCC", 3, seed=4, steps=400)
    assert all(np.array_equal(x.positions, y.positions) for x, y in zip(a, b))
    ref = bonds(a[0].numbers, a[0].positions)
    assert all(bonds(c.numbers, c.positions) == ref and c.method.startswith("mmff_langevin") for c in a)
    assert np.std([c.positions for c in a], axis=0).mean() > 0.05
    # normal-mode samples of the same molecule now pass the bond check too (the wrong Hessian failed them all)
    modes = sample_conformers("CCOCC", 4, seed=1, temperatures=(300.0, 600.0), displaced_fraction=0.0)
    assert all(c.method.startswith("normal_mode") for c in modes[1:])


def test_unconverged_calculation_is_flagged():
    assert not wb97x_631gs(*WATER, max_cycle=1).converged


def test_conformers_keep_bonds_and_are_deterministic():
    a = sample_conformers("CCO", 12, seed=5)
    b = sample_conformers("CCO", 12, seed=5)
    assert len(a) == 12
    assert all(np.array_equal(x.positions, y.positions) for x, y in zip(a, b))
    ref = bonds(a[0].numbers, a[0].positions)
    assert all(bonds(c.numbers, c.positions) == ref for c in a)
    assert np.std([c.positions for c in a], axis=0).mean() > 0.01  # they differ


@pytest.mark.integration  # the labeller's worker processes
def test_label_resume_and_export(tmp_path):
    counts = run_labelling(tmp_path, PLAN, workers=2, max_tasks=3, progress=False)
    assert counts["ok"] == 3
    counts = run_labelling(tmp_path, None, workers=2, progress=False)  # resume from structures.jsonl
    assert counts == {"ok": 3, "unconverged": 0, "failed": 0, "skipped": 3}
    records = read_records(tmp_path / "labels.jsonl")
    assert len({(r["id"], r["fidelity"]) for r in records}) == len(records) == 6  # nothing computed twice
    splits, stats = load_samples(tmp_path)
    assert len(splits["train"]) == 3 and len(splits["test"]) == 2
    cc = [s for s in splits["train"] if "ccsdt_ccpvdz" in s.energies]
    assert len(cc) == 1 and "ccsdt_ccpvdz" not in cc[0].forces and cc[0].forces["wb97x_631gs"].shape == (5, 3)


@pytest.mark.integration  # a labelling run killed as a child process
def test_killed_run_resumes_without_recomputing(tmp_path):
    cmd = [sys.executable, "-m", "foundation", "data", "label", "--out", str(tmp_path), "--workers", "1"]
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(PLAN))
    proc = subprocess.Popen(cmd + ["--plan", str(plan)], stderr=subprocess.DEVNULL, env={**os.environ, "OMP_NUM_THREADS": "1"},
                            start_new_session=True)
    labels = tmp_path / "labels.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and (not labels.exists() or len(read_records(labels)) < 2):
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = read_records(labels)
    assert 2 <= len(before) < 6
    with open(labels, "a") as fh:
        fh.write('{"id": "methane/0001", "fidel')  # what a kill mid-write leaves behind
    subprocess.run(cmd, check=True, stderr=subprocess.DEVNULL, env={**os.environ, "OMP_NUM_THREADS": "1"})
    after = read_records(labels)
    assert after[: len(before)] == before  # finished work kept, partial line dropped
    assert sorted((r["id"], r["fidelity"]) for r in after) == sorted(
        {(r["id"], r["fidelity"]) for r in after})  # no duplicates
    assert len(after) == 6


def test_partial_line_is_dropped_on_open(tmp_path):
    path = tmp_path / "labels.jsonl"
    path.write_text('{"id": "a", "fidelity": "f", "status": "ok"}\n{"id": "b", "fid')
    with LabelStore(path) as store:
        assert [r["id"] for r in store.records] == ["a"]
    assert path.read_text() == '{"id": "a", "fidelity": "f", "status": "ok"}\n'


def test_levels_are_named_fidelities():
    assert set(LEVELS) >= {"wb97x_631gs", "ccsdt_ccpvdz", "mp2_ccpvdz"}
    assert LEVELS["wb97x_631gs"].has_forces and not LEVELS["ccsdt_ccpvdz"].has_forces
    assert LEVELS["mp2_ccpvdz"].has_forces
    assert LEVELS["mp2_ccpvdz_ri"].fidelity == "mp2_ccpvdz" and not LEVELS["mp2_ccpvdz_ri"].has_forces
