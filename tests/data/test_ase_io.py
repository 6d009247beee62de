import warnings

import ase.db
import numpy as np
import pytest
from ase.build import molecule

from foundation.data.ase_io import (UnitWarning, guess_energy_unit, read_samples, samples_to_atoms,
                                    write_extxyz)
from foundation.data.sample import Sample
from foundation.errors import DataError


def test_custom_keys_round_trip(molecules_xyz):
    path, written = molecules_xyz(n_molecules=3, n_conformers=2, energy_key="E_ccsd", forces_key="F_ccsd")
    samples = read_samples(path, "E_ccsd", "F_ccsd", fidelity="ccsdt_ccpvdz")
    assert len(samples) == 6
    for s, w in zip(samples, written):
        assert s.energies == {"ccsdt_ccpvdz": pytest.approx(w.energies["dft"], abs=1e-6)}
        np.testing.assert_allclose(s.forces["ccsdt_ccpvdz"], w.forces["dft"], atol=1e-6)
        np.testing.assert_array_equal(s.numbers, w.numbers)
    assert samples[4].source == f"{path}:4"
    assert samples[0].molecule == samples[1].molecule != samples[2].molecule


def test_keys_ase_moves_to_the_calculator(tmp_path, make_samples):
    samples = make_samples(2, 2)
    write_extxyz(tmp_path / "calc.xyz", samples, energy_key="energy", forces_key="forces")
    assert "energy=" in (tmp_path / "calc.xyz").read_text()
    got = read_samples(tmp_path / "calc.xyz", "energy", "forces")
    assert got[3].energies["dft"] == pytest.approx(samples[3].energies["dft"])
    np.testing.assert_allclose(got[3].forces["dft"], samples[3].forces["dft"], atol=1e-6)


def test_index_selects_structures_and_keeps_their_file_index(molecules_xyz):
    path, _ = molecules_xyz(n_molecules=2, n_conformers=3)
    got = read_samples(path, "REF_energy", index="2:5")
    assert [s.source for s in got] == [f"{path}:{i}" for i in (2, 3, 4)]


def test_missing_key_names_file_index_and_present_keys(tmp_path, make_samples):
    samples = make_samples(1, 3)
    images = samples_to_atoms(samples, energy_key="REF_energy", forces_key="REF_forces")
    del images[2].info["REF_energy"]
    images[2].info["other_energy"] = 1.0
    import ase.io

    ase.io.write(tmp_path / "d.xyz", images, format="extxyz")
    with pytest.raises(DataError) as err:
        read_samples(tmp_path / "d.xyz", "REF_energy", "REF_forces")
    message = str(err.value)
    assert f"{tmp_path / 'd.xyz'}:2" in message and "'REF_energy'" in message
    assert "other_energy" in message and "REF_forces" in message and "\n" not in message


def test_missing_forces_key_is_named(molecules_xyz):
    path, _ = molecules_xyz(n_molecules=1, n_conformers=1)
    with pytest.raises(DataError, match=r":0: structure has no forces key 'F'"):
        read_samples(path, "REF_energy", "F")


def test_missing_file_is_named(tmp_path):
    with pytest.raises(DataError, match="nothere.xyz: no such file"):
        read_samples(tmp_path / "nothere.xyz", "energy")


def test_empty_and_garbled_files(tmp_path):
    (tmp_path / "empty.xyz").write_text("")
    with pytest.raises(DataError, match="empty.xyz: file is empty"):
        read_samples(tmp_path / "empty.xyz", "energy")
    (tmp_path / "bad.xyz").write_text("3\nenergy=1.0\nC 0 0 0\n")
    with pytest.raises(DataError, match="bad.xyz: cannot read structures") as err:
        read_samples(tmp_path / "bad.xyz", "energy")
    assert "\n" not in str(err.value)


def test_nan_energy_is_an_error(tmp_path, make_samples):
    samples = make_samples(1, 2)
    samples[1].energies["dft"] = float("nan")
    write_extxyz(tmp_path / "nan.xyz", samples, energy_key="E")
    with pytest.raises(DataError, match=r"nan.xyz:1: energy .* is nan"):
        read_samples(tmp_path / "nan.xyz", "E")


def test_atoms_too_close_is_an_error(tmp_path, make_samples):
    samples = make_samples(1, 1)
    samples[0].positions[1] = samples[0].positions[0] + [0.2, 0.0, 0.0]
    write_extxyz(tmp_path / "close.xyz", samples, energy_key="E")
    with pytest.raises(DataError, match=r"close.xyz:0: atoms 0.200 Å apart"):
        read_samples(tmp_path / "close.xyz", "E")


@pytest.mark.parametrize("name", ["data.db", "data.json"])
def test_ase_database_key_value_pairs_and_data(tmp_path, make_samples, name):
    samples = make_samples(2, 1)
    with ase.db.connect(tmp_path / name) as db:
        for s in samples:
            atoms = samples_to_atoms([s], energy_key="energy")[0]
            atoms.calc = None
            db.write(atoms, E_cc=s.energies["dft"], data={"F_cc": s.forces["dft"]})
    got = read_samples(tmp_path / name, "E_cc", "F_cc", fidelity="cc")
    assert got[1].energies["cc"] == pytest.approx(samples[1].energies["dft"])
    np.testing.assert_allclose(got[1].forces["cc"], samples[1].forces["dft"])


