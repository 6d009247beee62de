"""Bad input on the data path: each fault is one line naming the file and the item, and then
either stops the run (`on_error=raise`, the default) or is skipped and counted (`on_error=skip`),
the count reaching the log and metrics.csv. Real files: extxyz written with ASE, webdataset shards
written by our writer (with its validation turned off, as a foreign tool's would be)."""

from __future__ import annotations

import itertools
import logging
import re

import ase.io
import h5py
import numpy as np
import pytest

from foundation.cli.main import main
from foundation.data.ase_io import samples_to_atoms, write_extxyz
from foundation.data.sample import Sample
from foundation.data.shards.manifest import write_manifest
from foundation.data.shards.writer import ShardWriter, write_shards
from foundation.data.sources.shards import ShardDataConfig
from foundation.data.stream import ShardStream, single_pass
from foundation.errors import DataError, UserError
from foundation.pipelines.synthetic import DFT, synthetic_samples
from foundation.train.trainer import Trainer

from tests.conftest import FIDELITY, file_data, metric_rows

BAD = {3: "nan energy", 5: "atoms too close", 7: "missing key", 9: "inf forces"}


def _spoil(sample: Sample, fault: str, fidelity: str) -> Sample:
    if fault == "nan energy":
        sample.energies[fidelity] = float("nan")
    elif fault == "atoms too close":
        sample.positions[1] = sample.positions[0] + [0.1, 0.0, 0.0]
    elif fault == "inf forces":
        sample.forces[fidelity][2, 1] = float("inf")
    return sample


@pytest.fixture
def bad_xyz(tmp_path, make_samples):
    """32 structures; 3, 5, 7 and 9 cannot be trained on (see BAD)."""
    samples = make_samples(8, 4, fidelity=FIDELITY)
    for i, fault in BAD.items():
        _spoil(samples[i], fault, FIDELITY)
    images = samples_to_atoms(samples, energy_key="REF_energy", forces_key="REF_forces", fidelity=FIDELITY)
    del images[7].info["REF_energy"]
    path = tmp_path / "mine.xyz"
    ase.io.write(path, images, format="extxyz")
    return path


def test_a_bad_structure_in_a_file_stops_the_run_naming_file_and_item(bad_xyz):
    with pytest.raises(DataError) as err:
        file_data(bad_xyz).build()
    assert str(err.value) == f"{bad_xyz}:3: energy for fidelity '{FIDELITY}' is nan"


def test_bad_structures_in_a_file_are_skipped_counted_and_logged_when_asked(bad_xyz, tiny_run, caplog):
    config = file_data(bad_xyz, on_error="skip")
    with caplog.at_level(logging.WARNING):
        data = config.build()
    assert data.skipped == 4 and data.summary()["skipped_structures"] == 4
    assert len(data.train) + len(data.val) == 28
    messages = [r.getMessage() for r in caplog.records]
    for i, reason in [(3, "energy for fidelity .* is nan"), (5, "atoms 0.100 Å apart"),
                      (7, "structure has no energy key 'REF_energy'"), (9, "forces for fidelity .* NaN or inf")]:
        assert any(f"{bad_xyz}:{i}: " in m and re.search(reason, m) for m in messages), i
    assert "skipping structure (4 so far)" in messages[-1]
    result = Trainer(tiny_run(data=config, max_steps=3, log_every=3, val_every=3)).train()
    assert metric_rows(result.run_dir)[-1]["skipped_samples"] == "4"


def test_a_file_with_no_usable_structure_is_an_error_even_when_skipping(tmp_path, make_samples):
    samples = [_spoil(s, "nan energy", FIDELITY) for s in make_samples(2, 2, fidelity=FIDELITY)]
    write_extxyz(tmp_path / "all_bad.xyz", samples, energy_key="REF_energy", forces_key="REF_forces")
    with pytest.raises(DataError, match=r"all_bad.xyz: none of its structures can be used \(the first: .*:0: "):
        file_data(tmp_path / "all_bad.xyz", on_error="skip").build()


