"""Property-based tests (hypothesis) of the readers and the collate: random molecules and
periodic cells, random subsets of labels at several fidelities, random damage to shards."""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import msgpack
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from foundation.data.ase_io import read_samples, write_extxyz
from foundation.data.batch import collate
from foundation.data.sample import Sample
from foundation.data.shards.reader import iter_shard_records
from foundation.data.shards.record import decode_record, encode_sample, record_to_sample
from foundation.data.shards.writer import write_shards
from foundation.errors import DataError

FIDELITIES = ["ccsdt_ccpvdz", "dft_b", "wb97x_631gs"]
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# allow_subnormal=False: a library built with -ffast-math may have switched subnormals off process-wide
finite = st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False, allow_subnormal=False, width=64)


@st.composite
def samples(draw, elements=(1, 6, 7, 8), max_atoms=10):
    """A structure that can be trained on: atoms on a jittered 1 Å grid (never closer than
    0.6 Å), an empty or a random cell with random periodicity, labels at a random subset of
    fidelities (energies and forces independently: any label may be missing)."""
    n = draw(st.integers(1, max_atoms))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    sites = rng.choice(64, size=n, replace=False)
    grid = np.stack([sites // 16, (sites // 4) % 4, sites % 4], axis=1).astype(float)
    positions = grid + rng.uniform(-0.2, 0.2, (n, 3))
    pbc = np.array(draw(st.lists(st.booleans(), min_size=3, max_size=3)))
    if pbc.any() or draw(st.booleans()):
        cell = np.diag(rng.uniform(4.5, 9.0, 3)) + rng.uniform(-0.5, 0.5, (3, 3)) * (1 - np.eye(3))
    else:
        cell = np.zeros((3, 3))
    with_energy = draw(st.sets(st.sampled_from(FIDELITIES)))
    with_forces = draw(st.sets(st.sampled_from(FIDELITIES)))
    return Sample(numbers=rng.choice(elements, n), positions=positions, cell=cell, pbc=pbc,
                  energies={f: draw(finite) for f in sorted(with_energy)},
                  forces={f: rng.normal(0, 2, (n, 3)) for f in sorted(with_forces)},
                  molecule=draw(st.text(max_size=12)), source=draw(st.text(max_size=20)))


def _same(a: Sample, b: Sample) -> None:
    np.testing.assert_array_equal(a.numbers, b.numbers)
    np.testing.assert_array_equal(a.positions, b.positions)
    np.testing.assert_array_equal(a.cell, b.cell)
    np.testing.assert_array_equal(a.pbc, b.pbc)
    assert a.energies == b.energies and a.forces.keys() == b.forces.keys()
    for f in a.forces:
        np.testing.assert_array_equal(a.forces[f], b.forces[f])
    assert (a.molecule, a.source) == (b.molecule, b.source)


@FAST
@given(samples(elements=tuple(range(1, 119))))
def test_a_record_round_trips_exactly_with_missing_labels(sample):
    _same(sample, record_to_sample(decode_record(encode_sample(sample), "x.tar:0"), "x.tar:0").validate())


@FAST
@given(st.binary(max_size=300))
def test_decoding_arbitrary_bytes_raises_only_a_data_error_naming_the_record(data):
    try:
        record = decode_record(data, "x.tar:000000007")
        record_to_sample(record, "x.tar:000000007")
    except DataError as e:
        assert str(e).startswith("x.tar:000000007: ") and "\n" not in str(e)


plain = st.recursive(st.none() | st.booleans() | st.integers(-5, 5) | finite | st.text(max_size=5)
                     | st.binary(max_size=48), lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)


@FAST
@given(samples(), st.dictionaries(st.sampled_from(["numbers", "positions", "cell", "pbc", "energies", "forces",
                                                   "molecule", "source"]), plain, min_size=1))
def test_a_record_with_malformed_fields_raises_only_a_data_error(sample, replaced):
    record = {**decode_record(encode_sample(sample), "x.tar:1"), **replaced}
    try:
        record_to_sample(decode_record(msgpack.packb(record, use_bin_type=True), "x.tar:1"), "x.tar:1").validate()
    except DataError as e:
        assert "\n" not in str(e)


@FAST
@given(st.lists(samples(), min_size=1, max_size=5),
       st.one_of(st.none(), st.lists(st.sampled_from(FIDELITIES), unique=True)),
       st.sampled_from([torch.float32, torch.float64]))
def test_collate_is_flat_and_masks_exactly_the_missing_labels(structures, fidelities, dtype):
    batch = collate(structures, fidelities, dtype=dtype)
    counts = [s.n_atoms for s in structures]
    expected_fids = sorted(set().union(*(s.fidelities for s in structures))) if fidelities is None else fidelities
    assert list(batch.energy) == list(expected_fids) == list(batch.forces)
    assert batch.n_structures == len(structures) and batch.n_atoms == sum(counts)
    assert batch.n_atoms_per_structure.tolist() == counts
    assert batch.batch.tolist() == [b for b, c in enumerate(counts) for _ in range(c)]
    assert torch.equal(batch.numbers, torch.from_numpy(np.concatenate([s.numbers for s in structures])))
    assert batch.positions.dtype == batch.cell.dtype == dtype
    positions = np.concatenate([s.positions for s in structures])
    torch.testing.assert_close(batch.positions, torch.from_numpy(positions).to(dtype))
    assert batch.pbc.tolist() == [s.pbc.tolist() for s in structures]
    start = np.cumsum([0, *counts])
    for fid in expected_fids:
        assert batch.energy[fid].dtype == torch.float64  # molecular energies need float64
        for b, s in enumerate(structures):
            assert bool(batch.energy_mask[fid][b]) == (fid in s.energies)
            assert batch.energy[fid][b].item() == s.energies.get(fid, 0.0)  # exact, zero where masked
            assert bool(batch.forces_mask[fid][b]) == (fid in s.forces)
            rows = batch.forces[fid][start[b]:start[b + 1]]
            want = s.forces[fid] if fid in s.forces else np.zeros((s.n_atoms, 3))
            torch.testing.assert_close(rows, torch.from_numpy(want).to(dtype))
    assert batch.source == [s.source for s in structures]
    moved = batch.to("cpu", torch.float64)
    assert all(e.dtype == torch.float64 for e in moved.energy.values())


@SLOW
@given(st.lists(samples(), min_size=1, max_size=6), st.data())
def test_extxyz_round_trip_and_missing_labels_are_named_or_skipped(structures, data):
    """One fidelity's labels through an extxyz file; structures without them are named by index
    (on_error=raise) or left out and listed (skip)."""
    fid = "wb97x_631gs"
    unlabelled = {i for i, s in enumerate(structures) if fid not in s.energies}
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        # Random energies may look like hartree (-42 eV on one N atom does); the unit is declared, as a user would.
        warnings.simplefilter("ignore")
        path = Path(tmp) / "mine.xyz"
        write_extxyz(path, structures, energy_key="E", forces_key="F", fidelity=fid)
        if unlabelled:
            with pytest.raises(DataError, match=rf"mine.xyz:{min(unlabelled)}: structure has no energy key 'E'"):
                read_samples(path, "E", fidelity=fid, energy_unit="eV")
        if len(unlabelled) == len(structures):
            return
        skipped: list[str] = []
        got = read_samples(path, "E", fidelity=fid, on_error="skip", skipped=skipped, energy_unit="eV")
    assert [m.split(": ")[0] for m in skipped] == [f"{path}:{i}" for i in sorted(unlabelled)]
    kept = [s for i, s in enumerate(structures) if i not in unlabelled]
    assert [g.source for g in got] == [f"{path}:{i}" for i in range(len(structures)) if i not in unlabelled]
    for want, g in zip(kept, got):
        np.testing.assert_array_equal(g.numbers, want.numbers)
        np.testing.assert_allclose(g.positions, want.positions, atol=1e-7)
        np.testing.assert_allclose(g.cell, want.cell, atol=1e-7)
        np.testing.assert_array_equal(g.pbc, want.pbc)
        assert g.energies == pytest.approx({fid: want.energies[fid]}, rel=1e-12, abs=1e-9)


@pytest.fixture(scope="module")
def shard_bytes():
    with tempfile.TemporaryDirectory() as tmp:
        (info,) = write_shards([s for s in _valid_samples(12)], tmp, "train")
        return (Path(tmp) / info.name).read_bytes(), info.n_samples


def _valid_samples(n):
    rng = np.random.default_rng(0)
    for i in range(n):
        k = 3 + i % 5
        yield Sample(numbers=rng.choice([1, 6, 8], k), positions=np.arange(k)[:, None] * [1.1, 0, 0],
                     energies={"dft": -100.0 * k}, forces={"dft": rng.normal(size=(k, 3))}, source=f"s{i}")


@FAST
@given(st.data())
def test_a_damaged_shard_reads_whole_or_raises_one_data_error_naming_it(shard_bytes, data):
    raw, n = shard_bytes
    damaged = bytearray(raw)
    how = data.draw(st.sampled_from(["truncate", "flip", "splice"]))
    if how == "truncate":
        damaged = damaged[: data.draw(st.integers(0, len(raw) - 1))]
    elif how == "flip":
        for at in data.draw(st.lists(st.integers(0, len(raw) - 1), min_size=1, max_size=8)):
            damaged[at] ^= data.draw(st.integers(1, 255))
    else:
        at = data.draw(st.integers(0, len(raw) - 1))
        damaged[at:at] = data.draw(st.binary(min_size=1, max_size=600))
    with tempfile.TemporaryDirectory() as tmp:
        url = str(Path(tmp) / "train-000000.tar")
        Path(url).write_bytes(bytes(damaged))
        try:
            for where, record in iter_shard_records(url, expected=n):
                record_to_sample(record, where)
        except DataError as e:
            assert str(e).startswith(f"{url}") and "\n" not in str(e)
