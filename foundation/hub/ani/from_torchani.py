"""Convert a TorchANI model (ANI-1x, ANI-1ccx, ANI-2x; one network set or an ensemble) into our
ANI model, so its predictions can be evaluated, run and fine-tuned here.

What changes on the way (units, NN(0) folded into the reference energies, element order) is
in `foundation.hub.ani.weights`, shared with the NeuroChem reader (`foundation.hub.ani.neurochem`).

A state-dict file cannot say which activation or cutoff function it was trained with: CELU(0.1)
and the cosine cutoff of ANI-1x/2x are assumed (`from_torchani` on a module checks them).
Accepted state dicts: `ANI.state_dict()` of TorchANI 2 (`potentials.nnp.neural_networks.members.
0.atomics.H.layers.0.weight`, ...) and the legacy layout of `legacy_state_dict()` / TorchANI 1
(`neural_networks.0.H.0.weight`, `aev_computer.ShfR`, ...). Files are read with weights_only=True.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from pathlib import Path

import torch

from foundation.data.elements import atomic_number
from foundation.errors import UserError
from foundation.hub.ani.weights import ani_member as _member
from foundation.hub.ani.weights import check_aev_constants
from foundation.models.ani import ANIConfig
from foundation.models.base import PotentialModel
from foundation.models.ensemble import EnsembleModel

# TorchANI's builders and the fidelity their weights were trained on (DESIGN.md names).
TORCHANI_MODELS = {"ANI1x": "wb97x_631gs", "ANI2x": "wb97x_631gs", "ANI1ccx": "ccsdt_cbs"}

_NETWORK = re.compile(r"^neural_networks\.(?:members\.)?(?:(\d+)\.)?(?:atomics\.)?([A-Z][a-z]?)\."
                      r"(?:layers\.)?(\d+|final_layer)\.(weight|bias)$")
_AEV_KEYS = {  # ours: (TorchANI 2 name, legacy name)
    "radial_eta": ("radial.eta", "EtaR"), "radial_shifts": ("radial.shifts", "ShfR"),
    "angular_eta": ("angular.eta", "EtaA"), "angular_zeta": ("angular.zeta", "Zeta"),
    "angular_shifts": ("angular.shifts", "ShfA"), "angular_sections": ("angular.sections", "ShfZ"),
}


def from_torchani(model: torch.nn.Module, head: str = "wb97x_631gs") -> PotentialModel:
    """Our model equal to a TorchANI `ANI` module (cutoffs read from its AEV computer). Refuses
    what our ANI cannot represent: other activations or cutoff functions, extra potentials."""
    aev = model.aev_computer
    kinds = {type(m).__name__ for m in model.modules()}
    odd = sorted(kinds & {"GELU", "ReLU", "SiLU", "Softplus", "Tanh", "CutoffSmooth", "RepulsionXTB",
                          "TwoBodyDispersionD3", "SingleNN", "ANISharedNetworks"})
    if odd or type(aev.radial.cutoff_fn).__name__ != "CutoffCosine":
        raise UserError(f"TorchANI model uses {', '.join(odd) or type(aev.radial.cutoff_fn).__name__}; only "
                        "ANI-1x/2x-style models (CELU networks, cosine cutoff, no extra potentials) convert")
    return convert_state_dict(model.state_dict(), head, radial_cutoff=float(aev.radial.cutoff),
                              angular_cutoff=float(aev.angular.cutoff))


def convert_state_dict(state_dict: Mapping[str, torch.Tensor], head: str = "wb97x_631gs", *,
                       self_energies: Mapping[str, float] | None = None, radial_cutoff: float | None = None,
                       angular_cutoff: float | None = None, where: str = "state dict") -> PotentialModel:
    """An `ANI` (one member) or `EnsembleModel` from a TorchANI state dict. `self_energies`
    (symbol -> Hartree) replaces the file's; cutoffs are inferred from the shifts when not given."""
    extra = sorted({k.split(".")[1] for k in state_dict if k.startswith("potentials.")} - {"nnp", "2"})
    if extra:
        raise UserError(f"{where}: extra potentials {', '.join(extra)} that our ANI model does not have")
    sd = {_strip_prefix(k): v for k, v in state_dict.items() if isinstance(v, torch.Tensor)}
    members = _networks(sd, where)
    symbols = list(next(iter(members.values())))
    if "atomic_numbers" in sd and [int(z) for z in sd["atomic_numbers"]] != [atomic_number(s) for s in symbols]:
        raise UserError(f"{where}: atomic_numbers {sd['atomic_numbers'].tolist()} disagree with the networks {symbols}")
    shift = _self_energies(sd, symbols, self_energies, where)
    config = ANIConfig(elements=symbols, heads=[head], celu_alpha=0.1,
                       hidden={s: [w.shape[0] for w, _ in layers[:-1]] for s, layers in members[min(members)].items()},
                       **_aev_options(sd, radial_cutoff, angular_cutoff, where))
    models = [_member(config, layers, shift, head, f"{where} member {m}") for m, layers in sorted(members.items())]
    return models[0] if len(models) == 1 else EnsembleModel.from_members(models)


