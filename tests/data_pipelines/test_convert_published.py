"""The published datasets' readers (issue 28): SPICE 2, OMol25, QM7-X and Transition1x files written
here in each format's published layout (keys, dtypes, units; see each reader's docstring for the
source), converted by `foundation data convert --format …`, give shards whose energies, forces,
charges and multiplicities are the source's after unit conversion."""

from __future__ import annotations

import zlib

import h5py
import numpy as np
import pytest

from foundation.cli.main import main
from foundation.data.shards.manifest import load_manifest
from foundation.data.shards.reader import iter_samples
from foundation.units import BOHR_TO_ANGSTROM, HARTREE_TO_EV

RNG = np.random.default_rng(0)
# (atomic numbers, positions Å, mapped SMILES, charge, multiplicity)
MOLECULES = {
    "water": ([8, 1, 1], [[0, 0, 0.12], [0, 0.76, -0.47], [0, -0.76, -0.47]], "[O:1]([H:2])[H:3]", 0, 1),
    "ammonium": ([7, 1, 1, 1, 1], [[0, 0, 0], [0.6, 0.6, 0.6], [-0.6, -0.6, 0.6], [-0.6, 0.6, -0.6], [0.6, -0.6, -0.6]],
                 "[N+:1]([H:2])([H:3])([H:4])[H:5]", 1, 1),
    "hydroxide": ([8, 1], [[0, 0, 0], [0.97, 0, 0]], "[O-:1][H:2]", -1, 1),
    "methane": ([6, 1, 1, 1, 1], [[0, 0, 0], [0.63, 0.63, 0.63], [-0.63, -0.63, 0.63], [-0.63, 0.63, -0.63],
                                  [0.63, -0.63, -0.63]], "[C:1]([H:2])([H:3])([H:4])[H:5]", 0, 1),
}


def _conformers(positions, m: int) -> np.ndarray:
    return np.asarray(positions, float)[None] + RNG.normal(0, 0.02, size=(m, len(positions), 3))


def _convert(tmp_path, source, fmt: str, *extra) -> list:
    out = tmp_path / f"shards-{fmt}"
    assert main(["data", "convert", str(source), str(out), "--format", fmt, *extra]) == 0
    manifest = load_manifest(out)
    return [s for split in manifest.splits for s in iter_samples(manifest, split)], manifest


def _by_source(samples) -> dict:
    return {s.source: s for s in samples}


def test_spice_hartree_and_bohr_become_ev_and_angstrom_and_the_smiles_gives_the_charge(tmp_path, capsys):
    path, expected = tmp_path / "SPICE-2.hdf5", {}
    with h5py.File(path, "w") as f:
        for name, (numbers, positions, smiles, charge, multiplicity) in MOLECULES.items():
            g = f.create_group(name)
            g.create_dataset("subset", data=["SPICE PubChem Set 1 Single Points Dataset v1.3"], dtype=h5py.string_dtype())
            g.create_dataset("smiles", data=[smiles], dtype=h5py.string_dtype())
            g.create_dataset("atomic_numbers", data=np.array(numbers, np.int16))
            xyz = _conformers(positions, 3)
            g.create_dataset("conformations", data=(xyz / BOHR_TO_ANGSTROM).astype(np.float32)).attrs["units"] = "bohr"
            energy = -40.0 * len(numbers) + RNG.normal(0, 0.01, 3)
            g.create_dataset("dft_total_energy", data=energy.astype(np.float64)).attrs["units"] = "hartree"
            gradient = RNG.normal(0, 0.02, size=xyz.shape).astype(np.float32)
            g.create_dataset("dft_total_gradient", data=gradient).attrs["units"] = "hartree/bohr"
            g.create_dataset("formation_energy", data=energy - 1.0)
            for i in range(3):
                expected[f"{path}:{name}[{i}]"] = (energy[i] * HARTREE_TO_EV,
                                                   -gradient[i].astype(float) * HARTREE_TO_EV / BOHR_TO_ANGSTROM,
                                                   (xyz / BOHR_TO_ANGSTROM).astype(np.float32)[i].astype(float)
                                                   * BOHR_TO_ANGSTROM,
                                                   charge, multiplicity)
    samples, manifest = _convert(tmp_path, path, "spice")
    assert "charges -1, +0, +1" in capsys.readouterr().out
    assert len(samples) == 12 and manifest.fidelities() == ["wb97md3bj_def2tzvppd"]
    assert manifest.data["levels_of_theory"]["wb97md3bj_def2tzvppd"]["basis"] == "def2-TZVPPD"
    for source, sample in _by_source(samples).items():
        energy, forces, positions, charge, multiplicity = expected[source]
        assert sample.energies["wb97md3bj_def2tzvppd"] == pytest.approx(energy, rel=1e-12)
        np.testing.assert_allclose(sample.forces["wb97md3bj_def2tzvppd"], forces, rtol=1e-6)
        np.testing.assert_allclose(sample.positions, positions, rtol=1e-12)
        assert sample.state == (charge, multiplicity)
    assert manifest.counts()["charges"] == {"-1": 3, "0": 6, "1": 3}


