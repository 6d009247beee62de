"""The published ANI ensembles read from their neurochem files (../shared/ani-model-zoo) equal
TorchANI's models built from the same files (`torchani.neurochem`), energies and forces to 1e-6 eV
(float64), for ANI-1x, ANI-1ccx and ANI-2x; the shipped conversions are those files; the
`hub import-neurochem` command and what a damaged or foreign model folder gives."""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from ase.build import molecule

from foundation.data.batch import collate
from foundation.data.sample import Sample
from foundation.errors import UserError
from foundation.hub.format import read_header
from foundation.hub.ani.from_neurochem import load_neurochem
from foundation.models.ani import ANI
from foundation.models.ensemble import EnsembleModel
from foundation.units import HARTREE_TO_EV

ZOO = Path(__file__).resolve().parents[2].parent / "shared" / "ani-model-zoo"
RESOURCES = ZOO / "resources"
pytestmark = pytest.mark.skipif(not RESOURCES.is_dir(), reason=f"the published ANI files are not at {ZOO} "
                                                                "(the project's shared/ folder beside the repository)")
MOLECULES = {"ani-1x_8x": ["CH3CH2OH", "HCN", "CH3CONH2"], "ani-1ccx_8x": ["CH3CH2OH", "HCOOH"],
             "ani-2x_8x": ["CH3SH", "CH3Cl", "CF4", "SO2"]}


def torchani_model(name: str, member: int | None = None):
    """TorchANI's model from the zoo's files, in float64. Its self energies are kept as float32
    buffers by TorchANI (~1e-4 eV off the file's values); they are put back from the file."""
    os.environ.setdefault("TORCHANI_NO_WARN_EXTENSIONS", "1")
    neurochem = pytest.importorskip("torchani.neurochem")
    from torchani.arch import ANI as TorchANI
    from torchani.sae import SelfEnergy

    const, sae, prefix, size = (RESOURCES / f"{name}.info").read_text().split()[:4]
    info = neurochem.NeurochemInfo(RESOURCES / sae, RESOURCES / const, RESOURCES / prefix, int(size))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        aev, networks, energies, symbols = neurochem.modules_from_info(info, member)
        model = TorchANI(symbols, aev, networks, energies, periodic_table_index=True).double()
    values = [float(line.split("=")[1]) for line in (RESOURCES / sae).read_text().splitlines() if "=" in line]
    for module in model.modules():
        if isinstance(module, SelfEnergy):
            module.self_energies = torch.tensor(values, dtype=torch.float64)
    return model


def _structures(name: str) -> list:
    out = []
    for k, formula in enumerate(MOLECULES[name]):
        atoms = molecule(formula)
        atoms.rattle(0.05, seed=k)
        out.append(atoms)
    return out


def _theirs(model, atoms):
    z = torch.tensor(atoms.numbers)[None]
    x = torch.tensor(atoms.positions, dtype=torch.float64)[None].requires_grad_(True)
    energy = model((z, x)).energies
    (grad,) = torch.autograd.grad(energy.sum(), x)
    return float(energy.detach()) * HARTREE_TO_EV, -grad[0].detach() * HARTREE_TO_EV


def _ours(model, atoms):
    out = model(collate([Sample(atoms.numbers, atoms.positions)], dtype=torch.float64))
    return float(out["energy"].detach()), out["forces"].detach(), out


# The whole ensemble for ANI-1x; one member (a different one each) for the other two, which is
# the same code path per member and keeps the test at a few seconds.
@pytest.mark.parametrize("name,member", [("ani-1x_8x", None), ("ani-1ccx_8x", 6), ("ani-2x_8x", 5)])
def test_the_published_model_equals_torchani_from_the_same_files(name, member):
    ours, metadata = load_neurochem(RESOURCES / f"{name}.info", member=member, dtype="float64")
    theirs = torchani_model(name, member)
    assert isinstance(ours, EnsembleModel if member is None else ANI)
    assert ours.heads == [("ccsdt_cbs" if "1ccx" in name else "wb97x_631gs")]
    assert ours.elements == ([1, 6, 7, 8, 16, 9, 17] if "2x" in name else [1, 6, 7, 8])
    for atoms in _structures(name):
        energy, forces = _theirs(theirs, atoms)
        our_energy, our_forces, out = _ours(ours, atoms)
        formula = atoms.get_chemical_formula()
        assert abs(our_energy - energy) < 1e-6, (name, formula, our_energy - energy)
        torch.testing.assert_close(our_forces, forces, rtol=0, atol=1e-6, msg=f"{name} {formula}")
        if member is None:
            members = theirs((torch.tensor(atoms.numbers)[None], torch.tensor(atoms.positions)[None]),
                             ensemble_values=True).energies[:, 0] * HARTREE_TO_EV
            assert len(ours.members) == 8 and float(out["energy_std"]) > 0
            torch.testing.assert_close(out["member_energy"][:, 0], members.detach(), rtol=0, atol=1e-6)
    source = metadata["source"]
    assert metadata["license"] == "MIT" and "AIQM" in metadata["attribution"]
    assert source["commit"] == "3a3368bb1b6d3ae707235f7f1dedcbb7b8b8cbc2" and source["files_verified"] > 30