def load_torchani(source: str | os.PathLike, head: str | None = None) -> tuple[PotentialModel, str]:
    """(model, head) from a TorchANI state-dict file (`.pt`) or a TorchANI builder name (`ANI1x`,
    `ANI1ccx`, `ANI2x`; TorchANI downloads those weights itself)."""
    name = str(source)
    if name in TORCHANI_MODELS:
        import torchani.models

        head = head or TORCHANI_MODELS[name]
        return from_torchani(getattr(torchani.models, name)(), head), head
    path = Path(name).expanduser()
    if not path.is_file():
        raise UserError(f"{name}: neither a file nor a TorchANI model name ({', '.join(TORCHANI_MODELS)})")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for foreign or pickled-object files
        raise UserError(f"{path}: not a TorchANI state dict readable without unpickling objects "
                        f"({type(e).__name__})") from None
    if isinstance(state, Mapping) and not any(isinstance(v, torch.Tensor) for v in state.values()):
        state = state.get("state_dict") or state.get("model") or state
    if not isinstance(state, Mapping):
        raise UserError(f"{path}: expected a state dict (name -> tensor), got {type(state).__name__}")
    head = head or "wb97x_631gs"
    return convert_state_dict(state, head, where=str(path)), head


def import_torchani(source: str | os.PathLike, out: str | os.PathLike, head: str | None = None) -> Path:
    """Convert `source` (see `load_torchani`) and write it as a Foundation `.safetensors` file."""
    from importlib.metadata import PackageNotFoundError, version

    from foundation.hub.format import save_model

    model, head = load_torchani(source, head)
    try:
        torchani_version = version("torchani")
    except PackageNotFoundError:  # a state-dict file converts without TorchANI installed
        torchani_version = None
    provenance = {"converted_from": str(source), "converter": "foundation.hub.ani.from_torchani",
                  "torchani_version": torchani_version, "units_converted": "Hartree -> eV"}
    return save_model(model.eval(), out, metadata={"provenance": provenance})


def _strip_prefix(key: str) -> str:
    for prefix in ("potentials.nnp.", "potentials.2.", "module."):
        if key.startswith(prefix):
            return key[len(prefix):]
    return key


def _networks(sd: dict, where: str) -> dict[int, dict[str, list[tuple[torch.Tensor, torch.Tensor]]]]:
    """member -> symbol (file order) -> [(weight, bias)] in layer order, the output layer last."""
    found: dict[int, dict[str, dict[float, dict[str, torch.Tensor]]]] = {}
    for key, value in sd.items():
        m = _NETWORK.match(key)
        if m:
            member, sym, layer, kind = m.groups()
            index = math.inf if layer == "final_layer" else int(layer)
            found.setdefault(int(member or 0), {}).setdefault(sym, {}).setdefault(index, {})[kind] = value
    if not found:
        raise UserError(f"{where}: no TorchANI element networks found (keys like "
                        "'neural_networks.members.0.atomics.H.layers.0.weight')")
    result = {}
    for member, nets in found.items():
        result[member] = {}
        for sym, layers in nets.items():
            if any(set(p) != {"weight", "bias"} for p in layers.values()):
                raise UserError(f"{where}: network {sym} of member {member} has layers without bias; "
                                "only ANI-style networks (Linear with bias + CELU) convert")
            result[member][sym] = [(layers[i]["weight"], layers[i]["bias"]) for i in sorted(layers)]
    shapes = {m: {s: [tuple(w.shape) for w, _ in ls] for s, ls in nets.items()} for m, nets in result.items()}
    if len({repr(s) for s in shapes.values()}) != 1:
        raise UserError(f"{where}: ensemble members have different architectures")
    return result


def _self_energies(sd: dict, symbols: list[str], given: Mapping[str, float] | None, where: str) -> list[float]:
    if given is not None:
        missing = [s for s in symbols if s not in given]
        if missing:
            raise UserError(f"{where}: self energies missing for {missing}")
        return [float(given[s]) for s in symbols]
    values = sd.get("energy_shifter.self_energies")
    if values is None:
        raise UserError(f"{where}: no energy_shifter.self_energies in the state dict; give them "
                        "(Hartree per element) with self_energies=")
    if len(values) != len(symbols):
        raise UserError(f"{where}: {len(values)} self energies for {len(symbols)} elements {symbols}")
    return [float(v) for v in values]


def _aev_options(sd: dict, radial_cutoff: float | None, angular_cutoff: float | None, where: str) -> dict:
    p = {}
    for ours, names in _AEV_KEYS.items():
        tensor = next((sd[f"aev_computer.{n}"] for n in names if f"aev_computer.{n}" in sd), None)
        if tensor is None:
            raise UserError(f"{where}: AEV parameter aev_computer.{names[0]} is missing")
        p[ours] = tensor.detach().double().reshape(-1)
    r, a = p["radial_shifts"], p["angular_shifts"]
    options = dict(radial_eta=float(p["radial_eta"][0]), radial_start=_round(r[0]), radial_num_shifts=len(r),
                   radial_cutoff=radial_cutoff or _infer_cutoff(r),
                   angular_eta=float(p["angular_eta"][0]), angular_zeta=float(p["angular_zeta"][0]),
                   angular_start=_round(a[0]), angular_num_shifts=len(a),
                   angular_cutoff=angular_cutoff or _infer_cutoff(a), angular_num_sections=len(p["angular_sections"]))
    check_aev_constants(options, p, where)
    return options


def _infer_cutoff(shifts: torch.Tensor) -> float:
    # ANI places n shifts evenly from the start up to (excluding) the cutoff.
    if len(shifts) < 2:
        raise UserError("cannot infer the AEV cutoff from a single shift; pass the cutoffs")
    return _round(shifts[0] + len(shifts) * (shifts[1] - shifts[0]))


def _round(value) -> float:
    return round(float(value), 4)  # the stored float32 shifts carry ~1e-7 noise
