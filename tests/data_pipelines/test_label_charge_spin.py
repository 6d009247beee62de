"""The labeller computes the molecule that was asked for (issue 28): charge and multiplicity from the
SMILES or from a structures file, restricted for closed shells and unrestricted for open ones,
energies equal to PySCF called directly; refusals before any calculation; a run whose
calculations failed exits non-zero and names the first reason."""

from __future__ import annotations

import json
from pathlib import Path

import ase
import ase.io
import numpy as np
import pytest

from foundation.cli.main import main
from foundation.pipelines.label.levels import PLUGINS_ENV, ccsdt_ccpvdz, mp2_ccpvdz
from foundation.pipelines.label.plan import smiles_charge_spin
from foundation.pipelines.label.store import read_records
from foundation.units import HARTREE_TO_EV

# (SMILES, charge, multiplicity, restricted?)
ASKED = [("[NH4+]", 1, 1, True), ("C[CH2]", 0, 2, False), ("[NH3+]CC[NH3+]", 2, 1, True), ("[CH2]", 0, 3, False)]
CH2 = (np.array([6, 1, 1]), np.array([[0.0, 0.0, 0.1], [0.0, 0.99, -0.5], [0.0, -0.99, -0.5]]))


def _pyscf_wb97x(numbers, positions, charge, multiplicity) -> float:
    """ωB97X/6-31G* as PySCF computes it, called directly: eV."""
    from pyscf import dft, gto

    mol = gto.M(atom=[(int(z), tuple(p)) for z, p in zip(numbers, positions)], basis="6-31g*", unit="Angstrom",
                charge=charge, spin=multiplicity - 1, verbose=0)
    mf = (dft.RKS(mol) if multiplicity == 1 else dft.UKS(mol)).density_fit()
    mf.xc, mf.conv_tol = "wb97x", 1e-9
    return mf.kernel() * HARTREE_TO_EV


def test_charge_and_multiplicity_come_from_the_smiles():
    assert [smiles_charge_spin(smi) for smi, *_ in ASKED] == [(c, m) for _, c, m, _ in ASKED]


@pytest.mark.integration
def test_label_smiles_writes_the_energy_pyscf_gives_for_the_right_charge_and_multiplicity(tmp_path, capsys):
    smiles = tmp_path / "ions_and_radicals.smi"
    smiles.write_text("".join(f"{smi} m{k}\n" for k, (smi, *_) in enumerate(ASKED)))
    out = tmp_path / "labels"
    code = main(["data", "label", "--smiles", str(smiles), "--out", str(out), "--conformers", "1"])
    assert code == 0, capsys.readouterr().err
    assert "labelled 4 ok, 0 unconverged, 0 failed" in capsys.readouterr().out
    structures = {r["molecule"]: r for r in map(json.loads, (out / "structures.jsonl").read_text().splitlines())}
    labels = {r["id"]: r for r in read_records(out / "labels.jsonl")}
    for k, (smi, charge, multiplicity, restricted) in enumerate(ASKED):
        s = structures[f"m{k}"]
        assert (s.get("charge", 0), s.get("multiplicity", 1)) == (charge, multiplicity), smi
        label = labels[s["id"]]
        assert label["status"] == "ok" and label["method"].startswith(f"wB97X ({'R' if restricted else 'U'}KS"), smi
        direct = _pyscf_wb97x(s["numbers"], np.array(s["positions"]), charge, multiplicity)
        assert label["energy"] == pytest.approx(direct, abs=1e-5), smi
        if not restricted:  # a high-spin reference: <S²> near S(S+1)
            assert label["details"]["s2"] == pytest.approx(label["details"]["s2_exact"], abs=0.05)


def test_open_shell_ccsdt_and_mp2_are_unrestricted_and_equal_to_pyscf():
    from pyscf import cc, gto, mp, scf

    mol = gto.M(atom=[(6, CH2[1][0]), (1, CH2[1][1]), (1, CH2[1][2])], basis="cc-pvdz", spin=2, verbose=0)
    uhf = scf.UHF(mol).run(conv_tol=1e-10)
    ucc = cc.UCCSD(uhf, frozen=1).run(conv_tol=1e-8)
    label = ccsdt_ccpvdz(*CH2, multiplicity=3)
    assert label.converged and label.method == "UCCSD(T) (UHF, frozen core)"
    assert label.energy == pytest.approx((ucc.e_tot + ucc.ccsd_t()) * HARTREE_TO_EV, abs=1e-5)
    ump2 = mp.UMP2(uhf, frozen=1).run()
    label = mp2_ccpvdz(*CH2, multiplicity=3)
    assert label.method == "UMP2 (UHF, frozen core)" and np.shape(label.forces) == (3, 3)
    assert label.energy == pytest.approx(ump2.e_tot * HARTREE_TO_EV, abs=1e-6)


def test_a_structure_the_electrons_cannot_make_is_refused_before_any_calculation(tmp_path, capsys):
    methyl = ase.Atoms("CH3", positions=[[0, 0, 0], [1.08, 0, 0], [-0.54, 0.94, 0], [-0.54, -0.94, 0]])
    path = tmp_path / "methyl.xyz"
    ase.io.write(path, methyl, format="extxyz")  # says nothing: 9 electrons cannot be a singlet
    assert main(["data", "label", "--structures", str(path), "--out", str(tmp_path / "l")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "9 electrons (charge +0) cannot have spin multiplicity 1" in err
    assert "'spin'" in err and not (tmp_path / "l" / "labels.jsonl").exists()


def test_structures_file_info_keys_set_charge_and_spin(tmp_path, capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parents[1] / "faults"))
    monkeypatch.setenv(PLUGINS_ENV, "faulty_levels")
    methyl = ase.Atoms("CH3", positions=[[0, 0, 0], [1.08, 0, 0], [-0.54, 0.94, 0], [-0.54, -0.94, 0]])
    methyl.info.update(charge=0, spin=2)
    path = tmp_path / "methyl.xyz"
    ase.io.write(path, methyl, format="extxyz")
    # hf_sto3g is an older plugin (no charge= / multiplicity=): refused at plan time, in one line
    assert main(["data", "label", "--structures", str(path), "--out", str(tmp_path / "l"), "--levels", "hf_sto3g"]) == 2
    err = capsys.readouterr().err
    assert "charge +0, doublet, but level 'hf_sto3g' computes neutral singlets only" in err
    record = json.loads((tmp_path / "l" / "structures.jsonl").read_text())
    assert (record["charge"], record["multiplicity"]) == (0, 2)
    assert not (tmp_path / "l" / "labels.jsonl").exists()


@pytest.mark.integration  # the labeller's worker processes
def test_a_run_with_a_failed_calculation_exits_non_zero_with_the_first_reason(tmp_path, capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parents[1] / "faults"))
    monkeypatch.setenv(PLUGINS_ENV, "faulty_levels")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    smiles = tmp_path / "mols.smi"
    smiles.write_text("C methane\nN ammonia\n")
    code = main(["data", "label", "--smiles", str(smiles), "--out", str(tmp_path / "l"), "--conformers", "1",
                 "--levels", "hf_raises_on_nitrogen"])
    captured = capsys.readouterr()
    assert code == 1 and "labelled 1 ok, 0 unconverged, 1 failed" in captured.out
    assert "the first: ammonia/0000 hf_raises_on_nitrogen: RuntimeError: SCF diverged to a NaN density" in captured.err
