"""How a published ANI network set becomes our `ANI` model; shared by the TorchANI and the
NeuroChem importers (the same published ensembles reach us in both forms).

- units: the published networks output Hartree, we eV: the final layer of every element network
  and the self energies are multiplied by `HARTREE_TO_EV`; the hidden layers are unchanged.
- our ANI computes NN_Z(AEV) - NN_Z(0), so a member's reference energy of element Z is the
  published self energy plus NN_Z(0) of that member (evaluated in float64): energies agree exactly.
- element order is kept (it fixes the AEV layout: H, C, N, O for 1x; H, C, N, O, S, F, Cl for 2x).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence

import torch

from foundation.errors import UserError
from foundation.models.ani import ANI, ANIConfig
from foundation.units import HARTREE_TO_EV

Layers = Mapping[str, Sequence[tuple[torch.Tensor, torch.Tensor]]]  # symbol -> [(weight, bias)], output last


def check_aev_constants(options: dict, found: Mapping[str, torch.Tensor], where: str, atol: float = 1e-5) -> None:
    """Rebuild the shifts and sections our AEV derives from `options` (ANIConfig fields) and
    compare them with the published ones (`radial_shifts`, `angular_shifts`, `angular_sections`)."""
    config = ANIConfig(elements=[1], hidden={"H": [1]}, **options)
    aev = ANI(config).aev
    rebuilt = {"radial_shifts": aev.radial.shifts, "angular_shifts": aev.angular.shifts,
               "angular_sections": aev.angular.sections}
    for name, tensor in rebuilt.items():
        theirs = torch.as_tensor(found[name], dtype=torch.float64).reshape(-1)
        if tensor.shape != theirs.shape or not torch.allclose(tensor.double(), theirs, rtol=0, atol=atol):
            raise UserError(f"{where}: AEV {name} {theirs.tolist()} are not evenly spaced as ANI's; "
                            "this AEV cannot be converted")


def ani_member(config: ANIConfig, layers: Layers, self_energies: Sequence[float], head: str, where: str) -> ANI:
    """One `ANI` network set from its element networks and self energies (Hartree, in
    `config.elements` order), in the dtype of the given weights, eval mode."""
    model = ANI(config)
    dtype = next(iter(layers.values()))[0][0].dtype
    model = model.to(dtype)
    in_dim = model.aev.out_dim
    weights = {}
    for sym, stack in layers.items():
        if stack[0][0].shape[1] != in_dim:
            raise UserError(f"{where}: network {sym} takes {stack[0][0].shape[1]} features, the AEV gives {in_dim}")
        for k, (w, b) in enumerate(stack[:-1]):
            weights[f"networks.{sym}.layers.{2 * k}.weight"] = w
            weights[f"networks.{sym}.layers.{2 * k}.bias"] = b
        w, b = stack[-1]
        if w.shape[0] != 1:
            raise UserError(f"{where}: network {sym} has {w.shape[0]} outputs; ANI energy networks have 1")
        weights[f"networks.{sym}.heads.{head}.weight"] = w * HARTREE_TO_EV
        weights[f"networks.{sym}.heads.{head}.bias"] = b * HARTREE_TO_EV
    missing = set(model.state_dict()) - set(weights) - {"reference_energies"}
    if missing:
        raise UserError(f"{where}: no weights for {sorted(missing)[:3]}")
    model.load_state_dict({**weights, "reference_energies": model.reference_energies}, strict=True)
    with torch.no_grad():  # NN_Z(0), which our ANI subtracts, folded into the reference energy
        for k, net in enumerate(model.networks.values()):  # in config.elements order
            zero = copy.deepcopy(net).double()(torch.zeros(1, in_dim, dtype=torch.float64))[0, 0]
            model.reference_energies[0, k] = self_energies[k] * HARTREE_TO_EV + float(zero)
    return model.eval()
