"""MACE through mace-torch (`model=mace`): the shared physics suite, per-head readouts and reference
energies, export, the ASE calculator, and training through `foundation train`.

mace-torch is an optional extra: without it these tests skip (`make test` installs it), except the
one that checks the error a user without it gets."""

import copy
import dataclasses
import sys

import numpy as np
import pytest
import torch
from ase.build import molecule
from ase.calculators.fd import calculate_numerical_forces, calculate_numerical_stress

from foundation.calculators import FoundationCalculator
from foundation.cli.main import main
from foundation.data.batch import collate
from foundation.errors import UserError
from foundation.models import build_model
from foundation.models.mace import MACEConfig
from foundation.models.testing import PotentialModelTests, evaluate, random_crystal, random_molecule, supercell_2x2x2
from foundation.models.mace_torch import installed

HAVE_MACE = installed()
needs_mace = pytest.mark.skipif(not HAVE_MACE, reason="mace-torch not installed: pip install 'foundation-mlip[mace]'")
# e3nn copies its compiled layers (deepcopy) through torch.jit.save/load, which torch 2.10+ flags.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.(save|load)` is deprecated:DeprecationWarning")

HEADS = ["wb97x_631gs", "ccsdt_ccpvdz"]
HCNO = [1, 6, 7, 8]
# Narrow and low-order, for speed on CPU; the physics (equivariance, smoothness, locality) is the same.
TINY = {"hidden_irreps": "8x0e+8x1o", "mlp_irreps": "8x0e", "max_ell": 2, "correlation": 2,
        "radial_mlp": [16], "num_bessel": 6}
# Built without training data, the two settings a run computes from it (`auto`) are given.
FIXED = {"avg_num_neighbors": 8.0, "energy_scale": 1.0}
_BUILT = {}


def tiny(**overrides):
    """A fresh tiny model (building MACE takes seconds: each config is built once, then copied)."""
    config = MACEConfig(**{"heads": list(HEADS), **TINY, **FIXED, **overrides})
    key = repr(dataclasses.asdict(config))
    if key not in _BUILT:
        _BUILT[key] = config.build()
    return copy.deepcopy(_BUILT[key])


def seeded(seed: int = 0, **overrides):
    """A tiny float64 model with perturbed weights (no zero hiding an error) and realistic references."""
    model = tiny(**overrides).double().eval()
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    rng = np.random.default_rng(seed)
    for head in model.heads:
        model.set_reference_energies(head, {z: -1000.0 * rng.uniform(0.5, 2) for z in model.elements})
    return model


