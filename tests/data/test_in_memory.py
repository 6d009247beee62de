from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from foundation.data.ase_io import write_extxyz
from foundation.data.sources.in_memory import FileDataConfig, InMemoryData, InMemoryStream, merge_fidelities
from foundation.data.sources.protocol import BatchStream, DataModule
from foundation.data.sample import Sample
from foundation.errors import DataError, UserError

CONFIG = Path(__file__).parents[2] / "hydra_configs" / "data" / "extxyz.yaml"


def _ids(batch):
    return list(batch.source)


def test_file_config_builds_a_data_module(molecules_xyz):
    path, _ = molecules_xyz(n_molecules=12, n_conformers=4)
    data = FileDataConfig(path=str(path), energy_key="REF_energy", forces_key="REF_forces",
                          fidelity="wb97x_631gs", val_fraction=0.25, test_fraction=0.25, seed=3).build()
    assert isinstance(data, DataModule)
    assert data.fidelities == ["wb97x_631gs"]
    assert data.elements == sorted({int(z) for s in data.train for z in s.numbers})
    train_mols = {s.molecule for s in data.train}
    assert not train_mols & {s.molecule for s in data.val + data.test}
    assert len(data.train) + len(data.val) + len(data.test) == 48
    numbers, energies = data.reference_data("wb97x_631gs")
    assert len(numbers) == len(data.train) and energies.dtype == np.float64
    val = list(data.val_batches())
    assert sum(b.n_structures for b in val) == len(data.val)
    assert all(b.forces_mask["wb97x_631gs"].all() for b in val)


def test_hydra_config_instantiates(molecules_xyz):
    path, _ = molecules_xyz(n_molecules=4, n_conformers=2, energy_key="E", forces_key=None)
    cfg = OmegaConf.load(CONFIG)
    cfg.path, cfg.energy_key = str(path), "E"
    cfg.sources = [{"path": str(path), "energy_key": "E", "fidelity": "other"}]
    config = instantiate(cfg)
    assert isinstance(config, FileDataConfig)
    assert all(type(s).__name__ == "FileSource" for s in config.sources)
    assert config.build().fidelities == ["dft", "other"]


def test_combining_dft_and_cc_files_merges_labels_of_the_same_structures(tmp_path, make_samples):
    samples = make_samples(6, 3)
    write_extxyz(tmp_path / "dft.xyz", samples, energy_key="E_dft", forces_key="F_dft")
    cc = [Sample(s.numbers, s.positions, {"dft": s.energies["dft"] + 0.1}) for s in samples[::2]]
    write_extxyz(tmp_path / "cc.xyz", cc, energy_key="E_cc")
    data = FileDataConfig(sources=[
        {"path": str(tmp_path / "dft.xyz"), "energy_key": "E_dft", "forces_key": "F_dft", "fidelity": "wb97x_631gs"},
        {"path": str(tmp_path / "cc.xyz"), "energy_key": "E_cc", "fidelity": "ccsdt_ccpvdz"},
    ], val_fraction=0.0).build()
    assert data.fidelities == ["ccsdt_ccpvdz", "wb97x_631gs"]
    assert len(data.train) == 18
    both = [s for s in data.train if "ccsdt_ccpvdz" in s.energies]
    assert len(both) == 9 and all("wb97x_631gs" in s.forces for s in both)
    assert len(data.reference_data("ccsdt_ccpvdz")[1]) == 9


def test_merge_keeps_duplicates_of_one_fidelity_apart():
    a = Sample([1, 1], [[0, 0, 0], [0, 0, 0.74]], {"x": 1.0})
    assert len(merge_fidelities([a, a])) == 2


def test_stream_ranks_are_disjoint_and_cover_an_epoch(make_samples):
    samples = make_samples(8, 5)
    for i, s in enumerate(samples):
        s.source = f"s{i}"
    seen = []
    for rank in range(3):
        stream = InMemoryStream(samples, 40, ["dft"], seed=7, rank=rank, world_size=3)
        epoch = []
        while stream.epoch == 0:
            batch = next(stream)
            assert batch.n_atoms <= 40 or batch.n_structures == 1
            if stream.epoch == 0:
                epoch += _ids(batch)
        seen.append(epoch)
    assert sorted(sum(seen, [])) == sorted(s.source for s in samples)
    assert not set(seen[0]) & set(seen[1])


