"""A neurochem model (`foundation.hub.ani.neurochem`) as our model, and as a `.safetensors` file that
carries its licence and attribution.

The head is the fidelity the published networks were trained on, in our method_basis names
(DESIGN.md): ANI-1x and ANI-2x were trained on ωB97X/6-31G(d) labels, the level of our
`wb97x_631gs` (6-31G(d) and 6-31G* are one basis set); ANI-1ccx was transferred to CCSD(T)*/CBS
(DLPNO-CCSD(T) extrapolated to the complete basis set; Smith et al., Nat. Commun. 10, 2903,
2019), named `ccsdt_cbs`.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from pathlib import Path

import torch

from foundation.errors import UserError
from foundation.hub.ani.manifest import attribution, load_manifest
from foundation.hub.ani.weights import ani_member, check_aev_constants
from foundation.hub.ani.neurochem import NeurochemModel, ReadBytes, directory_reader, find_info, read_model
from foundation.models.ani import ANIConfig
from foundation.models.base import PotentialModel
from foundation.models.ensemble import EnsembleModel

# Published model (the .info file's stem without the "_8x") -> the fidelity of its labels.
HEADS = {"ani-1x": "wb97x_631gs", "ani-2x": "wb97x_631gs", "ani-1ccx": "ccsdt_cbs"}
DTYPES = {"float32": torch.float32, "float64": torch.float64}


def head_for(info_name: str) -> str | None:
    """The fidelity of a published model from its .info name (`ani-1ccx_8x.info` -> ccsdt_cbs)."""
    stem = re.sub(r"_\d+x$", "", Path(info_name).stem)
    return HEADS.get(stem)


def to_model(parsed: NeurochemModel, head: str, dtype: torch.dtype = torch.float32,
             where: str = "neurochem model") -> PotentialModel:
    """Our `ANI` (one member) or `EnsembleModel` equal to the parsed networks, in `dtype`."""
    a = parsed.aev
    options = dict(radial_cutoff=a["Rcr"], radial_start=a["ShfR"][0], radial_eta=a["EtaR"],
                   radial_num_shifts=len(a["ShfR"]), angular_cutoff=a["Rca"], angular_start=a["ShfA"][0],
                   angular_eta=a["EtaA"], angular_zeta=a["Zeta"], angular_num_shifts=len(a["ShfA"]),
                   angular_num_sections=len(a["ShfZ"]))
    # The files print the constants to 8 digits: what our AEV derives must agree to that.
    check_aev_constants(options, {"radial_shifts": a["ShfR"], "angular_shifts": a["ShfA"],
                                  "angular_sections": a["ShfZ"]}, where, atol=1e-6)
    first = parsed.members[0]
    config = ANIConfig(elements=list(parsed.symbols), heads=[head], celu_alpha=0.1,
                       hidden={s: [layer.nodes for layer in first[s][:-1]] for s in parsed.symbols}, **options)
    energies = [parsed.self_energies[s] for s in parsed.symbols]
    models = []
    for k, networks in zip(parsed.member_indices, parsed.members):
        if {s: [lay.weights.shape for lay in networks[s]] for s in parsed.symbols} != \
                {s: [lay.weights.shape for lay in first[s]] for s in parsed.symbols}:
            raise UserError(f"{where}: member {k} has another architecture than member {parsed.member_indices[0]}")
        layers = {s: [(torch.from_numpy(layer.weights).to(dtype), torch.from_numpy(layer.biases).to(dtype))
                      for layer in networks[s]] for s in parsed.symbols}
        models.append(ani_member(config, layers, energies, head, f"{where} member {k}"))
    return models[0] if len(models) == 1 else EnsembleModel.from_members(models).eval()


def load_neurochem(path: str | os.PathLike, member: int | None = None, head: str | None = None,
                   dtype: str | torch.dtype = "float32") -> tuple[PotentialModel, dict]:
    """(model, header metadata) from an `.info` file or a model folder."""
    info = find_info(path)
    return convert(directory_reader(info.parent), info.name, member=member, head=head, dtype=dtype,
                   where=str(info))


def convert(read: ReadBytes, info: str, *, member: int | None = None, head: str | None = None,
            dtype: str | torch.dtype = "float32", where: str | None = None,
            manifest: Mapping | None = None) -> tuple[PotentialModel, dict]:
    """(model, header metadata) of the model whose .info file `read` reads as `info`. The
    metadata attribute the model to the published zoo when every file read matches the zoo's
    manifest (`manifest`, default the packaged copy) by sha256."""
    where = where or info
    head = head or head_for(info)
    if head is None:
        raise UserError(f"{where}: which level of theory were these networks trained on? give the "
                        f"head's fidelity name (--head, e.g. wb97x_631gs); known models: {', '.join(HEADS)}")
    dtype = _dtype(dtype)
    hashes: dict[str, str] = {}

    def hashing(rel: str) -> bytes:  # the sha256 of every file read, for the attribution
        data = read(rel)
        hashes[rel] = hashlib.sha256(data).hexdigest()
        return data

    parsed = read_model(hashing, info, member)
    model = to_model(parsed, head, dtype, where)
    metadata = {"default_head": head,
                "provenance": {"converted_from": where, "converter": "foundation.hub.ani.neurochem",
                               "format": "neurochem", "members": parsed.member_indices,
                               "units_converted": "Hartree -> eV"}}
    metadata.update(attribution(manifest if manifest is not None else load_manifest(), info, hashes))
    if "source" in metadata:  # the published bytes: name where they are published, not a local path
        metadata["provenance"]["converted_from"] = metadata["source"]["url"]
    return model, metadata


def import_neurochem(path: str | os.PathLike, out: str | os.PathLike | None = None, member: int | None = None,
                     head: str | None = None, dtype: str = "float32") -> Path:
    """Convert `path` (an .info file or model folder) and write it as a Foundation `.safetensors`
    file (default: `<model>[-member<k>].safetensors` in the working directory)."""
    from foundation.hub.format import save_model

    info = find_info(path)
    if out is None:
        out = Path(re.sub(r"_\d+x$", "", info.stem) + (f"-member{member}" if member is not None else "")
                   + ".safetensors")
    if not str(out).endswith(".safetensors"):
        raise UserError(f"{out}: the output file must end in .safetensors")
    model, metadata = load_neurochem(info, member, head, dtype)
    return save_model(model, out, metadata=metadata)


def _dtype(dtype: str | torch.dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype) and dtype in DTYPES.values():
        return dtype
    if str(dtype) not in DTYPES:
        raise UserError(f"dtype {dtype!r}: choose float32 (the published precision) or float64")
    return DTYPES[str(dtype)]

