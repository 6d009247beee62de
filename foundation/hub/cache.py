"""Where downloaded models live, and how a download is named there.

The cache directory is `foundation.paths.cache_dir()` ($FOUNDATION_CACHE, else
$XDG_CACHE_HOME/foundation, else ~/.cache/foundation). A file whose sha256 is known is stored by content
(`models/<sha256[:16]>/<name>`): two URLs serving the same bytes share it, and a registry entry whose
hash changes gets a fresh file. A file known only by its URL is stored under a hash of the URL
(`urls/<sha256(url)[:16]>/<name>`). Names are reduced to a safe basename, so nothing a server or a
URL says can place a file outside the cache directory.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

from foundation.paths import cache_dir

_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_CHUNK = 1 << 20


def is_offline() -> bool:
    """`FOUNDATION_OFFLINE=1` (or true/yes): use the cache only, never the network."""
    return os.environ.get("FOUNDATION_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def safe_filename(name_or_url: str, default: str = "model.safetensors") -> str:
    """The last path component of a URL or name, reduced to [A-Za-z0-9._-] and never '.' or '..'."""
    path = urlsplit(name_or_url).path if "://" in name_or_url else name_or_url
    base = unquote(path).replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    base = _SAFE_NAME.sub("_", base).lstrip(".")
    return base[:128] or default


def cache_path(url: str, sha256: str | None = None, filename: str | None = None) -> Path:
    """Where the download of `url` is (or will be) kept."""
    name = safe_filename(filename or url)
    if sha256:
        return cache_dir() / "models" / sha256.lower()[:16] / name
    key = hashlib.sha256(url.encode()).hexdigest()[:16]
    return cache_dir() / "urls" / key / name


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
