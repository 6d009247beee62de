"""ANI-layout HDF5 → shards → stream → batch: units, NaN labels, splits by group."""

import h5py
import numpy as np
import pytest
from ase.build import molecule

from foundation.data.shards.manifest import load_manifest
from foundation.data.shards.reader import iter_samples
from foundation.data.stream import ShardStream
from foundation.errors import DataError, UserError
from foundation.pipelines.convert.ani_h5 import assign_groups, convert_ani_h5, parse_key_map
from foundation.units import HARTREE_TO_EV

DFT, CC = "wb97x_631gs", "ccsdt_ccpvdz"
KEY_MAP = {"wb97x_dz.energy": DFT, "wb97x_dz.forces": DFT, "ccsd(t)_cbs.energy": CC}
FORMULAS = ["CH4", "H2O", "NH3", "C2H6", "CH3OH", "HCN", "C2H2", "H2CO", "CH3CH2OH", "N2H4"]


def make_ani_h5(path, seed=0):
    """The released layout: a group per formula, Hartree labels, NaN where not computed. Returns
    {(group, conformer): (numbers, coordinates, dft energy, dft forces, cc energy or nan)}."""
    rng = np.random.default_rng(seed)
    truth = {}
    with h5py.File(path, "w") as f:
        for i, name in enumerate(FORMULAS):
            atoms = molecule(name)
            n_conf, z = 6 + i, atoms.numbers
            coords = (atoms.positions + rng.normal(0, 0.03, (n_conf, len(z), 3))).astype(np.float32)
            energy = -40.0 - rng.random(n_conf)
            forces = rng.normal(0, 0.02, (n_conf, len(z), 3)).astype(np.float32)
            cc = energy - 0.01
            cc[rng.random(n_conf) < 0.5] = np.nan
            g = f.create_group(name)
            g["atomic_numbers"] = z.astype(np.uint8)
            g["coordinates"] = coords
            g["wb97x_dz.energy"] = energy
            g["wb97x_dz.forces"] = forces
            g["ccsd(t)_cbs.energy"] = cc
            g["hf_dz.energy"] = energy + 1.0  # present in the file, not in the key map: ignored
            for c in range(n_conf):
                truth[(name, c)] = (z, coords[c], energy[c], forces[c], cc[c])
    return truth


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ani")
    truth = make_ani_h5(tmp / "ani.h5")
    manifest = convert_ani_h5(tmp / "ani.h5", tmp / "shards", KEY_MAP, seed=0, max_shard_bytes=48 * 1024,
                              command="test")
    return truth, load_manifest(manifest.parent)


def _key(sample):  # source is "<file>:<group>[<conformer>]"
    group, conformer = sample.source.rsplit(":", 1)[1].rstrip("]").split("[")
    return group, int(conformer)


def test_labels_are_converted_to_ev_and_cc_subset_is_exactly_the_finite_ones(converted):
    truth, manifest = converted
    samples = [s for split in manifest.splits for s in iter_samples(manifest, split)]
    assert sorted(_key(s) for s in samples) == sorted(truth)
    for s in samples:
        z, coords, energy, forces, cc = truth[_key(s)]
        np.testing.assert_array_equal(s.numbers, z)
        np.testing.assert_allclose(s.positions, coords, rtol=0, atol=1e-6)  # Å, unchanged
        assert s.energies[DFT] == pytest.approx(energy * HARTREE_TO_EV, rel=1e-12)
        np.testing.assert_allclose(s.forces[DFT], forces * HARTREE_TO_EV, rtol=1e-6)
        assert (CC in s.energies) == bool(np.isfinite(cc))
        if CC in s.energies:
            assert s.energies[CC] == pytest.approx(cc * HARTREE_TO_EV, rel=1e-12)
    n_cc = sum(np.isfinite(t[4]) for t in truth.values())
    assert sum(manifest.counts(sp)["fidelities"][CC]["energy"] for sp in manifest.splits) == n_cc
    assert manifest.data["levels_of_theory"][DFT]["basis"] == "6-31G(d)"
    assert manifest.data["source"]["key_map"] == KEY_MAP


