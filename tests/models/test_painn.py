"""The PaiNN model: the shared physics suite, plus what is particular to PaiNN."""

import dataclasses

import numpy as np
import pytest
import torch

from foundation.data.batch import collate
from foundation.data.sample import Sample
from foundation.errors import UserError
from foundation.models import build_model
from foundation.models.painn import PaiNNConfig
from foundation.models.painn_layers import MessagePassing
from foundation.models.testing import PotentialModelTests, evaluate, random_crystal, random_molecule, supercell_2x2x2

HEADS = ["wb97x_631gs", "ccsdt_ccpvdz"]
HCNO = [1, 6, 7, 8]


def small(**overrides) -> PaiNNConfig:
    """Narrow and shallow, for speed; the physics does not depend on the width."""
    return PaiNNConfig(**{"heads": list(HEADS), "hidden": 16, "num_interactions": 2, "num_radial": 8, **overrides})


def seeded(config: PaiNNConfig, seed: int = 0):
    torch.manual_seed(seed)
    model = config.build().double().eval()
    rng = np.random.default_rng(seed)
    for head in model.heads:
        model.set_reference_energies(head, {z: -1000.0 * rng.uniform(0.5, 2) for z in model.elements})
    return model


class TestPaiNNPhysics(PotentialModelTests):
    @pytest.fixture
    def model_factory(self):
        return lambda: PaiNNConfig(heads=list(HEADS)).build()  # the defaults, as trained


def test_defaults_and_large_preset():
    config = PaiNNConfig()
    assert (config.cutoff, config.hidden, config.num_interactions, config.num_radial) == (5.0, 64, 3, 20)
    assert config.readout_hidden == 32 and config.elements == HCNO and config.heads == ["wb97x_631gs"]
    model = config.build()
    assert model.cutoff == 5.0 and len(model.interactions) == 3
    assert all(isinstance(layer.message, MessagePassing) for layer in model.interactions)
    large = PaiNNConfig.large()
    assert (large.hidden, large.num_interactions, large.readout_hidden) == (128, 5, 64)


def test_hydra_configs_build_the_presets():
    from foundation.train.compose import compose_dict

    for name, hidden, depth in (("painn", 64, 3), ("painn_large", 128, 5)):
        config = compose_dict([f"model={name}"])["model"]
        model = build_model({**config, "elements": ["H", "C", "N", "O"], "heads": HEADS})
        assert (model.config.hidden, len(model.interactions), model.heads) == (hidden, depth, HEADS)


def test_rotating_a_periodic_cell_with_its_atoms_changes_nothing_but_force_directions():
    model = seeded(small())
    rng = np.random.default_rng(5)
    crystal = random_crystal(rng, HCNO, 4)
    energy, forces = evaluate(model, [crystal])
    rotation, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    perm = rng.permutation(crystal.n_atoms)
    turned = dataclasses.replace(crystal, numbers=crystal.numbers[perm], cell=crystal.cell @ rotation.T,
                                 positions=crystal.positions[perm] @ rotation.T + rng.normal(size=3))
    e2, f2 = evaluate(model, [turned])
    np.testing.assert_allclose(e2, energy, rtol=0, atol=1e-9)
    np.testing.assert_allclose(f2, forces[perm] @ rotation.T, rtol=0, atol=1e-9)


