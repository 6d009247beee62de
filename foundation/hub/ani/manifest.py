"""The ANI model zoo's manifest (`model_zoo.json`, package data: the zoo's MANIFEST.json):
for every published file its sha256, size and path, the repository, the commit and the URL
template; and what a converted model's header says about where it comes from and its licence.

`$FOUNDATION_ANI_ZOO_URL` replaces the URL's base (a mirror, or a server on 127.0.0.1 in tests):
the files are still checked against the manifest's sha256, so a mirror cannot change what is loaded.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from importlib import resources

from foundation.errors import UserError

BASE_URL_ENV = "FOUNDATION_ANI_ZOO_URL"
LICENSE = "MIT"
ATTRIBUTION = ("ANI potentials by Smith, Isayev, Roitberg et al. (AIQM), from github.com/aiqm/ani-model-zoo; "
               "MIT licence, copyright (c) 2020 AIQM; converted to Foundation's format")


def load_manifest() -> dict:
    """The packaged copy of the zoo's MANIFEST.json."""
    return json.loads((resources.files("foundation.hub.ani") / "model_zoo.json").read_text(encoding="utf-8"))


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