@pytest.mark.parametrize("name, content", [
    ("picture.xyz", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4),
    ("hdf5.xyz", None),  # an HDF5 file under an extxyz name
    ("other.json", b'{"not": "an ASE database"}'),
    ("empty.xyz", b""),
])
def test_an_unreadable_or_wrong_format_file_is_one_line_naming_it(tmp_path, capsys, name, content):
    path = tmp_path / name
    if content is None:
        with h5py.File(path, "w") as f:
            f["coordinates"] = np.zeros((2, 3, 3))
    else:
        path.write_bytes(content)
    with pytest.raises(DataError, match=rf"^{path}: (cannot read structures|file is empty|file holds no)"):
        file_data(path).build()
    assert main(["train", f"data.path={path}", "data.energy_key=E"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(path) in err and "Traceback" not in err


def test_an_element_the_model_does_not_know_stops_before_training(tmp_path, make_samples, tiny_run):
    h2s = Sample(numbers=[16, 1, 1], positions=[[0, 0, 0.1], [0, 0.96, -0.8], [0, -0.96, -0.8]],
                 energies={FIDELITY: -10865.0}, forces={FIDELITY: np.zeros((3, 3))}, source="h2s")
    write_extxyz(tmp_path / "with_s.xyz", [*make_samples(4, 2, fidelity=FIDELITY), h2s],
                 energy_key="REF_energy", forces_key="REF_forces")
    with pytest.raises(UserError, match=r"model: the data contain elements S that the model does not cover "
                                        r"\(H, C, N, O\)"):
        Trainer(tiny_run(data=file_data(tmp_path / "with_s.xyz", on_error="skip")))


# ---- shards ---------------------------------------------------------------------------------------

def _write_split(out, split, samples, per_shard=10):
    with ShardWriter(out, split, max_samples_per_shard=per_shard, validate=False) as writer:
        for sample in samples:
            writer.write(sample)
    return writer.shards


@pytest.fixture
def bad_shards(tmp_path):
    """40 training samples in 4 shards, of which synthetic:3 (NaN energy), :5 (atoms 0.1 Å apart)
    and :9 (inf forces) cannot be trained on; 10 good validation samples."""
    samples = list(synthetic_samples(40, atoms=(3, 8)))
    for i in (3, 5, 9):
        _spoil(samples[i], BAD[i], DFT)
    shards = _write_split(tmp_path, "train", samples)
    shards += write_shards(synthetic_samples(10, seed=1, atoms=(3, 8)), tmp_path, "val")
    write_manifest(tmp_path, shards)
    return tmp_path


def test_a_bad_sample_in_a_shard_stops_the_stream_naming_shard_key_and_source(bad_shards):
    with pytest.raises(DataError) as err:
        list(single_pass(bad_shards, "train", max_atoms=40))
    assert str(err.value) == (f"{bad_shards / 'train-000000.tar'}:000000003: synthetic:3: energy for fidelity "
                              f"'{DFT}' is nan")
    with pytest.raises(DataError, match=r"train-000000.tar:00000000[359]: synthetic:[359]: "):
        list(itertools.islice(iter(ShardStream(bad_shards, max_atoms=40)), 20))


@pytest.mark.parametrize("num_workers", [0, pytest.param(2, marks=pytest.mark.integration)])  # 2: worker processes
def test_bad_samples_in_shards_are_skipped_and_counted_when_asked(bad_shards, num_workers, caplog):
    stream = ShardStream(bad_shards, max_atoms=40, shuffle_buffer=0, on_error="skip", num_workers=num_workers)
    with caplog.at_level(logging.WARNING):
        seen = {s for b in itertools.islice(iter(stream), 30) for s in b.source}
    assert seen == {f"synthetic:{i}" for i in range(40)} - {"synthetic:3", "synthetic:5", "synthetic:9"}
    assert stream.skipped_samples >= 3  # once per epoch that reached them
    if num_workers == 0:  # worker processes log to their own stderr
        assert any("synthetic:5: atoms 0.100 Å apart" in r.getMessage() for r in caplog.records)
    resumed = ShardStream(bad_shards, max_atoms=40, shuffle_buffer=0, on_error="skip", num_workers=num_workers)
    resumed.load_state_dict(stream.state_dict())
    assert resumed.skipped_samples == stream.skipped_samples  # the count survives a resume


def test_a_split_with_no_usable_sample_is_an_error_even_when_skipping(tmp_path):
    samples = [_spoil(s, "nan energy", DFT) for s in synthetic_samples(12)]
    write_manifest(tmp_path, _write_split(tmp_path, "train", samples))
    with pytest.raises(DataError, match=r"no usable sample in split 'train' \(13 skipped in a row; the last: "):
        list(itertools.islice(iter(ShardStream(tmp_path, on_error="skip")), 5))


@pytest.mark.filterwarnings("ignore:fidelity 'ccsdt_ccpvdz'.*minimum-norm")  # 4 CC labels, random numbers
def test_training_on_shards_skips_and_logs_bad_samples_and_a_truncated_shard(bad_shards, tiny_run):
    shard = bad_shards / "train-000002.tar"
    shard.write_bytes(shard.read_bytes()[:2500])
    with pytest.raises(DataError, match="train-000000.tar:000000003: synthetic:3: energy"):
        Trainer(tiny_run("stops", data=ShardDataConfig(path=str(bad_shards), max_atoms_per_batch=40)))
    skip = ShardDataConfig(path=str(bad_shards), max_atoms_per_batch=40, shuffle_buffer=0, on_error="skip")
    result = Trainer(tiny_run("skips", data=skip, max_steps=12, log_every=12)).train()
    assert result.status == "completed"
    row = metric_rows(result.run_dir)[-1]
    assert int(row["skipped_samples"]) >= 3 and row["skipped_shards"] == "1"


def test_a_shard_whose_sha256_differs_from_the_manifest_is_refused_by_verify(tmp_path, capsys):
    write_manifest(tmp_path, write_shards(synthetic_samples(30), tmp_path, "train", max_samples_per_shard=10))
    shard = tmp_path / "train-000001.tar"
    raw = bytearray(shard.read_bytes())
    raw[1000] ^= 0x01  # one bit inside a sample: a valid tar, the same sample count
    shard.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=r"train-000001.tar: sha256 [0-9a-f]{12}… differs from the manifest's"):
        ShardDataConfig(path=str(tmp_path), verify=True).build()
    assert main(["data", "inspect", str(tmp_path), "--verify"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "train-000001.tar: sha256" in err


def test_converting_skips_and_counts_a_sample_that_cannot_be_trained_on(tmp_path, caplog):
    from ase.build import molecule

    from foundation.pipelines.convert.ani_h5 import convert_ani_h5
    from foundation.data.shards.manifest import load_manifest
    from foundation.data.shards.reader import iter_samples

    methane = molecule("CH4")
    coords = np.stack([methane.positions] * 3)
    coords[1, 1] = coords[1, 0] + [0.05, 0.0, 0.0]  # conformer 1: an H inside the C
    with h5py.File(tmp_path / "ani.h5", "w") as f:
        group = f.create_group("CH4")
        group["atomic_numbers"] = methane.numbers.astype(np.uint8)
        group["coordinates"] = coords.astype(np.float32)
        group["wb97x_dz.energy"] = np.full(3, -40.5)
    with caplog.at_level(logging.WARNING):
        path = convert_ani_h5(tmp_path / "ani.h5", tmp_path / "out", {"wb97x_dz.energy": DFT}, {"train": 1.0})
    manifest = load_manifest(path)
    assert manifest.data["skipped_samples"] == 1 and manifest.counts("train")["n_samples"] == 2
    assert sorted(s.source.rsplit(":", 1)[1] for s in iter_samples(manifest, "train")) == ["CH4[0]", "CH4[2]"]
    assert any("ani.h5:CH4[1]: atoms 0.050 Å apart" in r.getMessage() for r in caplog.records)


def test_a_shard_folder_without_training_samples_is_an_error(tmp_path):
    write_manifest(tmp_path, write_shards(synthetic_samples(5), tmp_path, "val"))
    with pytest.raises(DataError, match=r"no training split 'train' \(splits: val\)"):
        ShardDataConfig(path=str(tmp_path)).build()