def test_stream_is_endless_reshuffled_and_resumes_exactly(make_samples):
    samples = make_samples(5, 4)
    for i, s in enumerate(samples):
        s.source = f"s{i}"
    stream = InMemoryStream(samples, 30, ["dft"], seed=1)
    assert isinstance(stream, BatchStream)
    first = [_ids(next(stream)) for _ in range(7)]
    state = stream.state_dict()
    rest = [_ids(next(stream)) for _ in range(25)]  # crosses several epochs
    assert stream.epoch >= 2

    resumed = InMemoryStream(samples, 30, ["dft"], seed=1)
    resumed.load_state_dict(state)
    assert [_ids(next(resumed)) for _ in range(25)] == rest

    fresh = InMemoryStream(samples, 30, ["dft"], seed=1)
    epochs: dict[int, list] = {}
    while fresh.epoch < 2:
        ids = _ids(next(fresh))
        epochs.setdefault(fresh.epoch, []).extend(ids)
    assert epochs[0] != epochs[1] and sorted(epochs[0]) == sorted(epochs[1])
    assert first[0] != _ids(next(InMemoryStream(samples, 30, ["dft"], seed=2)))


def test_resume_with_another_world_size_warns(make_samples):
    samples = make_samples(4, 4)
    stream = InMemoryStream(samples, 30, ["dft"], seed=0, rank=0, world_size=2)
    for _ in range(3):
        next(stream)
    other = InMemoryStream(samples, 30, ["dft"], seed=0, rank=0, world_size=1)
    with pytest.warns(UserWarning, match="instead of 2"):
        other.load_state_dict(stream.state_dict())
    assert other.epoch == stream.epoch


def _merged(streams):
    """The position all ranks gather in `state_dict` under torch.distributed."""
    states = [s.state_dict() for s in streams]
    return {**states[0], "ranks": {k: v for s in states for k, v in s["ranks"].items()}}


@pytest.mark.parametrize("worlds", [(2, 1), (1, 2, 3)])
def test_resume_on_another_world_size_delivers_each_structure_once_per_epoch(make_samples, worlds):
    samples = make_samples(6, 4)
    for i, s in enumerate(samples):
        s.source = f"s{i}"
    seen: dict[int, list] = {}
    state = None
    for k, world in enumerate(worlds):
        streams = [InMemoryStream(samples, 30, ["dft"], seed=5, rank=r, world_size=world) for r in range(world)]
        for r, stream in enumerate(streams):
            if state is not None:
                stream.load_state_dict(state)
            last = k == len(worlds) - 1
            while (stream.epoch < 2) if last else len(seen.get(0, [])) < 5 * (k + 1) + 3 * r:
                ids = _ids(next(stream))
                seen.setdefault(stream.epoch, []).extend(ids)
        state = _merged(streams)
        assert k == 0 or streams[0].resplit.startswith(f"data position saved by {worlds[k - 1]} rank(s) re-split")
    for epoch in (0, 1):
        assert sorted(seen[epoch]) == sorted(s.source for s in samples), epoch


def test_stream_batches_have_the_configured_dtype(make_samples):
    data = InMemoryData(make_samples(3, 2), [], dtype=torch.float64)
    batch = next(iter(data.train_stream(seed=0)))
    assert batch.positions.dtype == torch.float64 and batch.energy["dft"].dtype == torch.float64


def test_split_auto_falls_back_to_conformers(molecules_xyz):
    path, _ = molecules_xyz(n_molecules=1, n_conformers=20)
    config = dict(path=str(path), energy_key="REF_energy", val_fraction=0.2)
    with pytest.raises(DataError, match="1 distinct molecule"):
        FileDataConfig(**config).build()
    data = FileDataConfig(**config, split="auto").build()
    assert (len(data.train), len(data.val), data.split_by) == (16, 4, "conformer")


@pytest.mark.parametrize("bad, match", [
    (dict(), "data.path is required"),
    (dict(path="x", val_fraction=1.5), "data.val_fraction"),
    (dict(path="x", val_fraction=0.5, test_fraction=0.5), "nothing to train on"),
    (dict(path="x", split="random"), "data.split"),
    (dict(sources=[{"path": "x", "energy": "E"}]), r"data.sources\[0\]: unknown key"),
])
def test_config_errors(bad, match):
    with pytest.raises(UserError, match=match):
        FileDataConfig(**bad)


def test_missing_file_in_sources_is_named(tmp_path):
    with pytest.raises(DataError, match="gone.xyz: no such file"):
        FileDataConfig(sources=[{"path": str(tmp_path / "gone.xyz")}]).build()
