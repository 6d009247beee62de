"""The model registry: a name -> where the file is, what it must hash to, and what it is.

Entries come from the packaged `registry.json`, then from the JSON files listed in
`$FOUNDATION_REGISTRY` (separated by the OS path separator; a group's own models, later files win).
Each file is `{"format_version": 1, "models": {NAME: ENTRY}}` with ENTRY:

    description  one line
    url          http(s):// or hf://org/repo/file (a remote copy), and/or
    path         a file shipped beside the registry file (loads with no network)
    neurochem    a model of the published ANI model zoo (e.g. "ani-2x_8x"): downloaded file by file
                 from the pinned URLs of its manifest, verified, converted and cached
                 (foundation.hub.ani.zoo); with a path, the shipped file is that conversion, and
                 `foundation hub download NAME --refresh` rebuilds it from the published files
    sha256       hex digest the file must have (required with a url: the cache trusts only it)
    size         bytes
    fidelities   the model's heads, e.g. ["wb97x_631gs", "ccsdt_ccpvdz"]
    default_head the head used when none is named
    elements     symbols, e.g. ["H", "C", "N", "O"]
    license      SPDX identifier
    attribution  who made it, where it comes from (shown by `foundation hub info`)
    version      counts the files this name has had (a remade model is the next; default 1)
    changes      what the last version changed, one line
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import re
from pathlib import Path

from foundation.errors import UserError

PACKAGED = Path(__file__).with_name("registry.json")
FORMAT_VERSION = 1
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


@dataclasses.dataclass(frozen=True)
class RegistryEntry:
    name: str
    description: str = ""
    url: str | None = None
    path: Path | None = None  # absolute, resolved against the registry file's folder
    sha256: str | None = None
    size: int | None = None
    fidelities: tuple[str, ...] = ()
    default_head: str | None = None
    elements: tuple[str, ...] = ()
    license: str = ""
    attribution: str = ""
    neurochem: str | None = None  # a model of the ANI model zoo (foundation.hub.ani.zoo)
    version: int = 1
    changes: str = ""
    source: str = ""  # the registry file that defined it

    @property
    def shipped(self) -> bool:
        """True when the file is installed with the package (or beside a local registry)."""
        return self.path is not None and self.path.is_file()


def load_registry() -> dict[str, RegistryEntry]:
    """All entries, packaged first, then `$FOUNDATION_REGISTRY` files (which may override)."""
    entries = read_registry_file(PACKAGED)
    for extra in filter(None, os.environ.get("FOUNDATION_REGISTRY", "").split(os.pathsep)):
        entries.update(read_registry_file(Path(extra).expanduser()))
    return entries


def get_entry(name: str) -> RegistryEntry:
    """The entry called `name`; `UserError` with the closest names otherwise."""
    entries = load_registry()
    if name in entries:
        return entries[name]
    close = difflib.get_close_matches(name, list(entries), n=3)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise UserError(f"{name!r}: not a model file, URL or registered model name; {hint}"
                    f"known models: {', '.join(sorted(entries)) or 'none'} (see `foundation hub list`)")


def is_registered(name: str) -> bool:
    return name in load_registry()


def read_registry_file(path: Path) -> dict[str, RegistryEntry]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: registry file not found (check FOUNDATION_REGISTRY)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"{path}: not a readable registry file ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("models"), dict):
        raise UserError(f"{path}: a registry file is {{\"format_version\": 1, \"models\": {{NAME: ENTRY}}}}")
    if data.get("format_version", FORMAT_VERSION) > FORMAT_VERSION:
        raise UserError(f"{path}: registry format {data['format_version']} is newer than this library reads")
    return {name: _entry(path, name, raw) for name, raw in data["models"].items()}


def _entry(path: Path, name: str, raw) -> RegistryEntry:
    where = f"{path}: model {name!r}"
    if not _NAME.match(name):
        raise UserError(f"{where}: names are lower-case letters, digits, '.', '_' and '-'")
    if not isinstance(raw, dict):
        raise UserError(f"{where}: entry must be a JSON object")
    known = {f.name for f in dataclasses.fields(RegistryEntry)} - {"name", "source"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise UserError(f"{where}: unknown field(s) {unknown}; fields are {sorted(known)}")
    url, rel, zoo = raw.get("url"), raw.get("path"), raw.get("neurochem")
    if not url and not rel and not zoo:
        raise UserError(f"{where}: needs a 'url', a 'path' or a 'neurochem' model")
    sha = raw.get("sha256")
    if sha is not None and not (isinstance(sha, str) and _SHA256.match(sha.lower())):
        raise UserError(f"{where}: sha256 must be 64 hex digits")
    if url and not sha:
        raise UserError(f"{where}: a url entry needs its sha256 (downloads are verified against it)")
    local = None
    if rel:
        base = path.parent.resolve()
        local = (base / rel).resolve()
        if base not in local.parents:
            raise UserError(f"{where}: path {rel!r} must stay inside {base}")
    size = raw.get("size")
    if size is not None and (not isinstance(size, int) or size < 0):
        raise UserError(f"{where}: size must be a number of bytes")
    version = raw.get("version", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise UserError(f"{where}: version must be a whole number, 1 or more")
    return RegistryEntry(
        name=name, description=str(raw.get("description", "")), url=url, path=local,
        sha256=sha.lower() if sha else None, size=size,
        fidelities=tuple(raw.get("fidelities", ())), default_head=raw.get("default_head"),
        elements=tuple(raw.get("elements", ())), license=str(raw.get("license", "")),
        attribution=str(raw.get("attribution", "")), neurochem=zoo, version=version,
        changes=str(raw.get("changes", "")), source=str(path))