def test_qm7x_ev_and_angstrom_are_kept_and_each_molecule_stays_in_one_split(tmp_path):
    path, expected = tmp_path / "1000.hdf5", {}
    with h5py.File(path, "w") as f:
        for mol_id, name in enumerate(["water", "methane", "water", "methane"], start=1):
            numbers, positions, *_ = MOLECULES[name]
            g = f.create_group(str(mol_id))
            for conf in ["opt", "d1", "d2"]:
                label = f"Geom-m{mol_id}-i1-c1-{conf}"
                c = g.create_group(label)
                xyz = _conformers(positions, 1)[0]
                energy = np.array([-1000.0 * len(numbers) + RNG.normal()])
                forces = RNG.normal(0, 0.5, size=xyz.shape)
                c.create_dataset("atNUM", data=np.array(numbers, np.int64))
                c.create_dataset("atXYZ", data=xyz)
                c.create_dataset("ePBE0+MBD", data=energy)
                c.create_dataset("eAT", data=energy / 10)
                c.create_dataset("totFOR", data=forces)
                c.create_dataset("pbe0FOR", data=forces * 0.9)
                expected[f"{path}:{mol_id}/{label}"] = (energy[0], forces, xyz)
    samples, manifest = _convert(tmp_path, path, "qm7x")
    assert len(samples) == 12 and manifest.fidelities() == ["pbe0mbd_fhiaims"]
    for source, sample in _by_source(samples).items():
        energy, forces, positions = expected[source]
        assert sample.energies["pbe0mbd_fhiaims"] == energy
        np.testing.assert_array_equal(sample.forces["pbe0mbd_fhiaims"], forces)
        np.testing.assert_array_equal(sample.positions, positions)
        assert sample.state == (0, 1)
    split_of = {}
    for split in manifest.splits:
        for s in iter_samples(manifest, split):
            assert split_of.setdefault(s.molecule, split) == split


def _t1x_reaction(group, numbers, positions, m: int, expected: dict, where: str) -> None:
    def fill(g, k):
        xyz = _conformers(positions, k).astype(np.float32)
        energy = -2000.0 + RNG.normal(0, 0.1, k)
        forces = RNG.normal(0, 1, size=xyz.shape).astype(np.float32)
        g.create_dataset("atomic_numbers", data=np.array(numbers, np.int64))
        g.create_dataset("positions", data=xyz)
        g.create_dataset("wB97x_6-31G(d).energy", data=energy)
        g.create_dataset("wB97x_6-31G(d).atomization_energy", data=energy + 100)
        g.create_dataset("wB97x_6-31G(d).forces", data=forces)
        return energy, forces

    energy, forces = fill(group, m)
    for i in range(m):
        expected[f"{where}[{i}]"] = (energy[i], forces[i])
    for part in ("reactant", "product", "transition_state"):
        energy, forces = fill(group.create_group(part), 1)
        expected[f"{where}/{part}[0]"] = (energy[0], forces[0])


