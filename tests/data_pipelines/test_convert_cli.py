"""extxyz → shards, and the `foundation data convert` / `foundation data inspect` commands."""

import json

import h5py

import numpy as np
import pytest
from ase.build import molecule

from foundation.cli.main import main
from foundation.data.ase_io import write_extxyz
from foundation.data.sample import Sample
from foundation.data.shards.manifest import load_manifest
from foundation.data.shards.reader import iter_samples
from foundation.data.stream import ShardStream
from foundation.pipelines.convert.ase_files import convert_ase

MOLECULES = ["CH4", "H2O", "NH3", "C2H6", "CH3OH", "HCN", "C2H2", "H2CO", "CH3CH2OH", "N2H4"]


def make_extxyz(path, n_conformers=3, seed=0):
    rng = np.random.default_rng(seed)
    samples = []
    for name in MOLECULES:
        atoms = molecule(name)
        for c in range(n_conformers):
            positions = atoms.positions + rng.normal(0, 0.02, atoms.positions.shape)
            samples.append(Sample(numbers=atoms.numbers, positions=positions,
                                  energies={"x": -100.0 * len(atoms) + rng.normal()},
                                  forces={"x": rng.normal(0, 0.3, positions.shape)}))
    write_extxyz(path, samples, energy_key="E_dft", forces_key="F_dft", fidelity="x")
    return samples


def make_ani_h5(path, seed=0):
    """A small file in the released ANI layout (Hartree labels, NaN where CC was not computed)."""
    rng = np.random.default_rng(seed)
    with h5py.File(path, "w") as f:
        for name in MOLECULES:
            atoms, n = molecule(name), 5
            g = f.create_group(name)
            g["atomic_numbers"] = atoms.numbers.astype(np.uint8)
            g["coordinates"] = (atoms.positions + rng.normal(0, 0.02, (n, len(atoms), 3))).astype(np.float32)
            g["wb97x_dz.energy"] = -40.0 - rng.random(n)
            g["wb97x_dz.forces"] = rng.normal(0, 0.02, (n, len(atoms), 3)).astype(np.float32)
            g["ccsd(t)_cbs.energy"] = np.where(rng.random(n) < 0.5, np.nan, -40.0)


def test_extxyz_to_shards_keeps_labels_and_splits_by_molecule(tmp_path):
    written = make_extxyz(tmp_path / "mine.xyz")
    path = convert_ase(tmp_path / "mine.xyz", tmp_path / "shards", energy_key="E_dft", forces_key="F_dft",
                       fidelity="wb97x_631gs", level={"method": "wB97X", "basis": "6-31G*"}, seed=0)
    manifest = load_manifest(path)
    assert manifest.data["levels_of_theory"] == {"wb97x_631gs": {"method": "wB97X", "basis": "6-31G*"}}
    by_split = {sp: list(iter_samples(manifest, sp)) for sp in manifest.splits}
    assert sum(len(v) for v in by_split.values()) == len(written)
    molecules = {sp: {s.molecule for s in v} for sp, v in by_split.items()}
    assert sum(len(m) for m in molecules.values()) == len(MOLECULES)  # no molecule in two splits
    for s in (s for v in by_split.values() for s in v):
        w = written[int(s.source.rsplit(":", 1)[1])]
        assert s.energies == {"wb97x_631gs": pytest.approx(w.energies["x"], abs=1e-6)}
        np.testing.assert_allclose(s.forces["wb97x_631gs"], w.forces["x"], atol=1e-6)
    batch = next(iter(ShardStream(manifest, max_atoms=30)))
    assert batch.energy_mask["wb97x_631gs"].all() and batch.n_atoms <= 30


@pytest.mark.integration  # the commands as child processes
def test_cli_converts_ani_h5_and_inspect_reports_and_plots(tmp_path, capsys):
    make_ani_h5(tmp_path / "ani.h5")
    code = main(["data", "convert", str(tmp_path / "ani.h5"), str(tmp_path / "out"), "--key-map",
                 "wb97x_dz.energy=wb97x_631gs", "wb97x_dz.forces=wb97x_631gs",
                 "ccsd(t)_cbs.energy=ccsdt_ccpvdz", "--split", "train=0.7,val=0.3", "--seed", "3"])
    assert code == 0
    out = capsys.readouterr().out
    assert "train:" in out and "val:" in out and "test:" not in out
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["generator"]["command"].startswith("foundation data convert")
    assert "--seed 3" in manifest["generator"]["command"]

    code = main(["data", "inspect", str(tmp_path / "out"), "--png", str(tmp_path / "hist.png"), "--verify"])
    assert code == 0
    out = capsys.readouterr().out
    assert "elements: H C N O" in out and "sha256 verified for" in out
    assert "ccsdt_ccpvdz energy" in out and "wb97x_631gs force" in out
    assert (tmp_path / "hist.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_converts_extxyz(tmp_path, capsys):
    make_extxyz(tmp_path / "mine.xyz")
    assert main(["data", "convert", str(tmp_path / "mine.xyz"), str(tmp_path / "out"), "--energy-key", "E_dft",
                 "--forces-key", "F_dft", "--fidelity", "ccsdt_ccpvdz", "--program", "pyscf"]) == 0
    assert load_manifest(tmp_path / "out").data["levels_of_theory"] == {"ccsdt_ccpvdz": {"program": "pyscf"}}


@pytest.mark.parametrize("args, message", [
    (["--energy-key", "nope", "--fidelity", "x"], "no energy key 'nope'"),
    (["--fidelity", "x"], "--energy-key and --fidelity are required"),
    (["--energy-key", "E_dft", "--fidelity", "x", "--split", "train=0.5"], "sum to 1"),
])
def test_cli_errors_are_one_line(tmp_path, capsys, args, message):
    make_extxyz(tmp_path / "mine.xyz")
    assert main(["data", "convert", str(tmp_path / "mine.xyz"), str(tmp_path / "out"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_cli_refuses_a_folder_with_shards(tmp_path, capsys):
    make_extxyz(tmp_path / "mine.xyz")
    args = ["data", "convert", str(tmp_path / "mine.xyz"), str(tmp_path / "out"), "--energy-key", "E_dft",
            "--fidelity", "x"]
    assert main(args) == 0
    assert main(args) == 2
    assert "already holds shards" in capsys.readouterr().err
