import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from foundation.data.sample import Sample
from foundation.data.split import split_by_conformer, split_by_molecule
from foundation.errors import DataError


def _samples(counts):
    """Molecule `m{i}` with counts[i] conformers, interleaved as a real file might be."""
    labels = [f"m{i}" for i, c in enumerate(counts) for _ in range(c)]
    order = np.random.default_rng(1).permutation(len(labels))
    return [Sample(numbers=[1, 1], positions=[[0, 0, 0], [0, 0, 0.74 + 0.01 * k]],
                   molecule=labels[k], source=f"f:{k}") for k in order]


fractions_st = st.sampled_from([{"train": 0.8, "val": 0.2}, {"train": 0.8, "val": 0.1, "test": 0.1},
                                {"train": 1.0}, {"train": 0.5, "val": 0.0, "test": 0.5}])


@settings(max_examples=60, deadline=None)
@given(counts=st.lists(st.integers(1, 12), min_size=3, max_size=40), fractions=fractions_st,
       seed=st.integers(0, 2**31))
def test_no_molecule_in_two_splits_and_nothing_lost(counts, fractions, seed):
    samples = _samples(counts)
    splits = split_by_molecule(samples, fractions, seed)
    assert set(splits) == set(fractions)
    seen = {}
    for name, part in splits.items():
        for s in part:
            assert seen.setdefault(s.molecule, name) == name  # never a conformer in another split
    assert sorted(s.source for part in splits.values() for s in part) == sorted(s.source for s in samples)
    for name, f in fractions.items():
        assert (len(splits[name]) > 0) == (f > 0)


def test_deterministic_and_independent_of_input_order():
    samples = _samples([3, 5, 2, 7, 1, 4, 6, 2, 3, 5])
    a = split_by_molecule(samples, {"train": 0.7, "val": 0.3}, seed=4)
    b = split_by_molecule(samples[::-1], {"train": 0.7, "val": 0.3}, seed=4)
    c = split_by_molecule(samples, {"train": 0.7, "val": 0.3}, seed=5)
    mols = lambda split: {name: {s.molecule for s in part} for name, part in split.items()}  # noqa: E731
    assert mols(a) == mols(b)
    val = {s.source for s in a["val"]}
    assert [s.source for s in a["val"]] == [s.source for s in samples if s.source in val]  # input order
    assert mols(a) != mols(c)


def test_fractions_are_met_approximately_by_structure_count():
    samples = _samples([5] * 200)
    splits = split_by_molecule(samples, {"train": 0.8, "val": 0.1, "test": 0.1}, seed=0)
    assert [len(splits[n]) for n in ("train", "val", "test")] == pytest.approx([800, 100, 100], abs=5)


def test_too_few_molecules_is_a_clear_error():
    with pytest.raises(DataError, match="2 distinct molecule.*3 splits.*split by conformer"):
        split_by_molecule(_samples([10, 10]), {"train": 0.8, "val": 0.1, "test": 0.1})


def test_molecule_computed_when_missing(make_samples):
    samples = make_samples(4, 3)
    assert all(s.molecule == "" for s in samples)
    splits = split_by_molecule(samples, {"train": 0.5, "val": 0.5}, seed=0)
    names = [{s.source.split(":")[0] for s in part} for part in splits.values()]
    assert not names[0] & names[1]


def test_bad_fractions():
    with pytest.raises(DataError, match="sum to 1"):
        split_by_molecule(_samples([1, 1]), {"train": 0.8, "val": 0.1})


@settings(max_examples=40, deadline=None)
@given(n=st.integers(3, 200), fractions=fractions_st, seed=st.integers(0, 2**31))
def test_split_by_conformer_partitions(n, fractions, seed):
    samples = _samples([n])
    splits = split_by_conformer(samples, fractions, seed)
    assert sorted(s.source for part in splits.values() for s in part) == sorted(s.source for s in samples)
    for name, f in fractions.items():
        assert (len(splits[name]) > 0) == (f > 0)
        if f > 0:
            assert abs(len(splits[name]) - f * n) <= len(fractions)


def test_split_by_conformer_too_few():
    with pytest.raises(DataError, match="2 structure"):
        split_by_conformer(_samples([2]), {"train": 0.8, "val": 0.1, "test": 0.1})
