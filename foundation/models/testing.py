"""Physics tests every `PotentialModel` must pass (in the spirit of nequip's model_tests_basic).

Use it from a test module::

    class TestMyModel(PotentialModelTests):
        @pytest.fixture
        def model_factory(self):
            return lambda: MyConfig(heads=["wb97x_631gs", "ccsdt_ccpvdz"]).build()

The factory returns a fresh model with at least two heads; the suite perturbs its weights (so no
zero-initialised bias hides an error), and runs it in float64 with random reference energies of
realistic size (-1e3 eV), so float64 bookkeeping is tested too.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from foundation.data.batch import AtomsBatch, collate
from foundation.data.elements import symbol
from foundation.data.sample import Sample
from foundation.errors import UserError
from foundation.models.base import PotentialModel
from foundation.models.prediction import predict
from foundation.models.registry import build_model


def random_molecule(rng: np.random.Generator, elements: list[int], n_atoms: int) -> Sample:
    """A connected random cluster: each atom 1.0-1.6 Å from an earlier one, none closer than 0.9 Å."""
    positions = [np.zeros(3)]
    while len(positions) < n_atoms:
        step = rng.normal(size=3)
        candidate = positions[rng.integers(len(positions))] + step / np.linalg.norm(step) * rng.uniform(1.0, 1.6)
        if np.linalg.norm(np.array(positions) - candidate, axis=1).min() > 0.9:
            positions.append(candidate)
    return Sample(numbers=rng.choice(elements, n_atoms), positions=np.array(positions))


def random_crystal(rng: np.random.Generator, elements: list[int], n_atoms: int = 3) -> Sample:
    """A small triclinic periodic cell (shorter than the cutoff: many images of each atom)."""
    cell = np.diag([3.2, 3.5, 3.8]) + rng.uniform(-0.3, 0.3, (3, 3))
    while True:
        frac = rng.uniform(0, 1, (n_atoms, 3))
        sample = Sample(numbers=rng.choice(elements, n_atoms), positions=frac @ cell, cell=cell, pbc=[True] * 3)
        if _min_periodic_distance(sample) > 1.0:
            return sample


def _min_periodic_distance(sample: Sample) -> float:
    images = np.array(np.meshgrid(*[[-1, 0, 1]] * 3)).reshape(3, -1).T @ sample.cell
    d = sample.positions[:, None, None] - sample.positions[None, :, None] - images[None, None]
    d = np.linalg.norm(d, axis=-1)
    d[d < 1e-9] = np.inf
    return float(d.min())


def evaluate(model: PotentialModel, samples: list[Sample],
             head: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Energies (B,) eV and forces (N, 3) eV/Å as float64 numpy, batch in the model's dtype."""
    out = model(collate(samples, fidelities=[], dtype=model.dtype), head=head)
    return out["energy"].detach().numpy(), out["forces"].detach().numpy()


def close(actual, desired, tol: float) -> None:
    """|actual - desired| <= tol * max(1, max |desired|): tolerances relative to the scale of the
    quantity, so one suite fits models whose forces are 1 or 1000 eV/Å."""
    desired = np.asarray(desired, dtype=np.float64)
    scale = max(1.0, float(np.abs(desired).max())) if desired.size else 1.0
    np.testing.assert_allclose(actual, desired, rtol=0, atol=tol * scale)


def supercell_2x2x2(crystal: Sample) -> Sample:
    """The same crystal as 8 copies of its cell (a structure whose energy is 8 times the crystal's)."""
    offsets = np.array([[a, b, c] for a in (0, 1) for b in (0, 1) for c in (0, 1)]) @ crystal.cell
    return Sample(numbers=np.tile(crystal.numbers, 8), cell=2 * crystal.cell, pbc=[True] * 3,
                  positions=np.concatenate([crystal.positions + o for o in offsets]))


def moved(sample: Sample, positions: np.ndarray) -> Sample:
    return dataclasses.replace(sample, positions=positions)


