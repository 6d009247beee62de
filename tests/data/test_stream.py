"""The streaming loader on real shards: determinism, resume, errors, mixing, http, single pass."""

import functools
import http.server
import itertools
import threading
from collections import Counter

import pytest
import torch

from foundation.data.sources.protocol import BatchStream, DataModule
from foundation.data.shards.manifest import load_manifest, write_manifest
from foundation.data.shards.reader import Reader, epoch_records
from foundation.data.shards.writer import write_shards
from foundation.data.sources.shards import ShardDataConfig
from foundation.data.stream import ShardStream, single_pass
from foundation.errors import DataError, UserError
from foundation.pipelines.synthetic import CC, DFT, synthetic_samples


@pytest.fixture(scope="module")
def shard_dir(tmp_path_factory):
    """120 training samples in 12 shards (every 10th with a CC label), 30 validation samples."""
    out = tmp_path_factory.mktemp("shards")
    shards = write_shards(synthetic_samples(120), out, "train", max_samples_per_shard=10)
    shards += write_shards(synthetic_samples(30, seed=1, atoms=(3, 5)), out, "val", max_samples_per_shard=10)
    write_manifest(out, shards, command="test")
    return out


def _ids(batches):
    return [b.source for b in batches]


def _take(stream, n):
    return list(itertools.islice(iter(stream), n))


def test_batches_respect_the_atom_budget_and_carry_every_fidelity(shard_dir):
    batches = _take(ShardStream(shard_dir, max_atoms=40, seed=0), 30)
    for b in batches:
        assert b.n_atoms <= 40 and b.n_structures >= 3
        assert set(b.energy) == {CC, DFT} and b.energy[DFT].dtype == torch.float64
        assert b.positions.dtype == torch.float32


def test_same_seed_same_batches_and_different_seed_different_order(shard_dir):
    a = _ids(_take(ShardStream(shard_dir, max_atoms=40, seed=3, shuffle_buffer=50), 25))
    b = _ids(_take(ShardStream(shard_dir, max_atoms=40, seed=3, shuffle_buffer=50), 25))
    c = _ids(_take(ShardStream(shard_dir, max_atoms=40, seed=4, shuffle_buffer=50), 25))
    assert a == b and a != c


def test_each_epoch_covers_every_sample_once_in_a_new_order(shard_dir):
    m = load_manifest(shard_dir)
    epochs = [[where for where, _ in epoch_records(m, m.shards("train"), Reader(), seed=0, epoch=e)]
              for e in range(2)]
    assert len(epochs[0]) == len(set(epochs[0])) == 120 and set(epochs[0]) == set(epochs[1])
    shard_order = [list(dict.fromkeys(w.split(":")[0] for w in e)) for e in epochs]
    assert shard_order[0] != shard_order[1]
    # endless: the stream keeps going past the first epoch, each sample once per epoch
    samples = Counter(s for b in _take(ShardStream(shard_dir, max_atoms=40, shuffle_buffer=0), 80)
                      for s in b.source)
    assert len(samples) == 120 and max(samples.values()) - min(samples.values()) <= 1


@pytest.mark.parametrize("num_workers", [0, pytest.param(2, marks=pytest.mark.integration)])  # 2: worker processes
def test_restored_state_gives_the_same_following_batches(shard_dir, num_workers):
    make = functools.partial(ShardStream, shard_dir, max_atoms=40, seed=7, shuffle_buffer=20,
                             num_workers=num_workers, ratios={DFT: 0.7, CC: 0.3})
    stream = make()
    batches = iter(stream)
    for _ in range(37):  # past the end of the CC stream's first epoch
        next(batches)
    state = stream.state_dict()
    expected = _ids(itertools.islice(batches, 12))
    del batches
    resumed = make()
    resumed.load_state_dict(state)
    assert _ids(_take(resumed, 12)) == expected
    assert resumed.batches == 37 + 12
    other_seed = ShardStream(shard_dir, max_atoms=40, seed=8, shuffle_buffer=20, num_workers=num_workers,
                             ratios={DFT: 0.7, CC: 0.3})
    with pytest.raises(UserError, match="seed was 7, now 8"):
        other_seed.load_state_dict(state)


def test_resuming_with_other_settings_is_refused(shard_dir):
    # other ranks or workers re-split the position (test_stream_resplit.py); other batching cannot
    state = ShardStream(shard_dir, max_atoms=40, num_workers=0).state_dict()
    with pytest.raises(UserError, match="max_atoms was 40, now 48"):
        ShardStream(shard_dir, max_atoms=48, num_workers=2).load_state_dict(state)