def test_group_key_names_the_molecule(tmp_path, make_samples):
    samples = make_samples(2, 1)
    images = samples_to_atoms(samples, energy_key="E")
    for i, atoms in enumerate(images):
        atoms.info["mol_id"] = f"m{i}"
    import ase.io

    ase.io.write(tmp_path / "g.xyz", images, format="extxyz")
    assert [s.molecule for s in read_samples(tmp_path / "g.xyz", "E", group_key="mol_id")] == ["m0", "m1"]


def test_hartree_energies_are_refused_naming_the_key_unless_their_unit_is_declared(molecules_xyz):
    path, samples = molecules_xyz(n_molecules=3, n_conformers=2, unit="hartree", forces_key=None)
    with pytest.raises(DataError, match=rf"{path}: energies under key 'REF_energy' look like hartree, not eV.*"
                                        "--energy-unit hartree"):
        read_samples(path, "REF_energy")
    read = read_samples(path, "REF_energy", energy_unit="hartree")
    assert [s.energies["dft"] for s in read] == pytest.approx([s.energies["dft"] for s in samples], rel=1e-12)


def test_declared_units_convert_energies_positions_and_forces(tmp_path, molecules_xyz):
    from foundation.units import BOHR_TO_ANGSTROM, HARTREE_TO_EV

    _, samples = molecules_xyz(n_molecules=2, n_conformers=2)
    in_au = [Sample(s.numbers, s.positions / BOHR_TO_ANGSTROM, {"dft": s.energies["dft"] / HARTREE_TO_EV},
                    {"dft": s.forces["dft"] / HARTREE_TO_EV * BOHR_TO_ANGSTROM}) for s in samples]
    write_extxyz(tmp_path / "au.xyz", in_au, energy_key="E", forces_key="F")
    read = read_samples(tmp_path / "au.xyz", "E", "F", energy_unit="hartree", length_unit="bohr")
    for got, want in zip(read, samples):
        assert got.energies["dft"] == pytest.approx(want.energies["dft"], rel=1e-12)
        np.testing.assert_allclose(got.positions, want.positions, atol=1e-6)
        np.testing.assert_allclose(got.forces["dft"], want.forces["dft"], atol=1e-6)  # extxyz keeps 8 digits


def test_a_declared_unit_the_numbers_contradict_is_warned_about(molecules_xyz):
    path, _ = molecules_xyz(n_molecules=3, n_conformers=2, unit="hartree")
    with pytest.warns(UnitWarning, match="declared eV, do not look like it"):
        read_samples(path, "REF_energy", energy_unit="eV")


def test_charge_and_spin_info_keys_are_read(tmp_path):
    import ase
    import ase.io

    oh = ase.Atoms("OH", positions=[[0, 0, 0], [0.97, 0, 0]], info={"E": -2070.0, "charge": -1})
    ase.io.write(tmp_path / "oh.xyz", oh, format="extxyz")
    assert read_samples(tmp_path / "oh.xyz", "E")[0].state == (-1, 1)
    oh.info.update(charge=0)
    ase.io.write(tmp_path / "oh.xyz", oh, format="extxyz")
    with pytest.raises(DataError, match="oh.xyz:0: 9 electrons"):
        read_samples(tmp_path / "oh.xyz", "E")


def test_ev_energies_do_not_warn(molecules_xyz):
    path, _ = molecules_xyz(n_molecules=3, n_conformers=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnitWarning)
        read_samples(path, "REF_energy")


def test_unit_guess():
    water, methane = molecule("H2O").numbers, molecule("CH4").numbers
    hartree = [-76.43, -40.52]  # ωB97X/6-31G*-like total energies
    assert guess_energy_unit([water, methane], hartree) == "hartree"
    assert guess_energy_unit([water, methane], [e * 27.2114 for e in hartree]) == "eV"
    assert guess_energy_unit([water, methane], [e * 627.5 for e in hartree]) == "kcal/mol"
    assert guess_energy_unit([water, methane], [-10.1, -18.2]) is None  # atomisation energies, eV
    assert guess_energy_unit([np.array([79])], [-1000.0]) is None  # gold: outside the table


def test_write_is_atomic(tmp_path, make_samples, monkeypatch):
    path = tmp_path / "out.xyz"
    path.write_text("old")

    def crash(f, images, format):  # a crash half-way through writing
        f.write("partial")
        raise OSError("disk full")

    monkeypatch.setattr("ase.io.write", crash)
    with pytest.raises(OSError):
        write_extxyz(path, make_samples(1, 2))
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.xyz"]


def test_training_file_data_declares_its_units_too(molecules_xyz):
    from foundation.data.sources.in_memory import FileDataConfig

    path, samples = molecules_xyz(n_molecules=12, n_conformers=2, unit="hartree", forces_key=None)
    with pytest.raises(DataError, match="data.energy_unit=hartree for foundation train"):
        FileDataConfig(path=str(path), energy_key="REF_energy").build()
    data = FileDataConfig(path=str(path), energy_key="REF_energy", energy_unit="hartree", split="conformer").build()
    got = sorted(s.energies["dft"] for s in [*data.train, *data.val])
    assert got == pytest.approx(sorted(s.energies["dft"] for s in samples), rel=1e-12)
