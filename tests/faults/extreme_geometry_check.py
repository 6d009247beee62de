"""The hypothesis loop of tests/faults/test_extreme_geometry.py, run as a script in a process of
its own: a SIGFPE or SIGSEGV in vesin, torch or our C kernels must fail that test, not end
pytest. Exit 0 when every example passed; a failing example is printed by hypothesis (exit 1).

Structures our checks let through, at their extremes: atoms anywhere within 1e4 Å of the
origin (one atom; spread over the whole ball; a tight cluster; collinear; in a plane, axis-
aligned or not; far-apart fragments), and periodic cells down to the minimum height along one
direction, skewed, with mixed pbc and atoms unwrapped far from the cell. Each goes through
validation, the molecule key, collate (with an empty structure in the batch), the neighbour list
(pairs checked against a brute-force search), ANI and PaiNN forward and backward, and the ASE
calculator: outputs must be finite."""

from __future__ import annotations

import itertools
import sys

import numpy as np
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from foundation.calculators import FoundationCalculator
from foundation.data.batch import collate
from foundation.data.geometry import MAX_DISTANCE, MIN_CELL_HEIGHT, check_geometry, periodic_heights
from foundation.data.molecules import molecule_key
from foundation.data.sample import MIN_DISTANCE, Sample
from foundation.errors import DataError
from foundation.models import ANIConfig
from foundation.models.neighbors import neighbor_pairs
from foundation.models.prediction import predict
from foundation.models.painn import PaiNNConfig

RADIUS = MAX_DISTANCE * (1 - 1e-9)  # inside the bound, up to its edge
ELEMENTS = [1, 6, 7, 8]
EXAMPLES = int(sys.argv[1]) if len(sys.argv) > 1 else 60

torch.manual_seed(0)
MODELS = [ANIConfig(hidden={s: [8] for s in "HCNO"}, radial_num_shifts=4, angular_num_shifts=2,
                    angular_num_sections=2).build(),
          PaiNNConfig(hidden=8, num_interactions=2, num_radial=4).build()]
CALCULATOR = FoundationCalculator(MODELS[0], device="cpu")


def _unit(rng) -> np.ndarray:
    v = rng.normal(size=3)
    return v / np.linalg.norm(v)


def _into_ball(points: np.ndarray) -> np.ndarray:
    """Move (not scale) the points so that every one is within RADIUS of the origin."""
    far = np.linalg.norm(points, axis=1).max()
    if far <= RADIUS:
        return points
    centre = points.mean(axis=0)
    spread = np.linalg.norm(points - centre, axis=1).max()
    return points - centre + centre * max(RADIUS - spread, 0.0) / max(np.linalg.norm(centre), 1e-300)


@st.composite
def molecules(draw) -> Sample:
    shape = draw(st.sampled_from(["single", "spread", "cluster", "line", "plane", "axis plane", "fragments"]))
    n = 1 if shape == "single" else draw(st.integers(2, 10))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    edge = st.floats(-RADIUS, RADIUS, allow_nan=False) | st.sampled_from([RADIUS, -RADIUS, 0.0])
    anchor = np.array([draw(edge) for _ in range(3)])
    width = draw(st.sampled_from([1.0, 50.0, 2e3, RADIUS]))  # how far the atoms spread
    if shape == "single":
        points = anchor[None]
    elif shape == "spread":  # uniform in the whole ball
        points = np.array([_unit(rng) for _ in range(n)]) * RADIUS * rng.uniform(0, 1, (n, 1)) ** (1 / 3)
    elif shape == "cluster":  # each atom MIN_DISTANCE to 1.6 Å from an earlier one
        points = [anchor]
        while len(points) < n:
            points.append(points[rng.integers(len(points))] + _unit(rng) * rng.uniform(MIN_DISTANCE, 1.6))
        points = np.array(points)
    elif shape == "line":
        steps = np.sort(rng.uniform(0, width, n)) + MIN_DISTANCE * np.arange(n)
        points = anchor + steps[:, None] * _unit(rng)
    elif shape in ("plane", "axis plane"):
        u, v = (np.eye(3)[:2] if shape == "axis plane" else np.linalg.qr(rng.normal(size=(3, 3)))[0][:2])
        points = anchor + rng.uniform(-width, width, (n, 2)) / np.sqrt(2) @ np.array([u, v])
    else:  # fragments of 1-3 atoms anywhere in the ball, far apart
        fragment = np.array([[0, 0, 0], [1.1, 0, 0], [0, 1.2, 0]])
        points = np.concatenate([_unit(rng) * (RADIUS - 2) * rng.uniform(0, 1) ** (1 / 3) + fragment[:rng.integers(1, 4)]
                                 for _ in range(n)])
    points = _into_ball(np.asarray(points, float))
    sample = Sample(numbers=rng.choice(ELEMENTS, len(points)), positions=points, source=shape)
    assume(np.linalg.norm(points, axis=1).max() <= MAX_DISTANCE and _min_distance(sample) >= MIN_DISTANCE)
    return sample