def test_transition1x_keeps_its_published_split_and_its_ev(tmp_path):
    path, expected, split_of = tmp_path / "transition1x.h5", {}, {}
    with h5py.File(path, "w") as f:
        for split, formulas in {"train": ["C2H6", "CH4", "C2H6O"], "val": ["H2O"], "test": ["NH3"]}.items():
            for formula in formulas:
                numbers, positions, *_ = MOLECULES["methane" if "C" in formula else "water"]
                for rxn in ("rxn0001", "rxn0002"):
                    g = f.create_group(f"{split}/{formula}/{rxn}")
                    _t1x_reaction(g, numbers, positions, 4, expected, f"{path}:{split}/{formula}/{rxn}")
                split_of[f"{split}/{formula}"] = split
    samples, manifest = _convert(tmp_path, path, "t1x")
    # every path image, reactant and product (the transition state is one of the images, as the
    # official loader yields them)
    assert len(samples) == 5 * 2 * (4 + 2) and manifest.fidelities() == ["wb97x_631gs"]
    for split in manifest.splits:
        for s in iter_samples(manifest, split):
            energy, forces = expected[s.source]
            assert s.energies["wb97x_631gs"] == energy and s.state == (0, 1)
            np.testing.assert_array_equal(s.forces["wb97x_631gs"], forces.astype(float))
            assert split_of[s.molecule] == split


# --- OMol25 --------------------------------------------------------------------------------------


def _omol25_atoms():
    """Structures as OMol25 rows hold them: eV, Å, charge and spin (multiplicity) in `data`."""
    import ase

    rows = []
    for name, charge, spin in [("water", 0, 1), ("ammonium", 1, 1), ("hydroxide", -1, 1), ("hydroxide", 0, 2),
                               ("methane", 1, 2), ("water", 0, 1)]:
        numbers, positions, *_ = MOLECULES[name]
        atoms = ase.Atoms(numbers=numbers, positions=_conformers(positions, 1)[0])
        energy, forces = -500.0 * len(numbers) + RNG.normal(), RNG.normal(0, 0.3, size=(len(numbers), 3))
        rows.append((atoms, energy, forces, {"charge": charge, "spin": spin, "source": f"omol/{name}",
                                             "num_atoms": len(numbers)}))
    return rows


def _check_omol25(samples, rows) -> None:
    assert len(samples) == len(rows)
    by_energy = {round(s.energies["wb97mv_def2tzvpd"], 9): s for s in samples}
    for atoms, energy, forces, data in rows:
        s = by_energy[round(energy, 9)]
        np.testing.assert_allclose(s.forces["wb97mv_def2tzvpd"], forces, rtol=1e-12)
        np.testing.assert_allclose(s.positions, atoms.positions, rtol=1e-12)
        assert s.state == (data["charge"], data["spin"])


def test_omol25_written_by_the_published_aselmdb_backend(tmp_path):
    pytest.importorskip("ase_db_backends", reason="ase-db-backends (the aselmdb backend fairchem publishes)")
    import ase.db
    from ase.calculators.singlepoint import SinglePointCalculator

    rows = _omol25_atoms()
    path = tmp_path / "train_omol.aselmdb"
    with ase.db.connect(str(path)) as db:
        for atoms, energy, forces, data in rows:
            atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces)
            db.write(atoms, data=data)
    samples, manifest = _convert(tmp_path, path, "omol25")
    _check_omol25(samples, rows)
    assert manifest.fidelities() == ["wb97mv_def2tzvpd"] and manifest.states() == ([-1, 0, 1], [1, 2])