def test_groups_are_molecules_kept_in_one_split(converted):
    truth, manifest = converted
    groups = {sp: {_key(s)[0] for s in iter_samples(manifest, sp)} for sp in manifest.splits}
    assert set(groups) == {"train", "val", "test"}
    assert not (groups["train"] & groups["val"] or groups["train"] & groups["test"] or groups["val"] & groups["test"])
    assert manifest.counts("train")["n_samples"] > 0.6 * len(truth)
    assert len(manifest.shards("train")) > 1  # bounded shards


def test_streamed_batches_carry_ev_labels_and_cc_masks(converted):
    truth, manifest = converted
    batch = next(iter(ShardStream(manifest, max_atoms=60, seed=0)))
    assert set(batch.energy) == {CC, DFT}
    for i, source in enumerate(batch.source):
        group, c = source.rsplit(":", 1)[1].rstrip("]").split("[")
        _, _, energy, forces, cc = truth[(group, int(c))]
        assert batch.energy[DFT][i].item() == pytest.approx(energy * HARTREE_TO_EV)
        assert batch.energy_mask[CC][i].item() == bool(np.isfinite(cc))
        if not np.isfinite(cc):
            assert batch.energy[CC][i].item() == 0.0
    atoms = batch.batch == 0
    np.testing.assert_allclose(batch.forces[DFT][atoms].numpy(), truth_forces(truth, batch.source[0]), rtol=1e-5)


def truth_forces(truth, source):
    group, c = source.rsplit(":", 1)[1].rstrip("]").split("[")
    return truth[(group, int(c))][3] * HARTREE_TO_EV


def test_shards_mix_molecules(converted):
    _, manifest = converted
    first = list(iter_samples(manifest, "train"))[:20]
    assert len({_key(s)[0] for s in first}) > 2  # not one group after another


def test_assign_groups_follows_conformer_counts_and_seed():
    sizes = {f"g{i}": 10 + i for i in range(40)}
    a = assign_groups(sizes, {"train": 0.8, "val": 0.1, "test": 0.1}, seed=1)
    assert a == assign_groups(sizes, {"train": 0.8, "val": 0.1, "test": 0.1}, seed=1)
    counts = {sp: sum(sizes[g] for g in a if a[g] == sp) for sp in ("train", "val", "test")}
    total = sum(sizes.values())
    assert abs(counts["train"] / total - 0.8) < 0.05 and counts["val"] > 0 and counts["test"] > 0


def test_key_map_and_layout_errors_are_clear(tmp_path):
    make_ani_h5(tmp_path / "ani.h5")
    assert parse_key_map(["wb97x_dz.energy=x"]) == {"wb97x_dz.energy": "x"}
    with pytest.raises(UserError, match="HDF5_KEY=FIDELITY"):
        parse_key_map(["wb97x_dz.energy"])
    with pytest.raises(UserError, match="must end in .energy or .forces"):
        parse_key_map(["wb97x_dz.dipole=x"])
    with pytest.raises(UserError, match="no dataset 'wb97x_tz.energy'"):
        convert_ani_h5(tmp_path / "ani.h5", tmp_path / "out", {"wb97x_tz.energy": DFT})
    (tmp_path / "not.h5").write_text("hello")
    with pytest.raises(DataError, match="not.h5: not a readable HDF5 file"):
        convert_ani_h5(tmp_path / "not.h5", tmp_path / "out2")
    with h5py.File(tmp_path / "bad.h5", "w") as f:
        g = f.create_group("CH4")
        g["atomic_numbers"] = np.array([6, 1], np.uint8)
        g["coordinates"] = np.zeros((2, 5, 3), np.float32)
        g["wb97x_dz.energy"] = np.zeros(2)
    with pytest.raises(DataError, match="bad.h5:CH4: coordinates have shape"):
        convert_ani_h5(tmp_path / "bad.h5", tmp_path / "out3", {"wb97x_dz.energy": DFT}, {"train": 1.0})
    assert not (tmp_path / "out3").exists() or not any((tmp_path / "out3").iterdir())