@pytest.mark.parametrize("cutoff", [3.0, 5.0])  # below half the cell, and beyond the whole cell
def test_supercell_2x2x2_has_eight_times_the_energy(cutoff):
    model = seeded(small(cutoff=cutoff))
    rng = np.random.default_rng(6)
    cell = np.diag([6.2, 6.5, 6.8]) + rng.uniform(-0.3, 0.3, (3, 3)) if cutoff < 5 else None
    crystal = random_crystal(rng, HCNO, 3) if cell is None else _random_cell(rng, cell, 8)
    energy, forces = evaluate(model, [crystal])
    e8, f8 = evaluate(model, [supercell_2x2x2(crystal)])
    np.testing.assert_allclose(e8 / 8, energy, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(f8, np.tile(forces, (8, 1)), rtol=0, atol=1e-9)


def _random_cell(rng, cell, n_atoms) -> Sample:
    while True:
        positions = rng.uniform(0, 1, (n_atoms, 3)) @ cell
        sample = Sample(numbers=rng.choice(HCNO, n_atoms), positions=positions, cell=cell, pbc=[True] * 3)
        d = np.linalg.norm(positions[:, None] - positions[None], axis=-1) + np.eye(n_atoms) * 9
        if d.min() > 1.0:
            return sample


def test_heads_share_the_body_and_freeze_by_pattern():
    model = seeded(small())
    names = dict(model.named_parameters())
    assert "embedding.weight" in names and "interactions.0.message.filter.weight" in names
    assert "interactions.1.update.mix.weight" in names
    for head in HEADS:
        assert f"readout.heads.{head}.0.weight" in names and f"readout.heads.{head}.2.bias" in names
    sample = random_molecule(np.random.default_rng(7), HCNO, 6)
    refs = model.reference_energies_dict()
    learned = {h: evaluate(model, [sample], h)[0] - sum(refs[h][int(z)] for z in sample.numbers) for h in HEADS}
    assert learned[HEADS[0]] != pytest.approx(learned[HEADS[1]])
    cc = model.readout.heads["ccsdt_ccpvdz"]
    with torch.no_grad():
        cc[2].bias += 1.0  # cancelled by the isolated-atom term: atoms weigh their reference energies
        cc[2].weight *= 2.0  # a head's own readout moves that head only
    for head, factor in zip(HEADS, (1.0, 2.0)):
        energy = evaluate(model, [sample], head)[0]
        np.testing.assert_allclose(energy - sum(refs[head][int(z)] for z in sample.numbers),
                                   factor * learned[head], rtol=1e-9)

    # ANI-1ccx-style: train the last interaction and the CC head, keep the rest fixed.
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith("interactions.1.") or ".heads.ccsdt_ccpvdz." in name)
    batch = collate([sample], fidelities=[], dtype=torch.float64)
    model(batch, head="ccsdt_ccpvdz", forces=False)["energy"].sum().backward()
    assert all((p.grad is not None) == p.requires_grad for p in model.parameters())


def test_export_and_reload_give_identical_predictions(tmp_path):
    from foundation.hub.format import load_model_file, read_header, save_model

    model = seeded(small(elements=["H", "C", "O"]))
    model.add_head("mp2_ccpvdz", copy_from="ccsdt_ccpvdz")
    path = save_model(model, tmp_path / "painn.safetensors")
    assert read_header(path)["model"] == "painn" and read_header(path)["cutoff"] == 5.0
    loaded = load_model_file(path)
    assert loaded.dtype == torch.float64 and loaded.heads == model.heads
    rng = np.random.default_rng(8)
    samples = [random_molecule(rng, [1, 6, 8], 7), random_crystal(rng, [1, 6, 8], 3)]
    for head in model.heads:
        e1, f1 = evaluate(model, samples, head)
        e2, f2 = evaluate(loaded, samples, head)
        np.testing.assert_array_equal(e2, e1)
        np.testing.assert_array_equal(f2, f1)


def test_float32_batches_and_inference_without_grad_mode():
    model = small().build().eval()
    batch = collate([random_molecule(np.random.default_rng(9), HCNO, 5)], fidelities=[])
    with torch.no_grad():
        out = model(batch)
    assert out["energy"].dtype == torch.float64 and out["forces"].shape == (5, 3)
    assert out["forces"].abs().sum() > 0 and not out["forces"].requires_grad
    assert "forces" not in model(batch, forces=False)


@pytest.mark.parametrize("overrides, message", [
    ({"cutoff": 0.0}, "cutoff"), ({"cutoff": "far"}, "cutoff"), ({"hidden": 0}, "hidden"),
    ({"num_interactions": 2.5}, "num_interactions"), ({"num_radial": True}, "num_radial"),
    ({"elements": ["H", "Xx"]}, "Xx"), ({"heads": ["wb97x.631gs"]}, "head name"),
])
def test_config_errors_are_user_errors(overrides, message):
    with pytest.raises(UserError, match=message):
        PaiNNConfig(**overrides)


def test_unknown_option_is_named():
    with pytest.raises(UserError, match="no option.*hiden"):
        build_model({"name": "painn", "hiden": 32})
