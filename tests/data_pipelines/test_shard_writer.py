"""Shard writer and manifest: bounded shards, exact round trip, atomic writes, hashes."""

import hashlib
import json
import tarfile

import numpy as np
import pytest

from foundation.data.sample import Sample
from foundation.data.shards.manifest import load_manifest, verify_shards, write_manifest
from foundation.data.shards.reader import iter_samples
from foundation.data.shards.writer import write_shards
from foundation.errors import DataError
from foundation.pipelines.synthetic import CC, DFT, synthetic_samples

LEVELS = {DFT: {"method": "wB97X", "basis": "6-31G*", "program": "pyscf"}}


def _write(tmp_path, n=50, **kw):
    shards = write_shards(synthetic_samples(n), tmp_path, "train", **kw)
    write_manifest(tmp_path, shards, LEVELS, command="make test data")
    return shards


def test_shards_are_bounded_named_and_leave_no_temp_files(tmp_path):
    shards = _write(tmp_path, 200, max_shard_bytes=64 * 1024)
    assert len(shards) > 2
    assert [s.name for s in shards] == [f"train-{i:06d}.tar" for i in range(len(shards))]
    for s in shards:
        assert (tmp_path / s.name).stat().st_size == s.bytes <= 64 * 1024
    assert sum(s.n_samples for s in shards) == 200
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    shards = write_shards(synthetic_samples(20), tmp_path / "b", "val", max_samples_per_shard=6)
    assert [s.n_samples for s in shards] == [6, 6, 6, 2]


def test_one_msgpack_member_per_sample(tmp_path):
    _write(tmp_path, 5)
    with tarfile.open(tmp_path / "train-000000.tar") as tar:
        assert tar.getnames() == [f"{i:09d}.msgpack" for i in range(5)]


def test_round_trip_is_exact(tmp_path):
    original = list(synthetic_samples(30))
    periodic = Sample(numbers=[1, 8], positions=[[0, 0, 0], [0, 0, 0.97]], energies={DFT: -2075.5},
                      cell=np.eye(3) * 5, pbc=[True, True, False], molecule="OH", source="x.xyz:7")
    shards = write_shards(original + [periodic], tmp_path, "train", max_samples_per_shard=7)
    write_manifest(tmp_path, shards)
    back = list(iter_samples(load_manifest(tmp_path), "train"))
    assert len(back) == 31
    for a, b in zip(original + [periodic], back):
        assert np.array_equal(a.numbers, b.numbers) and np.array_equal(a.positions, b.positions)
        assert a.energies == b.energies and a.molecule == b.molecule and a.source == b.source
        assert a.forces.keys() == b.forces.keys()
        assert all(np.array_equal(a.forces[k], b.forces[k]) for k in a.forces)
        assert np.array_equal(a.cell, b.cell) and np.array_equal(a.pbc, b.pbc)


def test_same_samples_give_identical_shards(tmp_path):
    a = write_shards(synthetic_samples(40), tmp_path / "a", "train", max_samples_per_shard=10)
    b = write_shards(synthetic_samples(40), tmp_path / "b", "train", max_samples_per_shard=10)
    assert [s.sha256 for s in a] == [s.sha256 for s in b]


def test_manifest_records_counts_levels_generator_and_hashes(tmp_path):
    shards = write_shards(synthetic_samples(50, cc_every=5), tmp_path, "train", max_samples_per_shard=20)
    shards += write_shards(synthetic_samples(10, seed=1, cc_every=None), tmp_path, "val")
    path = write_manifest(tmp_path, shards, LEVELS, command=["foundation", "data", "convert", "x"])
    m = load_manifest(tmp_path)
    assert m.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert load_manifest(path).sha256 == m.sha256  # the file itself works as well as its folder
    data = json.loads(path.read_text())
    for entry in data["shards"]:
        assert entry["sha256"] == hashlib.sha256((tmp_path / entry["name"]).read_bytes()).hexdigest()
        assert {"name", "n_samples", "bytes", "split"} <= entry.keys()
    assert m.counts("train")["n_samples"] == 50 and m.counts("val")["n_samples"] == 10
    assert m.counts("train")["fidelities"] == {CC: {"energy": 10, "forces": 0}, DFT: {"energy": 50, "forces": 50}}
    assert m.counts("val")["fidelities"] == {DFT: {"energy": 10, "forces": 10}}
    assert data["fidelities"][DFT] == {"energy": 60, "forces": 60}
    assert m.counts("train")["label_sets"] == {f"{CC}+{DFT}": 10, DFT: 40}
    assert set(m.elements()) <= {1, 6, 7, 8} and m.elements() == sorted(m.elements())
    assert data["levels_of_theory"] == {DFT: LEVELS[DFT], CC: {}}
    assert data["generator"]["command"] == "foundation data convert x"
    assert {"webdataset", "msgpack", "numpy"} <= data["generator"]["versions"].keys()
    assert data["units"]["energy"] == "eV"


def test_verify_shards_names_an_altered_shard(tmp_path):
    _write(tmp_path, 60, max_samples_per_shard=20)
    assert verify_shards(tmp_path) == 3
    shard = tmp_path / "train-000001.tar"
    raw = bytearray(shard.read_bytes())
    raw[600] ^= 0xFF
    shard.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="train-000001.tar"):
        verify_shards(tmp_path)
    shard.unlink()
    with pytest.raises(DataError, match="train-000001.tar: no such file"):
        verify_shards(tmp_path)


def test_failure_mid_write_leaves_only_complete_shards(tmp_path):
    def samples():
        yield from synthetic_samples(25)
        raise RuntimeError("labeller crashed")

    with pytest.raises(RuntimeError):
        write_shards(samples(), tmp_path, "train", max_samples_per_shard=10)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train-000000.tar", "train-000001.tar"]
    for p in tmp_path.iterdir():
        with tarfile.open(p) as tar:
            assert len(tar.getnames()) == 10


def test_invalid_sample_is_refused_by_name(tmp_path):
    bad = Sample(numbers=[1, 1], positions=[[0, 0, 0], [0, 0, 0.1]], energies={DFT: -1.0}, source="mine.xyz:3")
    with pytest.raises(DataError, match="mine.xyz:3"):
        write_shards([bad], tmp_path, "train")


def test_load_manifest_errors_name_the_file(tmp_path):
    with pytest.raises(DataError, match="manifest.json: no such file"):
        load_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(DataError, match="not a JSON manifest"):
        load_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text('{"format": "other"}')
    with pytest.raises(DataError, match="not a Foundation shard manifest"):
        load_manifest(tmp_path)
