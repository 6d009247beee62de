"""Selection by committee disagreement: a structure unlike the training data is picked first,
picks are reproducible for a seed, and diversity keeps a batch from being n copies of one thing."""

import numpy as np
import pytest
import torch

from foundation.data.batch import collate
from foundation.errors import UserError
from foundation.models import ANIConfig
from foundation.models.ensemble import EnsembleModel
from foundation.pipelines.active.features import structure_features
from foundation.pipelines.active.pick import pick
from foundation.pipelines.active.scores import ensemble_scores
from foundation.pipelines.active.select import SelectConfig, select
from tests.conftest import make_molecule_samples

KNOWN = ["CH4", "H2O", "NH3", "C2H6", "CH3OH"]
ELEMENTS = [1, 6, 7, 8]


def _train_member(train, seed: int) -> ANIConfig:
    """A small ANI fitted to `train` energies (per-atom MSE, Adam): a real, if tiny, member."""
    torch.manual_seed(seed)
    model = ANIConfig(elements=ELEMENTS, heads=["cc"], hidden={s: [16] for s in "HCNO"}).build()
    counts = np.array([[np.sum(s.numbers == z) for z in ELEMENTS] for s in train], float)
    energies = np.array([s.energies["cc"] for s in train])
    refs = np.linalg.lstsq(counts, energies, rcond=None)[0]
    model.set_reference_energies("cc", dict(zip(ELEMENTS, refs)))
    batch = collate(train, ["cc"])
    n_atoms = batch.n_atoms_per_structure.double()
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    for _ in range(200):
        energy = model(batch, head="cc", forces=False)["energy"]
        loss = (((energy - batch.energy["cc"]) / n_atoms) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


@pytest.fixture(scope="module")
def setting():
    """(committee of 3 trained on conformers of KNOWN, training set, pool with one planted H2O2:
    an O–O bond no member has seen)."""
    train = make_molecule_samples(molecules=KNOWN, n_conformers=6, seed=0, fidelity="cc", forces=False)
    pool = make_molecule_samples(molecules=KNOWN, n_conformers=4, seed=1, fidelity="cc", forces=False)
    planted = make_molecule_samples(molecules=["H2O2"], n_conformers=1, seed=2, fidelity="cc", forces=False)[0]
    planted.source = "planted"
    pool.insert(11, planted)  # not first, not last: position must not matter
    committee = EnsembleModel.from_members([_train_member(train, seed) for seed in range(3)]).eval()
    return committee, train, pool


def test_planted_out_of_distribution_structure_is_picked_first(setting):
    committee, train, pool = setting
    picked = pick(pool, SelectConfig(n=3), committee, head="cc")
    assert picked.samples[0].source == "planted"
    spread = picked.scores.energy_spread_per_atom
    planted = [s.source for s in pool].index("planted")
    assert spread[planted] > 3 * np.delete(spread, planted).max()
    # Pure farthest-point sampling from the training data finds it too.
    far = pick(pool, SelectConfig(n=1, diversity=1.0), committee, head="cc", reference=train)
    assert far.samples[0].source == "planted"


def test_selection_is_deterministic_for_a_seed(setting):
    committee, train, pool = setting
    config = SelectConfig(n=5, diversity=0.3, seed=7)
    first = pick(pool, config, committee, head="cc", reference=train)
    again = pick(pool, config, committee, head="cc", reference=train)
    assert first.selection.indices == again.selection.indices
    assert first.selection.values == again.selection.values
    draws = [select(SelectConfig(n=5, strategy="random", seed=s), len(pool)).indices for s in (3, 3, 4)]
    assert draws[0] == draws[1] and draws[0] != draws[2]
    assert len(set(draws[0])) == 5


def test_diversity_keeps_copies_of_one_structure_out_of_a_batch(setting):
    committee, _, pool = setting
    planted = next(s for s in pool if s.source == "planted")
    copies = []
    for k in range(3):  # the same structure rotated and moved: same AEV, same spread
        rotation = np.linalg.qr(np.random.default_rng(k).normal(size=(3, 3)))[0]
        copy = make_molecule_samples(molecules=["H2O2"], n_conformers=1, seed=2, fidelity="cc", forces=False)[0]
        copy.positions = planted.positions @ rotation.T + k
        copy.source = f"copy{k}"
        copies.append(copy)
    crowded = pool + copies
    greedy = pick(crowded, SelectConfig(n=4), committee, head="cc")
    assert {s.source for s in greedy.samples} == {"planted", "copy0", "copy1", "copy2"}
    diverse = pick(crowded, SelectConfig(n=4, diversity=0.5), committee, head="cc")
    assert sum(s.source in ("planted", "copy0", "copy1", "copy2") for s in diverse.samples) == 1


def test_force_spread_and_features(setting):
    committee, _, pool = setting
    scores = ensemble_scores(committee, pool[:4], head="cc", forces=True)
    assert np.isfinite(scores.force_spread).all() and (scores.force_spread > 0).all()
    assert not np.allclose(scores.combined(1.0), scores.combined(0.0))
    features = structure_features(pool[:4], ELEMENTS)
    assert features.shape == (4, 4 * 384)
    # Invariant to moving the molecule: a descriptor of the geometry, not of the coordinates.
    moved = make_molecule_samples(molecules=KNOWN, n_conformers=4, seed=1, fidelity="cc", forces=False)[:1]
    moved[0].positions = moved[0].positions + 3.0
    np.testing.assert_allclose(structure_features(moved, ELEMENTS)[0], features[0], atol=1e-10)


def test_bad_settings_are_one_clear_error(setting):
    committee, _, pool = setting
    with pytest.raises(UserError, match="diversity must be in"):
        SelectConfig(n=3, diversity=2.0)
    with pytest.raises(UserError, match="strategy"):
        SelectConfig(n=3, strategy="best")
    with pytest.raises(UserError, match="at least 2 members"):
        pick(pool, SelectConfig(n=3), committee.members[0], head="cc")
    with pytest.raises(UserError, match="pool is empty"):
        select(SelectConfig(n=3, strategy="random"), 0)
