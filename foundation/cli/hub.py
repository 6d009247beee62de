"""`foundation hub …`: the model registry, downloads, exports and TorchANI imports.

    foundation hub list
    foundation hub info ani-cc-mini
    foundation hub download ani-cc-mini | https://…/model.safetensors | hf://org/repo/model.safetensors
    foundation hub export runs/my-run model.safetensors
    foundation hub import-torchani ani1x_state_dict.pt ani1x.safetensors --head wb97x_631gs
    foundation hub import-neurochem ani-model-zoo/resources/ani-2x_8x.info --out ani-2x.safetensors
"""

from __future__ import annotations

import json
from pathlib import Path

from foundation.errors import UserError


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("hub", help="list, inspect, download, export and import models")
    actions = parser.add_subparsers(dest="hub_command", metavar="ACTION", required=True)

    p = actions.add_parser("list", help="the registered models")
    p.set_defaults(func=run_list)

    p = actions.add_parser("info", help="what a model is: registry entry and file header")
    p.add_argument("model", help="registry name or local .safetensors file")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run_info)

    p = actions.add_parser("download", help="fetch and verify a model into the cache")
    p.add_argument("model", help="registry name, https:// URL or hf://org/repo/file")
    p.add_argument("--force", "--refresh", dest="force", action="store_true",
                   help="download again even if cached; for ani-1x, ani-1ccx, ani-2x: rebuild the model from "
                        "the published files (pinned URLs, sha256-verified) even when a copy is shipped")
    p.set_defaults(func=run_download)

    p = actions.add_parser("export", help="write a run's model (or a checkpoint's) as one .safetensors file")
    p.add_argument("source", help="run directory, training checkpoint (.pt) or .safetensors file")
    p.add_argument("out", help="output .safetensors file")
    p.set_defaults(func=run_export)

    p = actions.add_parser("import-torchani", help="convert a TorchANI model into a Foundation .safetensors file")
    p.add_argument("source", help="TorchANI state-dict file (.pt) or builder name (ANI1x, ANI1ccx, ANI2x; "
                                  "TorchANI downloads those weights)")
    p.add_argument("out", help="output .safetensors file")
    p.add_argument("--head", default=None, help="fidelity name of the head (default: wb97x_631gs; ccsdt_cbs for ANI1ccx)")
    p.set_defaults(func=run_import_torchani)

    p = actions.add_parser("import-neurochem", help="convert a published ANI model (neurochem files: .info, "
                                                    ".params, sae_linfit.dat, networks) into a .safetensors file")
    p.add_argument("path", help="the model's .info file or its folder (e.g. ani-model-zoo/resources/ani-1x_8x)")
    p.add_argument("--member", type=int, default=None, help="convert only network set K (default: the ensemble)")
    p.add_argument("--out", default=None, help="output .safetensors file (default: <model>.safetensors here)")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32",
                   help="weights precision (default float32, the published one)")
    p.add_argument("--head", default=None, help="fidelity name of the head (default: wb97x_631gs for ANI-1x/2x, "
                                                "ccsdt_cbs for ANI-1ccx; required for other models)")
    p.set_defaults(func=run_import_neurochem)


def run_list(args) -> int:
    from foundation.hub.registry import load_registry

    entries = load_registry()
    rows = [("NAME", "WHERE", "SIZE", "FIDELITIES", "ELEMENTS", "DESCRIPTION")]
    for name, e in sorted(entries.items()):
        local = _local_copy(e)
        where = "shipped" if e.shipped else "cached" if local else "remote" if e.url or e.neurochem else "missing"
        rows.append((name, where, _size(e.size or (local.stat().st_size if local else None)),
                     ",".join(e.fidelities), "".join(e.elements), e.description))
    widths = [max(len(r[k]) for r in rows) for k in range(5)]
    for r in rows:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths)) + "  " + r[5])
    return 0


