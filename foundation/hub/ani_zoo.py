"""The published ANI ensembles (github.com/aiqm/ani-model-zoo, MIT, copyright 2020 AIQM), fetched
file by file from their commit-pinned URLs, verified, converted once and cached as one
`.safetensors` file.

`ani_model_zoo.json` (package data) is the zoo's MANIFEST.json: for every file its sha256, size
and path, the repository, the commit and the URL template. `$FOUNDATION_ANI_ZOO_URL` replaces the
URL's base (a mirror, or a server on 127.0.0.1 in tests): the files are still checked against the
manifest's sha256, so a mirror cannot change what is loaded.

Each file goes through `foundation.hub.download` (resumable, verified, an HTML page refused); the
converted model is written atomically to `<cache>/ani-model-zoo/<commit[:12]>/<model>.safetensors`
only once every file has been verified and converted, so a bad answer leaves no model in the
cache. The downloaded sources are deleted after a conversion (the converted file is what is used);
after a failure the verified ones stay, so the next call fetches only what is missing.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from importlib import resources
from pathlib import Path

from foundation.errors import UserError
from foundation.hub.cache import is_offline
from foundation.hub.download import download, safetensors_problem
from foundation.paths import cache_dir

BASE_URL_ENV = "FOUNDATION_ANI_ZOO_URL"
LICENSE = "MIT"
ATTRIBUTION = ("ANI potentials by Smith, Isayev, Roitberg et al. (AIQM), from github.com/aiqm/ani-model-zoo; "
               "MIT licence, copyright (c) 2020 AIQM; converted to Foundation's format")


def load_manifest() -> dict:
    """The packaged copy of the zoo's MANIFEST.json."""
    return json.loads((resources.files("foundation.hub") / "ani_model_zoo.json").read_text(encoding="utf-8"))


def license_text() -> str:
    """The zoo's LICENSE, shipped beside the converted weights."""
    return (resources.files("foundation.hub") / "weights" / "LICENSE-ANI").read_text(encoding="utf-8")


def model_files(manifest: Mapping, model: str) -> list[str]:
    """The manifest paths one model needs: its .info, its folder's files, and the LICENSE."""
    if model not in manifest.get("models", {}):
        raise UserError(f"{model!r}: not a model of the ANI model zoo ({', '.join(manifest.get('models', {}))})")
    folder = f"resources/{model}/"
    return ["LICENSE", f"resources/{model}.info", *sorted(k for k in manifest["files"] if k.startswith(folder))]


def file_url(manifest: Mapping, path: str) -> str:
    base = os.environ.get(BASE_URL_ENV, "").strip()
    return f"{base.rstrip('/')}/{path}" if base else manifest["raw_url"].format(path=path)


def cached_model(model: str, manifest: Mapping | None = None) -> Path:
    """Where the converted `model` is (or will be) cached."""
    manifest = manifest or load_manifest()
    return cache_dir() / "ani-model-zoo" / manifest["commit"][:12] / f"{model}.safetensors"


def attribution(manifest: Mapping, info: str, hashes: Mapping[str, str]) -> dict:
    """Header metadata naming the source, commit and licence, when every file read (`hashes`:
    path relative to resources/ -> sha256) is the published one; else nothing is claimed."""
    files = manifest.get("files", {})
    if not hashes or any(files.get(f"resources/{rel}", {}).get("sha256") != sha for rel, sha in hashes.items()):
        return {}
    return {"license": LICENSE, "attribution": ATTRIBUTION, "license_text": license_text(),
            "source": {"repository": manifest["source"], "commit": manifest["commit"],
                       "url": manifest["raw_url"].format(path=f"resources/{info}"),
                       "files_verified": len(hashes)}}


def fetch(model: str, *, refresh: bool = False, progress: bool = True) -> Path:
    """The cached, converted `model` (e.g. "ani-2x_8x"), downloading and converting it when it is
    not cached or `refresh` asks to rebuild it from the published files."""
    manifest = load_manifest()
    target = cached_model(model, manifest)
    if not refresh and target.is_file() and safetensors_problem(target) is None:
        return target
    paths = model_files(manifest, model)
    if is_offline():
        raise UserError(f"{model}: not in the cache ({target}) and FOUNDATION_OFFLINE=1 forbids downloading "
                        "it; run `foundation hub download` for it once with network access")
    local = _download_all(manifest, paths, progress)
    _convert(manifest, model, local, target)
    for path in local.values():  # the converted file is what is used from now on
        path.unlink(missing_ok=True)
        path.with_name(path.name + ".lock").unlink(missing_ok=True)
        _remove_empty(path.parent)
    return target


def _download_all(manifest: Mapping, paths: list[str], progress: bool) -> dict[str, Path]:
    from tqdm import tqdm

    local = {}
    with tqdm(total=len(paths), unit="file", desc="ani-model-zoo", disable=None if progress else True) as bar:
        for path in paths:
            entry = manifest["files"][path]
            local[path] = download(file_url(manifest, path), entry["sha256"], entry["size"], progress=False)
            bar.update(1)
    return local


def _convert(manifest: Mapping, model: str, local: Mapping[str, Path], target: Path) -> None:
    from foundation.hub.format import save_model
    from foundation.hub.neurochem_import import convert

    def read(rel: str) -> bytes:
        key = f"resources/{rel}"
        if key not in local:
            raise UserError(f"{model}: the model names {rel}, which its manifest does not list")
        return local[key].read_bytes()

    converted, metadata = convert(read, f"{model}.info", where=file_url(manifest, f"resources/{model}.info"),
                                  manifest=manifest)
    if metadata.get("license_text") is not None:
        metadata["license_text"] = local["LICENSE"].read_text(encoding="utf-8")  # the file just verified
    save_model(converted, target, metadata=metadata)


def _remove_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:  # not empty (another file shares the content-addressed folder) or gone
        pass