@st.composite
def crystals(draw) -> Sample:
    """A cell with one thin direction (height down to MIN_CELL_HEIGHT), skewed, rotated; pbc any
    non-empty subset; 1-3 atoms, unwrapped by whole cell vectors up to far from the cell."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    near_limit = st.floats(MIN_CELL_HEIGHT * 1.001, 1.0)
    thin = draw(st.one_of(near_limit, near_limit, st.floats(3.0, 40.0)))
    cell = np.array([[draw(st.floats(3.0, 40.0)), 0, 0], [draw(st.floats(-40, 40)), draw(st.floats(3.0, 40.0)), 0],
                     [draw(st.floats(-40, 40)), draw(st.floats(-40, 40)), thin]])
    cell = cell[rng.permutation(3)] @ np.linalg.qr(rng.normal(size=(3, 3)))[0]
    pbc = np.array(draw(st.sampled_from([c for c in itertools.product([True, False], repeat=3) if any(c)])))
    n = draw(st.integers(1, 3))
    frac = rng.uniform(0, 1, (n, 3))
    wrapped = frac @ cell
    far = draw(st.sampled_from([0.0, 100.0, RADIUS / 2]))
    offsets = np.round(rng.uniform(-1, 1, (n, 3)) * far / np.linalg.norm(cell, axis=1)) * pbc
    if not pbc.all() and draw(st.booleans()):
        cell[~pbc] = 0.0  # no vectors along the open directions, as ASE allows
    sample = Sample(numbers=rng.choice(ELEMENTS, n), positions=wrapped + offsets @ np.where(pbc[:, None], cell, 0),
                    cell=cell, pbc=pbc, source="crystal")
    sample.wrapped = wrapped
    try:
        check_geometry(sample.numbers, sample.positions, sample.cell, sample.pbc)
    except DataError:
        assume(False)
    assume(_min_distance(sample) >= MIN_DISTANCE)
    return sample


def _distances(sample: Sample, cutoff: float) -> np.ndarray:
    """Every pair (and periodic image) distance below `cutoff`, by brute force, sorted."""
    positions = getattr(sample, "wrapped", sample.positions)
    heights = periodic_heights(sample.cell, sample.pbc)
    reach = [int(np.ceil(cutoff / heights[k])) + 1 if sample.pbc[k] else 0 for k in range(3)]
    found = []
    for shift in itertools.product(*[range(-r, r + 1) for r in reach]):
        d = np.linalg.norm(positions[None] - positions[:, None] + np.array(shift, float) @ sample.cell, axis=-1)
        found.append(d[(d < cutoff) & (d > 0)])
    return np.sort(np.concatenate(found))


def _min_distance(sample: Sample) -> float:
    d = _distances(sample, MIN_DISTANCE * 1.01)
    return float(d.min()) if len(d) else np.inf


def _check_batch(samples: list[Sample]) -> None:
    empty = Sample(numbers=np.zeros(0, int), positions=np.zeros((0, 3)))
    for dtype in (torch.float32, torch.float64):
        batch = collate([*samples[:1], empty, *samples[1:]], fidelities=[], dtype=dtype)
        assert batch.n_atoms == sum(s.n_atoms for s in samples)
        for cutoff in (MODELS[0].cutoff, MODELS[1].cutoff):
            i, j, shifts = neighbor_pairs(batch, cutoff)
            assert torch.equal(batch.batch[i], batch.batch[j])
            if dtype == torch.float64:
                ours = np.sort((batch.positions[j] - batch.positions[i] + shifts).norm(dim=1).numpy())
                expected = np.sort(np.concatenate([_distances(s, cutoff) for s in samples]))
                assert len(ours) == len(expected) and np.allclose(ours, expected, rtol=0, atol=1e-6), \
                    (len(ours), len(expected))
    for model in MODELS:
        batch = collate(samples, fidelities=[], dtype=model.dtype)
        out = predict(model, batch, model.heads, model.heads)
        assert all(torch.isfinite(t).all() for kind in out.values() for t in kind.values()), type(model).__name__


def _check_calculator(sample: Sample) -> None:
    import ase

    atoms = ase.Atoms(numbers=sample.numbers, positions=sample.positions, cell=sample.cell, pbc=sample.pbc)
    atoms.calc = CALCULATOR
    energy, forces = atoms.get_potential_energy(), atoms.get_forces()
    assert np.isfinite(energy) and np.isfinite(forces).all()
    if atoms.pbc.all():
        assert np.isfinite(atoms.get_stress()).all()


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None, print_blob=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large])
@given(st.lists(molecules() | crystals(), min_size=1, max_size=3))
def test_structures_at_the_limits_run_everywhere(samples):
    for sample in samples:
        sample.validate()  # allowed, by construction
        assert molecule_key(sample.numbers, sample.positions)
        _check_calculator(sample)
    _check_batch(samples)


def test_empty_and_single_atom_molecules():
    assert molecule_key(np.zeros(0, int), np.zeros((0, 3))).startswith("-")
    try:
        Sample(numbers=np.zeros(0, int), positions=np.zeros((0, 3)), source="empty").validate()
        raise AssertionError("an empty structure was accepted")
    except DataError as e:
        assert str(e) == "empty: structure has no atoms"
    single = Sample(numbers=[8], positions=[[0.0, 0.0, -RADIUS]])
    _check_batch([single.validate()])
    _check_calculator(single)


if __name__ == "__main__":
    torch.set_num_threads(1)
    test_empty_and_single_atom_molecules()
    test_structures_at_the_limits_run_everywhere()
    print("ok")