def test_without_mace_torch_the_user_is_told_which_extra_to_install(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "mace.modules", None)  # what `import mace.modules` meets without the extra
    with pytest.raises(UserError, match=r"^model=mace needs mace-torch.*pip install 'foundation-mlip\[mace\]'$"):
        MACEConfig(**FIXED).build()
    assert main(["train", "model=mace", "data=embedded", "experiment=smoke", f"out_dir={tmp_path}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'foundation-mlip[mace]'" in err and "Traceback" not in err


@needs_mace
class TestMACEPhysics(PotentialModelTests):
    @pytest.fixture
    def model_factory(self):
        return tiny


@needs_mace
def test_the_body_is_mace_torchs_model_built_as_mace_run_train_builds_it():
    import mace.modules

    from foundation.train.compose import compose_dict

    config = compose_dict(["model=mace"])["model"]
    assert (config["avg_num_neighbors"], config["energy_scale"]) == ("auto", "auto")  # a run computes them
    model = build_model({**config, **FIXED, "elements": ["H", "C", "N", "O"], "heads": HEADS})
    c = model.config
    assert (c.r_max, c.hidden_irreps, c.num_interactions, c.correlation, c.max_ell) == (5.0, "32x0e+32x1o", 2, 3, 3)
    assert type(model.mace) is mace.modules.MACE and model.cutoff == 5.0
    assert [type(i).__name__ for i in model.mace.interactions] == ["RealAgnosticInteractionBlock",
                                                                   "RealAgnosticResidualInteractionBlock"]
    assert len(model.mace.readouts) == 0  # the heads own the readouts
    for head in HEADS:
        assert [type(b).__name__ for b in model.readout.heads[head]] == ["LinearReadoutBlock", "NonLinearReadoutBlock"]
    assert str(model.readout.heads[HEADS[1]][1].hidden_irreps) == "16x0e"


@needs_mace
def test_supercell_2x2x2_has_eight_times_the_energy():
    model = seeded(1)
    crystal = random_crystal(np.random.default_rng(6), HCNO, 3)  # cell shorter than r_max: many images
    energy, forces = evaluate(model, [crystal])
    e8, f8 = evaluate(model, [supercell_2x2x2(crystal)])
    np.testing.assert_allclose(e8 / 8, energy, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(f8, np.tile(forces, (8, 1)), rtol=0, atol=1e-9)


@needs_mace
def test_each_head_has_its_own_readouts_and_reference_energies_and_freezes_by_pattern():
    from foundation.train.freeze import freeze

    model = seeded(2)
    names = dict(model.named_parameters())
    assert "mace.node_embedding.linear.weight" in names and "mace.interactions.0.linear_up.weight" in names
    for head in HEADS:
        assert {f"readout.heads.{head}.0.linear.weight", f"readout.heads.{head}.1.linear_2.weight"} <= set(names)
    sample = random_molecule(np.random.default_rng(7), HCNO, 7)
    refs = model.reference_energies_dict()
    learned = {h: evaluate(model, [sample], h)[0] - sum(refs[h][int(z)] for z in sample.numbers) for h in HEADS}
    assert learned[HEADS[0]] != pytest.approx(learned[HEADS[1]])

    # A head's references move that head's energies by exactly their sum, and no other head's.
    model.set_reference_energies("ccsdt_ccpvdz", {"C": refs["ccsdt_ccpvdz"][6] + 0.25})
    n_carbon = int((sample.numbers == 6).sum())
    np.testing.assert_allclose(evaluate(model, [sample], "ccsdt_ccpvdz")[0],
                               learned["ccsdt_ccpvdz"] + sum(refs["ccsdt_ccpvdz"][int(z)] for z in sample.numbers)
                               + 0.25 * n_carbon, rtol=1e-13)
    np.testing.assert_array_equal(evaluate(model, [sample], "wb97x_631gs")[0],
                                  learned["wb97x_631gs"] + sum(refs["wb97x_631gs"][int(z)] for z in sample.numbers))

    # A head's own readout moves that head only.
    with torch.no_grad():
        model.readout.heads["ccsdt_ccpvdz"][1].linear_2.weight.mul_(2.0)
    energy_dft = evaluate(model, [sample], "wb97x_631gs")[0]
    np.testing.assert_array_equal(energy_dft - sum(refs["wb97x_631gs"][int(z)] for z in sample.numbers),
                                  learned["wb97x_631gs"])

    # ANI-1ccx-style transfer: freeze the embedding and the first layer, train the rest.
    frozen = freeze(model, ["mace.node_embedding.*", "mace.interactions.0.*", "mace.products.0.*"])
    assert frozen and all(n.startswith(("mace.node_embedding.", "mace.interactions.0.", "mace.products.0."))
                          for n in frozen)
    batch = collate([sample], fidelities=[], dtype=torch.float64)
    model(batch, head="ccsdt_ccpvdz", forces=False)["energy"].sum().backward()
    assert all(p.grad is None for n, p in model.named_parameters() if n in frozen)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for n, p in names.items() if n.startswith("mace.products.1"))


@needs_mace
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_export_and_reload_are_bit_exact(tmp_path, dtype):
    from foundation.hub.format import load_model_file, read_header, save_model

    model = seeded(3).to(dtype)
    model.add_head("mp2_ccpvdz", copy_from="ccsdt_ccpvdz")
    model.add_head("fresh")
    path = save_model(model, tmp_path / "mace.safetensors")
    header = read_header(path)
    assert header["model"] == "mace" and header["cutoff"] == 5.0 and list(header["heads"]) == model.heads
    assert header["config"]["hidden_irreps"] == "8x0e+8x1o"
    loaded = load_model_file(path)
    assert type(loaded) is type(model) and loaded.dtype == dtype and loaded.heads == model.heads
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    rng = np.random.default_rng(8)
    samples = [random_molecule(rng, HCNO, 7), random_crystal(rng, HCNO, 3)]
    for head in model.heads:
        e1, f1 = evaluate(model, samples, head)
        e2, f2 = evaluate(loaded, samples, head)
        np.testing.assert_array_equal(e2, e1)
        np.testing.assert_array_equal(f2, f1)


@needs_mace
def test_float32_batches_and_inference_without_grad_mode():
    model = seeded(4)
    sample = random_molecule(np.random.default_rng(9), HCNO, 6)
    energy64, forces64 = evaluate(model, [sample])
    model.float()
    batch = collate([sample], fidelities=[])  # float32 positions
    with torch.no_grad():
        out = model(batch)
    assert out["energy"].dtype == torch.float64 and out["forces"].dtype == torch.float32
    assert not out["forces"].requires_grad and not batch.positions.requires_grad  # the caller's batch untouched
    np.testing.assert_allclose(out["energy"].detach().numpy(), energy64, rtol=0, atol=1e-3)
    np.testing.assert_allclose(out["forces"].numpy(), forces64, rtol=0, atol=1e-4)
    assert "forces" not in model(batch, forces=False)


@needs_mace
def test_ase_calculator_forces_stress_and_per_atom_energies():
    model = seeded(5)
    atoms = molecule("CH3CH2OH")
    atoms.rattle(0.05, seed=0)
    atoms.calc = FoundationCalculator(model, head="ccsdt_ccpvdz", device="cpu")
    forces = atoms.get_forces()
    np.testing.assert_allclose(forces, calculate_numerical_forces(atoms, eps=1e-4), rtol=0,
                               atol=1e-6 * max(1.0, np.abs(forces).max()))
    assert np.abs(forces).max() > 1e-3
    np.testing.assert_allclose(atoms.get_potential_energies().sum(), atoms.get_potential_energy(), rtol=1e-14)

    box = molecule("CH3OH")
    box.set_cell([[4.6, 0.0, 0.0], [0.5, 4.4, 0.0], [0.3, -0.4, 4.8]])  # shorter than r_max: images
    box.pbc = True
    box.rattle(0.02, seed=1)
    box.calc = FoundationCalculator(model, device="cpu")
    stress = box.get_stress()
    np.testing.assert_allclose(stress, calculate_numerical_stress(box, eps=1e-5), rtol=0,
                               atol=1e-6 * max(1.0, np.abs(stress).max()))


@needs_mace
def test_foundation_train_model_mace_on_the_embedded_data_trains_exports_and_loads(tmp_path, capsys):
    from foundation.hub.format import load_model_file

    args = ["train", "model=mace", "data=embedded", "experiment=smoke", f"out_dir={tmp_path}", "name=mace",
            "trainer.max_steps=3", "trainer.val_every=3", "trainer.ckpt_every=3", "trainer.val_at_start=false"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "model: mace" in out and "completed at step 3" in out
    model = load_model_file(tmp_path / "mace" / "model.safetensors")
    embedded = ["ccsdt_ccpvdz", "mp2_ccpvdz", "wb97x_631gs"]  # data=embedded trains every label set it holds
    assert model.config.name == "mace" and sorted(model.heads) == embedded
    assert all(v != 0.0 for h in embedded for v in model.reference_energies_dict()[h].values())  # fitted per head


@needs_mace
def test_resume_continues_exactly_like_an_uninterrupted_run(tmp_path, xyz_path):
    from safetensors.torch import load_file

    from foundation.train.config import LoggerConfig, RunConfig, TrainerConfig
    from foundation.train.trainer import Trainer
    from tests.conftest import TINY_TRAINER, file_data

    def run(name, resume=False):
        model = {"name": "mace", "elements": HCNO, **TINY}
        trainer = TrainerConfig(**{**TINY_TRAINER, "max_steps": 4, "val_every": 2, "ckpt_every": 10})
        return Trainer(RunConfig(model=model, data=file_data(xyz_path), trainer=trainer, resume=resume,
                                 logger=LoggerConfig(progress_bar=False), name=name, out_dir=str(tmp_path)))

    straight = run("straight")
    straight.train()
    assert run("split").train(stop_at=2).status == "interrupted"
    second = run("split", resume=True)
    assert second.resumed_from == 2
    second.train()
    a, b = load_file(tmp_path / "straight" / "model.safetensors"), load_file(tmp_path / "split" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@needs_mace
def test_foundation_finetune_from_a_mace_file_trains_every_layer_its_measured_default(tmp_path, molecules_xyz, capsys):
    from safetensors.torch import load_file

    from foundation.hub.format import save_model

    start = save_model(seeded(6).float(), tmp_path / "start.safetensors")
    xyz, _ = molecules_xyz(n_molecules=4, n_conformers=4)
    out = tmp_path / "tuned.safetensors"
    assert main(["finetune", "--model", str(start), "--data", str(xyz), "--energy-key", "REF_energy",
                 "--forces-key", "REF_forces", "--fidelity", "user", "--out", str(out), "--allow-worse",
                 "trainer.max_steps=4", "trainer.val_every=2", "trainer.device=cpu", f"out_dir={tmp_path}",
                 "name=ft"]) == 0
    assert "(frozen: none)" in capsys.readouterr().out  # MACE.transfer_freeze = (): measured best
    before, after = load_file(start), load_file(out)
    for name in ("mace.interactions.0.linear_up.weight", "mace.products.1.linear.weight"):
        assert not torch.equal(after[name], before[name]), name
    assert "readout.heads.user.1.linear_2.weight" in after


@pytest.mark.parametrize("overrides, message", [
    ({"r_max": 0.0}, "r_max"), ({"r_max": "far"}, "r_max"), ({"num_interactions": 0}, "num_interactions"),
    ({"correlation": 2.5}, "correlation"), ({"max_ell": True}, "max_ell"), ({"radial_mlp": []}, "radial_mlp"),
    ({"avg_num_neighbors": -1}, "avg_num_neighbors"), ({"use_reduced_cg": "yes"}, "use_reduced_cg"),
    ({"elements": ["H", "Xx"]}, "Xx"), ({"heads": ["wb97x.631gs"]}, "head name"),
])
def test_config_errors_are_user_errors(overrides, message):
    with pytest.raises(UserError, match=message):
        MACEConfig(**overrides)


@needs_mace
@pytest.mark.parametrize("overrides, message", [
    ({"hidden_irreps": "32x0q"}, "hidden_irreps='32x0q' is not an irreps string"),
    ({"interaction": "Nope"}, "interaction='Nope' is not one of mace-torch's"),
    ({"gate": "relu6"}, "gate='relu6'"),
])
def test_bad_mace_choices_are_named_when_built(overrides, message):
    with pytest.raises(UserError, match=message):
        MACEConfig(**{**TINY, **FIXED, **overrides}).build()
