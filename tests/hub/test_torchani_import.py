"""TorchANI -> Foundation conversion, checked against real TorchANI models with random weights
(built with TorchANI's own Assembler exactly as its ANI1x / ANI2x builders do, minus the weight
download): the converted model gives the same energies, forces and ensemble spread."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
import torch
from ase.build import molecule

from foundation.data.batch import collate
from foundation.data.sample import Sample
from foundation.errors import UserError
from foundation.models.ani import ANI
from foundation.models.ensemble import EnsembleModel
from foundation.units import HARTREE_TO_EV

os.environ.setdefault("TORCHANI_NO_WARN_EXTENSIONS", "1")
torchani = pytest.importorskip("torchani")


def build_torchani(kind: str, members: int, seed: int = 0):
    """TorchANI's `ANI1x()` / `ANI2x()` architecture with random weights (no download)."""
    from torchani.arch import Assembler
    from torchani.utils import SYMBOLS_1X, SYMBOLS_2X

    torch.manual_seed(seed)
    asm = Assembler(periodic_table_index=True)
    asm.set_symbols(SYMBOLS_1X if kind == "ani1x" else SYMBOLS_2X)
    asm.set_global_cutoff_fn("cosine")
    asm.set_aev_computer(radial=kind, angular=kind, strategy="pyaev")
    asm.set_atomic_networks(ctor=kind)
    asm.set_neighborlist("all_pairs")
    asm.set_gsaes_as_self_energies("wb97x-631gd")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return asm.assemble(members)


def _structures(names, seed=1):
    out = []
    for k, name in enumerate(names):
        atoms = molecule(name)
        atoms.rattle(0.05, seed=seed + k)
        out.append(atoms)
    return out


def _torchani_predict(model, atoms, periodic=False):
    """Energies (eV), forces (eV/Å) and, for ensembles, member energies (members,) eV."""
    z = torch.tensor(atoms.numbers)[None]
    x = torch.tensor(atoms.positions, dtype=torch.float64)[None].requires_grad_(True)
    extra = dict(cell=torch.tensor(np.array(atoms.cell)), pbc=torch.tensor([True] * 3)) if periodic else {}
    energy = model((z, x), **extra).energies
    (grad,) = torch.autograd.grad(energy.sum(), x)
    members = model((z, x), ensemble_values=True, **extra).energies[:, 0] if len(model) > 1 else None
    return float(energy.detach()) * HARTREE_TO_EV, -grad[0] * HARTREE_TO_EV, members


def _ours(model, atoms):
    sample = Sample(atoms.numbers, atoms.positions, cell=np.array(atoms.cell), pbc=atoms.pbc)
    return model(collate([sample], dtype=torch.float64))


def _assert_same(theirs, ours, atoms, name):
    energy, forces, members = _torchani_predict(theirs, atoms, periodic=atoms.pbc.any())
    out = _ours(ours, atoms)
    assert float(out["energy"].detach()) == pytest.approx(energy, rel=1e-5), name
    scale = float(forces.abs().max())
    torch.testing.assert_close(out["forces"], forces, rtol=0, atol=1e-5 * scale, msg=name)
    if members is not None:
        spread = float(members.detach().std()) * HARTREE_TO_EV
        assert float(out["energy_std"]) == pytest.approx(spread, rel=1e-5), name


def test_ani1x_ensemble_converts_exactly():
    from foundation.hub.ani.from_torchani import from_torchani

    theirs = build_torchani("ani1x", members=2)
    ours = from_torchani(theirs, head="wb97x_631gs")
    assert isinstance(ours, EnsembleModel) and len(ours.members) == 2
    assert ours.elements == [1, 6, 7, 8] and ours.heads == ["wb97x_631gs"]
    theirs, ours = theirs.double(), ours.double()
    for atoms in _structures(["CH3CH2OH", "CH3CONH2", "HCN"]):
        _assert_same(theirs, ours, atoms, atoms.get_chemical_formula())
    periodic = molecule("CH3OH")
    periodic.center(vacuum=1.0)  # a ~4 Å box: smaller than the 5.2 Å cutoff, images matter
    periodic.pbc = True
    _assert_same(theirs, ours, periodic, "periodic CH3OH")


def test_ani2x_single_network_with_s_f_cl():
    from foundation.hub.ani.from_torchani import from_torchani

    theirs = build_torchani("ani2x", members=1, seed=3)
    ours = from_torchani(theirs)
    assert isinstance(ours, ANI) and ours.elements == [1, 6, 7, 8, 16, 9, 17]
    theirs, ours = theirs.double(), ours.double()
    for atoms in _structures(["CH3SH", "CH3Cl", "CF4", "SO2"]):
        _assert_same(theirs, ours, atoms, atoms.get_chemical_formula())


def test_legacy_state_dict_and_file_round_trip(tmp_path):
    import foundation
    from foundation.hub.ani.from_torchani import convert_state_dict, import_torchani

    theirs = build_torchani("ani1x", members=2, seed=5)
    legacy = convert_state_dict(theirs.legacy_state_dict())  # cutoffs inferred from the shifts
    assert legacy.cutoff == pytest.approx(5.2) and legacy.members[0].config.angular_cutoff == pytest.approx(3.5)
    torch.save(theirs.state_dict(), tmp_path / "ani.pt")
    out = import_torchani(tmp_path / "ani.pt", tmp_path / "ani.safetensors", head="ccsdt_cbs")
    loaded = foundation.load_pretrained(out, device="cpu")
    assert loaded.heads == ["ccsdt_cbs"]
    theirs = theirs.double()
    for model in (legacy.double(), loaded.double()):
        for atoms in _structures(["CH4", "H2CO"]):
            _assert_same(theirs, model, atoms, atoms.get_chemical_formula())


def test_not_a_torchani_state_dict_is_a_clear_error(tmp_path):
    from foundation.hub.ani.from_torchani import convert_state_dict, from_torchani, load_torchani

    with pytest.raises(UserError, match="no TorchANI element networks"):
        convert_state_dict({"weight": torch.zeros(3)})
    state = build_torchani("ani1x", members=1).state_dict()
    del state["energy_shifter.self_energies"]
    with pytest.raises(UserError, match="self_energies"):
        convert_state_dict(state)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torchani.arch import simple_ani

        other = simple_ani(("H", "C", "N", "O"), lot="wb97x-631gd")  # GELU, smooth cutoff, xTB repulsion
    with pytest.raises(UserError, match="only ANI-1x/2x-style models"):
        from_torchani(other)
    with pytest.raises(UserError, match="extra potentials repulsion_xtb"):
        convert_state_dict(other.state_dict())
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="junk.pt: not a TorchANI state dict"):
        load_torchani(tmp_path / "junk.pt")
    with pytest.raises(UserError, match="neither a file nor a TorchANI model name"):
        load_torchani(tmp_path / "missing.pt")