def test_fidelity_mixing_ratio_is_respected(shard_dir):
    # 12 of 120 samples carry CC (and DFT). Half the draws come from the CC stream, half from the
    # DFT stream, which holds all 120: CC-labelled samples are 0.5 + 0.5 × 12/120 = 0.55 of the draws.
    stream = ShardStream(shard_dir, max_atoms=60, seed=1, ratios={DFT: 0.5, CC: 0.5})
    drawn = [bool(m) for b in _take(stream, 150) for m in b.energy_mask[CC]]
    assert len(drawn) > 1000
    assert 0.50 < sum(drawn) / len(drawn) < 0.60, sum(drawn) / len(drawn)
    rare = ShardStream(shard_dir, max_atoms=60, seed=1, ratios={DFT: 0.9, CC: 0.1})
    drawn = [bool(m) for b in _take(rare, 150) for m in b.energy_mask[CC]]
    assert 0.15 < sum(drawn) / len(drawn) < 0.23, sum(drawn) / len(drawn)  # 0.1 + 0.9 × 0.1 = 0.19
    assert all(b.energy_mask[DFT].all() for b in _take(stream, 5))  # CC samples keep their DFT labels


def test_unknown_fidelity_ratio_is_a_user_error(shard_dir):
    with pytest.raises(UserError, match="ccsdt_cbs"):
        ShardStream(shard_dir, ratios={"ccsdt_cbs": 1.0})


def test_single_pass_is_finite_ordered_and_split_by_rank(shard_dir):
    ids = [s for b in single_pass(shard_dir, "val", max_atoms=20) for s in b.source]
    assert ids == [f"synthetic:{i}" for i in range(30)]
    halves = [[s for b in single_pass(shard_dir, "val", 20, rank=r, world_size=2) for s in b.source]
              for r in (0, 1)]
    assert sorted(halves[0] + halves[1]) == sorted(ids) and not set(halves[0]) & set(halves[1])


@pytest.fixture
def damaged(tmp_path):
    shards = write_shards(synthetic_samples(40), tmp_path, "train", max_samples_per_shard=10)
    write_manifest(tmp_path, shards)
    return tmp_path


@pytest.mark.parametrize("damage", ["truncate", "garble", "fewer samples"])
def test_a_corrupt_or_truncated_shard_is_named(damaged, damage):
    shard = damaged / "train-000002.tar"
    raw = shard.read_bytes()
    if damage == "truncate":
        shard.write_bytes(raw[: len(raw) // 2])
    elif damage == "garble":
        shard.write_bytes(raw[:3000] + b"\x00garbage\xff" * 200 + raw[5000:])
    else:  # a valid tar, cut at a member boundary: only the manifest's count tells
        write_shards(synthetic_samples(4), damaged / "other", "train")
        shard.write_bytes((damaged / "other" / "train-000000.tar").read_bytes())
    with pytest.raises(DataError, match="train-000002.tar"):
        _take(ShardStream(damaged, max_atoms=40, shuffle_buffer=0), 100)


def test_a_bad_shard_is_skipped_and_counted_when_asked(damaged):
    shard = damaged / "train-000001.tar"
    shard.write_bytes(shard.read_bytes()[:2500])
    stream = ShardStream(damaged, max_atoms=40, shuffle_buffer=0, on_error="skip")
    seen = {s for b in _take(stream, 40) for s in b.source}
    assert stream.failed_shards and all(u.endswith("train-000001.tar") for u in stream.failed_shards)
    assert not seen & {f"synthetic:{i}" for i in range(12, 20)}  # the lost part of shard 1
    assert {f"synthetic:{i}" for i in range(20, 40)} <= seen


@pytest.mark.integration  # DataLoader worker processes
def test_too_many_readers_for_the_data_is_a_clear_error(tmp_path):
    write_manifest(tmp_path, write_shards(synthetic_samples(3), tmp_path, "train"))
    with pytest.raises(DataError, match="reader 3 of 4"):
        _take(ShardStream(tmp_path, rank=1, world_size=2, num_workers=2), 5)


@pytest.fixture
def http_url(shard_dir):
    handler = functools.partial(_QuietHandler, directory=str(shard_dir))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.mark.integration  # a local HTTP server
@pytest.mark.parametrize("num_workers", [0, 2])
def test_streams_over_http_like_from_disk(shard_dir, http_url, num_workers):
    local = _ids(_take(ShardStream(shard_dir, max_atoms=40, seed=2, num_workers=num_workers), 15))
    remote = ShardStream(http_url, max_atoms=40, seed=2, num_workers=num_workers)
    assert remote.spec.manifest.sha256 == load_manifest(shard_dir).sha256
    assert _ids(_take(remote, 15)) == local
    with pytest.raises(DataError, match="nothing-here/manifest.json"):
        load_manifest(http_url + "nothing-here")


def test_shard_data_module(shard_dir):
    data = ShardDataConfig(path=str(shard_dir), max_atoms_per_batch=40, fidelity_ratios={DFT: 0.8, CC: 0.2}).build()
    assert isinstance(data, DataModule)
    assert data.fidelities == [CC, DFT] and set(data.elements) <= {1, 6, 7, 8}
    assert data.manifest_hash == load_manifest(shard_dir).sha256
    stream = data.train_stream(seed=0)
    assert isinstance(stream, BatchStream) and next(iter(stream)).n_atoms <= 40
    numbers, energies = data.reference_data(CC)
    assert len(numbers) == len(energies) == 12 and energies.dtype.name == "float64"
    assert sum(b.n_structures for b in data.val_batches()) == 30
    assert list(data.test_batches()) == []
    with pytest.raises(UserError, match="data.path is required"):
        ShardDataConfig()