class PotentialModelTests:
    """Mix-in test class; subclasses provide the `model_factory` fixture."""

    @pytest.fixture
    def model(self, model_factory) -> PotentialModel:
        torch.manual_seed(0)
        model = model_factory().double().eval()
        assert len(model.heads) >= 2, "the suite needs a model with two heads"
        with torch.no_grad():  # as after training: no zero biases hiding an offset at zero input
            for p in model.parameters():
                spread = float(p.std()) if p.numel() > 1 and float(p.std()) > 0 else 0.1
                p.add_(0.1 * spread * torch.randn_like(p))
        rng = np.random.default_rng(1)
        for head in model.heads:
            model.set_reference_energies(head, {z: -1000.0 * rng.uniform(0.5, 2) for z in model.elements})
        return model

    @pytest.fixture
    def rng(self) -> np.random.Generator:
        return np.random.default_rng(42)

    def test_forces_match_finite_differences(self, model, rng):
        for sample in (random_molecule(rng, model.elements, 5), random_crystal(rng, model.elements, 2)):
            _, forces = evaluate(model, [sample])
            h = 1e-4
            numeric = np.zeros_like(forces)
            for atom in range(sample.n_atoms):
                for axis in range(3):
                    shifted = []
                    for sign in (1, -1):
                        pos = sample.positions.copy()
                        pos[atom, axis] += sign * h
                        shifted.append(moved(sample, pos))
                    e_plus, e_minus = evaluate(model, shifted)[0]
                    numeric[atom, axis] = -(e_plus - e_minus) / (2 * h)
            close(forces, numeric, 1e-6)

    def test_invariant_to_rotation_reflection_translation(self, model, rng):
        sample = random_molecule(rng, model.elements, 8)
        energy, forces = evaluate(model, [sample])
        rotation, _ = np.linalg.qr(rng.normal(size=(3, 3)))  # orthogonal; a reflection if det < 0
        for matrix in (rotation, -rotation):
            e2, f2 = evaluate(model, [moved(sample, sample.positions @ matrix.T + rng.normal(size=3) * 5)])
            close(e2, energy, 1e-11)
            close(f2, forces @ matrix.T, 1e-9)

    def test_invariant_to_permutation(self, model, rng):
        sample = random_molecule(rng, model.elements, 8)
        energy, forces = evaluate(model, [sample])
        perm = rng.permutation(sample.n_atoms)
        permuted = dataclasses.replace(sample, numbers=sample.numbers[perm], positions=sample.positions[perm])
        e2, f2 = evaluate(model, [permuted])
        close(e2, energy, 1e-11)
        close(f2, forces[perm], 1e-9)

    def test_periodic_images_and_supercell(self, model, rng):
        crystal = random_crystal(rng, model.elements, 3)
        energy, forces = evaluate(model, [crystal])
        wrapped = crystal.positions.copy()
        wrapped[0] += crystal.cell[0] - 2 * crystal.cell[2]  # the same crystal
        e2, f2 = evaluate(model, [moved(crystal, wrapped)])
        close(e2, energy, 1e-11)
        close(f2, forces, 1e-9)
        double = Sample(numbers=np.tile(crystal.numbers, 2), cell=crystal.cell * [[2], [1], [1]], pbc=[True] * 3,
                        positions=np.concatenate([crystal.positions, crystal.positions + crystal.cell[0]]))
        e3, f3 = evaluate(model, [double])
        close(e3, 2 * energy, 1e-11)
        close(f3, np.concatenate([forces, forces]), 1e-9)

    def test_batch_matches_single_structures(self, model, rng):
        samples = [random_molecule(rng, model.elements, n) for n in (4, 1, 9)]
        samples.append(random_crystal(rng, model.elements))
        energy, forces = evaluate(model, samples)
        singles = [evaluate(model, [s]) for s in samples]
        close(energy, [e[0] for e, _ in singles], 1e-11)
        close(forces, np.concatenate([f for _, f in singles]), 1e-9)

    def test_isolated_atom_has_reference_energy(self, model):
        for z in model.elements:
            for head in model.heads:
                energy, forces = evaluate(model, [Sample(numbers=[z], positions=np.zeros((1, 3)))], head)
                reference = model.reference_energies_dict()[head][z]
                close(energy, [reference], 1e-11)
                np.testing.assert_array_equal(forces, 0.0)

    def test_far_apart_structures_add_up(self, model, rng):
        a, b = random_molecule(rng, model.elements, 6), random_molecule(rng, model.elements, 5)
        gap = np.ptp(a.positions, axis=0).max() + np.ptp(b.positions, axis=0).max() + model.cutoff + 1
        joint = Sample(numbers=np.concatenate([a.numbers, b.numbers]),
                       positions=np.concatenate([a.positions, b.positions + [gap, 0, 0]]))
        energy, forces = evaluate(model, [joint])
        parts = evaluate(model, [a, b])
        close(energy, [parts[0].sum()], 1e-11)
        close(forces, parts[1], 1e-9)

    def test_smooth_at_cutoff(self, model):
        z1, z2 = model.elements[0], model.elements[-1]

        def dimer(r):
            return evaluate(model, [Sample(numbers=[z1, z2], positions=[[0, 0, 0], [r, 0, 0]])])

        isolated = sum(model.reference_energies_dict()[model.heads[0]][z] for z in (z1, z2))
        typical = max(np.abs(dimer(r)[1]).max() for r in np.linspace(1.0, model.cutoff - 0.5, 8))
        inside, outside = dimer(model.cutoff - 1e-3), dimer(model.cutoff + 1e-3)
        close(outside[0], [isolated], 1e-11)
        np.testing.assert_array_equal(outside[1], 0.0)
        assert abs(inside[0][0] - isolated) < 1e-6 * max(typical, 1.0)
        assert np.abs(inside[1]).max() < 1e-3 * max(typical, 1.0)

    def test_unknown_element_is_a_user_error(self, model):
        unknown = next(z for z in range(1, 100) if z not in model.elements)
        sample = Sample(numbers=[model.elements[0], unknown], positions=[[0, 0, 0], [1.5, 0, 0]],
                        source="water.xyz#3")
        with pytest.raises(UserError, match=rf"water.xyz#3.*\b{symbol(unknown)}\b"):
            evaluate(model, [sample])

    def test_config_rebuilds_the_model(self, model, rng):
        sample = random_molecule(rng, model.elements, 6)
        config = json.loads(json.dumps(dataclasses.asdict(model.config)))
        rebuilt = build_model(config).double()
        rebuilt.load_state_dict(model.state_dict())
        for head in model.heads:
            np.testing.assert_array_equal(evaluate(rebuilt, [sample], head)[0], evaluate(model, [sample], head)[0])

    def test_add_head(self, model, rng):
        sample = random_molecule(rng, model.elements, 6)
        source = model.heads[0]
        model.add_head("copied", copy_from=source)
        model.add_head("fresh")
        # not bitwise: a wider matmul may sum in another order
        close(evaluate(model, [sample], "copied")[0], evaluate(model, [sample], source)[0], 1e-11)
        assert model.reference_energies_dict()["fresh"] == {z: 0.0 for z in model.elements}
        assert model.heads[-2:] == ["copied", "fresh"]
        with pytest.raises(UserError, match="copied"):
            model.add_head("copied")
        rebuilt = build_model(dataclasses.asdict(model.config)).double()
        rebuilt.load_state_dict(model.state_dict())  # the config knows the new heads

    def test_float32_keeps_float64_reference_energies(self, model, rng):
        sample = random_molecule(rng, model.elements, 7)
        energy64, forces64 = evaluate(model, [sample])
        model.float()
        assert model.reference_energies.dtype == torch.float64
        energy32, forces32 = evaluate(model, [sample])
        assert energy32.dtype == np.float64
        learned = energy64 - sum(model.reference_energies_dict()[model.heads[0]][int(z)] for z in sample.numbers)
        close(energy32 - energy64, 0.0, 1e-3 * max(1.0, abs(learned[0])))  # float32 learned part only
        close(forces32, forces64, 1e-4)

    def test_predict_matches_forward_and_trains(self, model, rng):
        samples = [random_molecule(rng, model.elements, n) for n in (3, 6)]
        batch: AtomsBatch = collate(samples, fidelities=[], dtype=torch.float64)
        heads = model.heads[:2]
        out = predict(model, batch, heads, force_heads=heads[1:], create_graph=False)
        assert set(out["energy"]) == set(heads) and set(out["forces"]) == {heads[1]}
        for head in heads:
            single = model(batch, head=head)
            close(out["energy"][head].detach().numpy(), single["energy"].detach().numpy(), 1e-11)
        torch.testing.assert_close(out["forces"][heads[1]], model(batch, head=heads[1])["forces"])

        model.train()
        out = predict(model, batch, heads, force_heads=heads[:1], create_graph=True)
        loss = (out["forces"][heads[0]] ** 2).sum() + out["energy"][heads[1]].sum() / 1e3
        loss.backward()
        grads = [p.grad for p in model.parameters() if p.requires_grad]
        assert all(g is not None for g in grads), "every parameter should get a gradient"
        assert any(float(g.abs().sum()) > 0 for g in grads)
