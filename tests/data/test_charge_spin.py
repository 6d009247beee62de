"""Charge and spin multiplicity in samples, shard records and manifests (issue 28)."""

from __future__ import annotations

import json

import msgpack
import numpy as np
import pytest

from foundation.data.electrons import check_charge_spin, from_info
from foundation.data.sample import Sample
from foundation.data.shards.manifest import load_manifest, write_manifest
from foundation.data.shards.reader import iter_samples
from foundation.data.shards.record import decode_record, encode_sample, record_to_sample
from foundation.data.shards.writer import write_shards
from foundation.errors import DataError

OH = dict(numbers=[8, 1], positions=[[0, 0, 0], [0.97, 0, 0]], energies={"dft": -2070.0})
WATER = dict(numbers=[8, 1, 1], positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]], energies={"dft": -2080.0})


def test_a_sample_is_a_neutral_singlet_unless_told():
    assert Sample(**WATER).state == (0, 1)
    assert Sample(**OH, charge=-1).validate().state == (-1, 1)
    assert Sample(**OH, multiplicity=2).validate().state == (0, 2)


@pytest.mark.parametrize("charge, multiplicity, why", [(0, 0, "impossible"), (0.5, 2, "not an integer"),
                                                        (10, 1, "leaves -1 electrons")])
def test_charges_and_multiplicities_that_are_no_state_are_refused(charge, multiplicity, why):
    with pytest.raises(DataError, match=f"oh.xyz:3: .*{why}"):
        Sample(**OH, charge=charge, multiplicity=multiplicity, source="oh.xyz:3").validate()


def test_the_parity_is_checked_where_a_state_is_declared_not_for_sources_that_say_nothing():
    Sample(**OH, source="radical, no info").validate()  # a file that says nothing stays readable
    with pytest.raises(DataError, match="9 electrons .* cannot have spin multiplicity 1"):
        check_charge_spin(OH["numbers"], 0, 1, "oh")
    with pytest.raises(DataError, match="cannot have spin multiplicity 2"):
        check_charge_spin(OH["numbers"], -1, 2, "oh")


def test_info_keys_spin_means_multiplicity():
    assert from_info({"charge": 1, "spin": 2}, [7, 1, 1, 1], "x") == (1, 2)  # NH3•+: 9 electrons
    assert from_info({"multiplicity": 3}, [6, 1, 1], "x") == (0, 3)
    assert from_info({}, [6, 1, 1, 1, 1], "x") == (0, 1)
    assert from_info({}, [6, 1, 1, 1], "methyl without keys") == (0, 1)  # says nothing: read as before
    with pytest.raises(DataError, match="x: 9 electrons"):
        from_info({"charge": 0, "spin": 1}, [8, 1], "x")
    assert check_charge_spin([1], 1, 1, "bare proton") == (1, 1)


def test_neutral_singlet_records_are_unchanged_and_others_carry_both_fields():
    neutral = decode_record(encode_sample(Sample(**WATER)), "w")
    assert "charge" not in neutral and "multiplicity" not in neutral  # shards of old data: same bytes
    assert record_to_sample(neutral, "w").state == (0, 1)
    anion = msgpack.unpackb(encode_sample(Sample(**OH, charge=-1)))
    assert (anion["charge"], anion["multiplicity"]) == (-1, 1)
    assert record_to_sample(anion, "a").state == (-1, 1)


def test_manifest_counts_structures_by_charge_and_multiplicity(tmp_path):
    samples = [Sample(**WATER), Sample(**OH, charge=-1), Sample(**OH, multiplicity=2), Sample(**WATER)]
    write_manifest(tmp_path, write_shards(samples, tmp_path, "train"))
    manifest = load_manifest(tmp_path)
    assert manifest.counts()["charges"] == {"-1": 1, "0": 3}
    assert manifest.counts("train")["multiplicities"] == {"1": 3, "2": 1}
    assert manifest.states() == ([-1, 0], [1, 2])
    assert [s.state for s in iter_samples(manifest, "train")] == [(0, 1), (-1, 1), (0, 2), (0, 1)]


def test_a_manifest_written_before_the_fields_existed_holds_neutral_singlets(tmp_path):
    write_manifest(tmp_path, write_shards([Sample(**WATER)] * 3, tmp_path, "train"))
    data = json.loads((tmp_path / "manifest.json").read_text())
    for counts in [data, *data["splits"].values(), *data["shards"]]:
        counts.pop("charges"), counts.pop("multiplicities")
    (tmp_path / "manifest.json").write_text(json.dumps(data))
    manifest = load_manifest(tmp_path)
    assert manifest.states() == ([0], [1]) and manifest.states("train") == ([0], [1])
    assert manifest.counts()["charges"] == {"0": 3}


def test_inspect_prints_the_counts(tmp_path, capsys):
    from foundation.cli.main import main

    write_manifest(tmp_path, write_shards([Sample(**WATER), Sample(**OH, charge=-1)], tmp_path, "train"))
    assert main(["data", "inspect", str(tmp_path)]) == 0
    assert "by charge: -1: 1, 0: 1; by spin multiplicity: 1: 2" in capsys.readouterr().out


def test_positions_of_charged_samples_survive_the_round_trip(tmp_path):
    sample = Sample(**OH, charge=-1)
    back = record_to_sample(decode_record(encode_sample(sample), "x"), "x")
    np.testing.assert_array_equal(back.positions, sample.positions)