def test_a_model_folder_reads_as_its_info_file():
    by_folder, _ = load_neurochem(RESOURCES / "ani-2x_8x", member=0)
    by_info, _ = load_neurochem(RESOURCES / "ani-2x_8x.info", member=0)
    assert by_folder.state_dict().keys() == by_info.state_dict().keys()
    assert all(torch.equal(v, by_info.state_dict()[k]) for k, v in by_folder.state_dict().items())


@pytest.mark.parametrize("name", ["ani-1x", "ani-1ccx"])
def test_the_shipped_file_is_the_published_model(name):
    from foundation.hub.registry import get_entry
    from foundation.loading import load_pretrained

    entry = get_entry(name)
    shipped = load_pretrained(name, device="cpu")
    fresh, _ = load_neurochem(RESOURCES / f"{entry.neurochem}.info")  # float32, as shipped
    assert shipped.dtype == torch.float32 and shipped.default_head == entry.default_head
    fresh_state = fresh.state_dict()
    for key, value in shipped.state_dict().items():
        assert torch.equal(value, fresh_state[key]), key
    header = read_header(entry.path)
    assert header["license"] == "MIT" and header["source"]["url"].startswith("https://raw.githubusercontent.com/aiqm/")
    assert header["license_text"] == (ZOO / "LICENSE").read_text()
    assert entry.path.stat().st_size < 11_000_000  # 8 x ~327 k float32 weights, nothing else of size


def test_import_neurochem_command(tmp_path, capsys):
    from foundation.cli.main import main
    from foundation.loading import load_pretrained

    out = tmp_path / "one.safetensors"
    assert main(["hub", "import-neurochem", str(RESOURCES / "ani-1ccx_8x.info"), "--member", "2",
                 "--dtype", "float64", "--out", str(out)]) == 0
    assert "licence MIT" in capsys.readouterr().out
    model = load_pretrained(out, device="cpu")
    assert isinstance(model, ANI) and model.dtype == torch.float64 and model.heads == ["ccsdt_cbs"]
    header = read_header(out)
    assert header["provenance"]["members"] == [2] and header["default_head"] == "ccsdt_cbs"
    with pytest.raises(SystemExit) as exit_info:  # argparse names the choices
        main(["hub", "import-neurochem", str(RESOURCES / "ani-1x_8x.info"), "--dtype", "float16"])
    assert exit_info.value.code == 2
    assert main(["hub", "import-neurochem", str(tmp_path / "missing.info")]) == 2
    assert "missing.info: no such neurochem .info file" in capsys.readouterr().err


def _copy_model(tmp_path: Path, name: str = "ani-1x_8x") -> Path:
    root = tmp_path / "zoo"
    shutil.copytree(RESOURCES / name, root / name)
    shutil.copy(RESOURCES / f"{name}.info", root / f"{name}.info")
    for path in root.rglob("*"):
        path.chmod(0o644 if path.is_file() else 0o755)
    return root / f"{name}.info"


def test_a_damaged_or_foreign_model_is_refused_or_not_attributed(tmp_path):
    info = _copy_model(tmp_path)
    layer = info.parent / "ani-1x_8x/train3/networks/ANN-O.nnf-l2.wparam"
    weights = np.frombuffer(layer.read_bytes(), dtype="<f4").copy()
    weights[0] += 0.5
    layer.write_bytes(weights.tobytes())  # the user's own weights: converted, but not called AIQM's
    model, metadata = load_neurochem(info, member=3)
    assert isinstance(model, ANI) and "license" not in metadata and "source" not in metadata
    assert metadata["provenance"]["converted_from"] == str(info)

    layer.write_bytes(weights.tobytes()[:-4])
    with pytest.raises(UserError, match=r"ANN-O.nnf-l2.wparam: 57340 bytes, 14336 declared"):
        load_neurochem(info, member=3)
    (info.parent / "ani-1x_8x/train4/networks/ANN-H.nnf").write_bytes(b"1114=\nnot bz2")
    with pytest.raises(UserError, match="train4/networks/ANN-H.nnf: not a neurochem network file"):
        load_neurochem(info, member=4)
    with pytest.raises(UserError, match="member 8 does not exist; this ensemble has members 0 to 7"):
        load_neurochem(info, member=8)
    renamed = info.with_name("mine.info")
    info.rename(renamed)
    with pytest.raises(UserError, match="which level of theory"):
        load_neurochem(renamed, member=0)
    assert load_neurochem(renamed, member=0, head="wb97x_631gs")[0].heads == ["wb97x_631gs"]
    with pytest.raises(UserError, match="no such neurochem .info file or model folder"):
        load_neurochem(tmp_path / "nothing")
