"""The Δ-learning model: the shared physics suite, plus what makes it a correction on a frozen base."""

import numpy as np
import pytest
import torch

from foundation.data.batch import collate
from foundation.errors import UserError
from foundation.hub.format import load_model_file, save_model
from foundation.models import ANIConfig
from foundation.models.delta import DeltaConfig, DeltaModel
from foundation.models.testing import PotentialModelTests, random_molecule
from foundation.train.freeze import freeze

DFT, CC = "wb97x_631gs", "ccsdt_ccpvdz"
SMALL = {"name": "ani", "radial_num_shifts": 8, "angular_num_shifts": 2, "angular_num_sections": 4,
         "hidden": {s: [16, 8] for s in "HCNO"}}


class TestDeltaPhysics(PotentialModelTests):
    @pytest.fixture
    def model_factory(self):
        # A base with a different cutoff and element order than the correction's default.
        base = {**SMALL, "heads": [DFT, "other"], "radial_cutoff": 4.6, "angular_cutoff": 3.1,
                "elements": [8, 1, 6, 7]}
        return lambda: DeltaConfig(base=base, base_head=DFT, heads=[CC, "ccsdt_cbs"], delta=dict(SMALL)).build()


@pytest.fixture
def base():
    torch.manual_seed(0)
    model = ANIConfig(heads=[DFT], **{k: v for k, v in SMALL.items() if k != "name"}).build().double()
    model.set_reference_energies(DFT, {"H": -13.6, "C": -1029.0, "N": -1485.0, "O": -2042.0})
    return model.eval()


@pytest.fixture
def batch():
    rng = np.random.default_rng(0)
    return collate([random_molecule(rng, [1, 6, 7, 8], 6), random_molecule(rng, [1, 6, 8], 9)],
                   fidelities=[], dtype=torch.float64)


def test_from_base_starts_as_the_base(base, batch):
    model = DeltaModel.from_base(base, DFT, CC, dict(SMALL))
    out, reference = model(batch, head=CC), base(batch, head=DFT)
    torch.testing.assert_close(out["energy"], reference["energy"], rtol=0, atol=1e-9)
    torch.testing.assert_close(out["forces"], reference["forces"], rtol=0, atol=1e-9)
    assert model.heads == [CC] and model.elements == base.elements
    assert model.reference_energies_dict()[CC] == base.reference_energies_dict()[DFT]


def test_references_are_the_composites(base, batch):
    """The trainer's refit sets the composite's references: the correction holds fitted − base,
    and the model moves by exactly the change of the references."""
    model = DeltaModel.from_base(base, DFT, CC)
    before = model(batch, head=CC, forces=False)["energy"]
    fitted = {"H": -13.0, "C": -1028.0, "N": -1484.5, "O": -2041.0}
    model.set_reference_energies(CC, fitted)
    assert model.reference_energies_dict()[CC] == pytest.approx({1: -13.0, 6: -1028.0, 7: -1484.5, 8: -2041.0})
    delta_refs = model.delta.reference_energies_dict()[CC]
    assert delta_refs[1] == pytest.approx(-13.0 + 13.6) and delta_refs[8] == pytest.approx(-2041.0 + 2042.0)
    shift = {1: 0.6, 6: 1.0, 7: 0.5, 8: 1.0}
    expected = before + torch.tensor([sum(shift[int(z)] for z in batch.numbers[batch.batch == b])
                                      for b in range(batch.n_structures)], dtype=torch.float64)
    torch.testing.assert_close(model(batch, head=CC, forces=False)["energy"], expected)
    assert base.reference_energies_dict()[DFT][1] == -13.6  # the caller's base is not touched


def test_base_is_frozen_and_named_for_freeze_patterns(base):
    model = DeltaModel.from_base(base, DFT, CC)
    names = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert names == {n for n, _ in model.named_parameters() if n.startswith("base.")} and names
    assert all(p.requires_grad for n, p in model.named_parameters() if n.startswith("delta."))
    assert set(freeze(model, ["base.*"])) == names
    model.train()
    assert model.delta.training and not model.base.training
    assert all(p.requires_grad for p in base.parameters())  # a copy was frozen, not the caller's


def test_round_trip_through_the_model_file(base, batch, tmp_path):
    model = DeltaModel.from_base(base, DFT, CC)
    with torch.no_grad():
        for p in model.delta.parameters():
            p.add_(0.01 * torch.randn_like(p))
    model.set_reference_energies(CC, {"H": -13.0, "C": -1028.0, "N": -1484.5, "O": -2041.0})
    loaded = load_model_file(save_model(model, tmp_path / "delta.safetensors"))
    assert isinstance(loaded, DeltaModel) and loaded.dtype == torch.float64
    assert not any(p.requires_grad for p in loaded.base.parameters())
    torch.testing.assert_close(loaded(batch, head=CC)["energy"], model(batch, head=CC)["energy"], rtol=0, atol=0)
    assert loaded.reference_energies_dict() == model.reference_energies_dict()


def test_config_errors():
    with pytest.raises(UserError, match="base_head 'ccsdt_cbs' is not a head"):
        DeltaConfig(base=dict(SMALL), base_head="ccsdt_cbs")
    with pytest.raises(UserError, match="does not cover elements S"):
        DeltaConfig(base=dict(SMALL), elements=[1, 6, 16])
    with pytest.raises(UserError, match="delta: .*no_such_option"):
        DeltaConfig(base=dict(SMALL), delta={"name": "ani", "no_such_option": 1})
    with pytest.raises(UserError, match="unknown model 'nope'"):
        DeltaConfig(base={"name": "nope"})
    config = DeltaConfig(base={**SMALL, "elements": [1, 6, 8], "hidden": None})
    assert config.elements == [1, 6, 8] and config.delta["hidden"] == {s: [32, 16] for s in "HCO"}


def test_kept_base_head_answers_exactly_as_the_frozen_base(base, batch, tmp_path):
    from foundation.hub.format import load_model_file, save_model

    model = DeltaModel.from_base(base, DFT, CC, dict(SMALL), keep_base_head=True)
    with torch.no_grad():  # a trained correction: the CC head moves away from the base
        for p in model.delta.parameters():
            p.add_(0.05)
    assert model.heads == [CC, DFT]
    reloaded = load_model_file(save_model(model, tmp_path / "delta.safetensors")).double()
    for m in (model, reloaded):
        out, reference = m(batch, head=DFT), base(batch, head=DFT)
        torch.testing.assert_close(out["energy"], reference["energy"], rtol=0, atol=1e-9)
        torch.testing.assert_close(out["forces"], reference["forces"], rtol=0, atol=1e-9)
        assert m.reference_energies_dict()[DFT] == base.reference_energies_dict()[DFT]
        both = m.atomic_energies(batch, [DFT, CC])
        torch.testing.assert_close(both[:, 1], m.atomic_energies(batch, [CC])[:, 0])
        assert not torch.allclose(both[:, 0], both[:, 1])
    with pytest.raises(UserError, match="frozen base's"):
        model.set_reference_energies(DFT, {"H": -13.0})