def run_info(args) -> int:
    from foundation.hub.format import read_header
    from foundation.hub.registry import get_entry

    info: dict = {}
    local = Path(args.model).expanduser()
    if local.is_file():
        path = local
    else:
        entry = get_entry(args.model)
        info["registry"] = {k: v for k, v in {
            "name": entry.name, "description": entry.description, "url": entry.url, "sha256": entry.sha256,
            "size": entry.size, "fidelities": list(entry.fidelities), "default_head": entry.default_head,
            "elements": list(entry.elements), "license": entry.license, "attribution": entry.attribution,
            "neurochem": entry.neurochem, "version": entry.version, "changes": entry.changes,
            "registry_file": entry.source}.items()
            if v not in (None, "", [])}
        path = _local_copy(entry)
    if path is not None:
        info["file"] = str(path)
        info["header"] = read_header(path)
    print(json.dumps(info, indent=2, ensure_ascii=False) if args.json else _describe(info))
    return 0


def run_download(args) -> int:
    from foundation.hub.cache import file_sha256
    from foundation.hub.resolve import is_remote, resolve

    if not is_remote(args.model) and Path(args.model).expanduser().exists():
        raise UserError(f"{args.model}: a local file; nothing to download")
    path, _ = resolve(args.model, force=args.force)
    print(f"{path}\nsha256 {file_sha256(path)}")
    return 0


def run_export(args) -> int:
    from foundation.hub.format import save_model
    from foundation.loading import load_model

    if not str(args.out).endswith(".safetensors"):
        raise UserError(f"{args.out}: the exported file must end in .safetensors")
    model = load_model(args.source, device="cpu")
    out = save_model(model, args.out, metadata={"provenance": {"exported_from": str(args.source)}})
    print(f"wrote {out} ({model.config.name}, heads {', '.join(model.heads)})")
    return 0


def run_import_torchani(args) -> int:
    from foundation.hub.ani.from_torchani import import_torchani

    if not str(args.out).endswith(".safetensors"):
        raise UserError(f"{args.out}: the output file must end in .safetensors")
    out = import_torchani(args.source, args.out, head=args.head)
    print(f"wrote {out}")
    return 0


def run_import_neurochem(args) -> int:
    from foundation.hub.format import read_header
    from foundation.hub.ani.from_neurochem import import_neurochem

    out = import_neurochem(args.path, args.out, member=args.member, head=args.head, dtype=args.dtype)
    header = read_header(out)
    licence = f", licence {header['license']}" if header.get("license") else ""
    print(f"wrote {out} (head {header['heads'] and next(iter(header['heads']))}{licence})")
    return 0


def _local_copy(entry):
    """The entry's file if it is here already (shipped or cached); never downloads."""
    from foundation.hub.cache import cache_path

    if entry.shipped:
        return entry.path
    if entry.url and not entry.url.startswith("hf://") and cache_path(entry.url, entry.sha256).is_file():
        return cache_path(entry.url, entry.sha256)
    if entry.neurochem:
        from foundation.hub.ani.zoo import cached_model

        if cached_model(entry.neurochem).is_file():
            return cached_model(entry.neurochem)
    return None


def _describe(info: dict) -> str:
    lines = []
    for key, value in info.get("registry", {}).items():
        lines.append(f"{key:<14}{value}")
    header = info.get("header")
    if header is None:
        fetchable = info.get("registry", {}).get("url") or info.get("registry", {}).get("neurochem")
        lines.append("file          " + ("not downloaded yet (foundation hub download NAME)" if fetchable
                                         else "not installed, and the registry gives no url"))
        return "\n".join(lines)
    lines.append(f"{'file':<14}{info['file']}")
    lines.append(f"{'model':<14}{header.get('model')} (format {header.get('format_version')}, "
                 f"library {header.get('library_version')})")
    lines.append(f"{'cutoff':<14}{header.get('cutoff')} Å")
    for head, data in header.get("heads", {}).items():
        refs = ", ".join(f"{_symbol(z)} {e:.4f}" for z, e in data.get("reference_energies", {}).items())
        lines.append(f"{'head':<14}{head}: reference energies (eV) {refs}")
    for key in ("license", "attribution", "source", "data_manifest_hash", "metrics", "provenance"):
        if header.get(key):
            lines.append(f"{key:<14}{json.dumps(header[key], ensure_ascii=False)}")
    return "\n".join(lines)


def _symbol(z: str) -> str:
    from foundation.data.elements import symbol

    return symbol(int(z)) if str(z).isdigit() else str(z)


def _size(n: int | None) -> str:
    if n is None:
        return "?"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return "?"