def test_omol25_read_with_lmdb_from_the_documented_layout_streams_and_skips_deleted_rows(tmp_path):
    import lmdb
    from ase.io.jsonio import encode

    rows = _omol25_atoms()
    folder = tmp_path / "omol25"
    folder.mkdir()

    def put(txn, key: str, value) -> None:
        txn.put(key.encode("ascii"), zlib.compress(encode(value).encode("utf-8")))

    for part, chunk in enumerate((rows[:3], rows[3:])):  # a folder of files, as OMol25's splits come
        env = lmdb.open(str(folder / f"data{part:04d}.aselmdb"), subdir=False, map_size=2**24)
        with env.begin(write=True) as txn:
            for k, (atoms, energy, forces, data) in enumerate(chunk, start=1):
                put(txn, str(k), {"numbers": atoms.numbers, "positions": atoms.positions, "cell": np.zeros((3, 3)),
                                  "pbc": np.zeros(3, bool), "energy": energy, "forces": forces, "ctime": 1.0,
                                  "mtime": 1.0, "user": "test", "unique_id": f"u{k}", "key_value_pairs": {},
                                  "data": data})
            put(txn, str(len(chunk) + 1), {"numbers": [1], "positions": [[0, 0, 0]], "energy": 1.0, "data": {}})
            put(txn, "deleted_ids", [len(chunk) + 1])  # a deleted row: not a structure
            put(txn, "nextid", len(chunk) + 2)
            put(txn, "metadata", {})
        env.close()
    from foundation.pipelines.convert.omol25 import count_rows, iter_samples as omol_samples

    assert count_rows(folder) == 8  # from LMDB's counts, deleted rows included
    stream = omol_samples(folder)
    first = next(stream)  # one row read, not the file
    assert first.source == f"{folder / 'data0000.aselmdb'}:1"
    stream.close()  # closes the file (LMDB opens a file once per process)
    samples, manifest = _convert(tmp_path, folder, "omol25")
    _check_omol25(samples, rows)
    assert manifest.counts()["multiplicities"] == {"1": 4, "2": 2}


def test_published_formats_refuse_units_and_keys_they_define_themselves(tmp_path, capsys):
    (tmp_path / "x.hdf5").write_bytes(b"")
    assert main(["data", "convert", str(tmp_path / "x.hdf5"), str(tmp_path / "o"), "--format", "spice",
                 "--energy-unit", "hartree"]) == 2
    assert "--format spice has the units its publishers documented" in capsys.readouterr().err


def test_interleaving_holds_a_bounded_number_of_groups():
    from foundation.data.sample import Sample
    from foundation.pipelines.convert.grouped import interleaved

    read = []

    def read_group(name):
        read.append(name)
        numbers, positions, *_ = MOLECULES["water"]
        return [Sample(numbers, positions, {"x": -1.0}, molecule=name) for _ in range(5)]

    stream = interleaved([f"g{k}" for k in range(100)], read_group, seed=0, interleave=4)
    next(stream)
    assert len(read) == 4  # streaming: four groups in memory, not the file
    assert len(list(stream)) == 499 and len(read) == 100


def test_ase_files_are_converted_in_their_declared_units_and_refused_when_undeclared(tmp_path, molecules_xyz, capsys):
    path, samples = molecules_xyz(n_molecules=4, n_conformers=2, unit="hartree", forces_key=None)
    out = tmp_path / "shards"
    args = ["data", "convert", str(path), str(out), "--energy-key", "REF_energy", "--fidelity", "dft"]
    assert main(args) == 2
    assert "energies under key 'REF_energy' look like hartree" in capsys.readouterr().err
    assert main([*args, "--energy-unit", "hartree"]) == 0
    manifest = load_manifest(out)
    got = sorted(s.energies["dft"] for split in manifest.splits for s in iter_samples(manifest, split))
    assert got == pytest.approx(sorted(s.energies["dft"] for s in samples), rel=1e-12)
    assert manifest.data["source"]["energy_unit"] == "hartree"
