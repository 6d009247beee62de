"""Verified, resumable downloads into the cache (stdlib `urllib`, a `foundation.progress` bar).

What a download promises:
- the bytes go to `<name>.part` beside their final place and are renamed only once verified, so a
  file under its final name is always a complete, checked one;
- an interrupted transfer resumes where it stopped (HTTP `Range`), within the call (a few retries)
  or on the next call (the `.part` file stays);
- the sha256, when known, is checked before use: a mismatch deletes the file and says so; without a
  sha256 the file must at least be a safetensors file, so an HTML error page never enters the cache;
- redirects are followed up to a limit (a loop is named as one), every connection has a timeout
  (`FOUNDATION_DOWNLOAD_TIMEOUT`, seconds), and `FOUNDATION_OFFLINE=1` never touches the network.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import socket
import struct
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from foundation.errors import CheckpointError, UserError
from foundation.hub.cache import cache_dir, cache_path, file_sha256, is_offline
from foundation.progress import progress_bar

DEFAULT_TIMEOUT = 60.0  # s, per connection attempt and per read
MAX_REDIRECTS = 5
RETRIES = 3  # resumed attempts after a dropped connection, within one call
_CHUNK = 1 << 16
_REDIRECTS = (301, 302, 303, 307, 308)


class _Interrupted(Exception):
    """The connection ended before the body did; the `.part` file holds what arrived."""


class _RangeRefused(Exception):
    """HTTP 416 to a resume: the partial file is not a prefix of what the server has now."""


def download(url: str, sha256: str | None = None, size: int | None = None, filename: str | None = None,
             *, timeout: float | None = None, max_redirects: int = MAX_REDIRECTS, retries: int = RETRIES,
             progress: bool = True, force: bool = False) -> Path:
    """The cached, verified copy of `url`, downloading it if needed. `sha256` (hex) and `size`
    (bytes) are what the file must be; `filename` names it in the cache (default: from the URL)."""
    _check_url(url)
    target = cache_path(url, sha256, filename)
    if not force and _usable(target, sha256):
        return target
    if is_offline():
        raise UserError(f"{url}: not in the cache ({cache_dir()}) and FOUNDATION_OFFLINE=1 forbids "
                        "downloading it; download it once with network access or unset FOUNDATION_OFFLINE")
    target.parent.mkdir(parents=True, exist_ok=True)
    with _lock(target):
        if not force and _usable(target, sha256):  # another process finished it while we waited
            return target
        part = target.with_name(target.name + ".part")
        if force:
            part.unlink(missing_ok=True)
        timeout = _default_timeout() if timeout is None else timeout
        for attempt in range(retries + 1):
            try:
                _fetch(url, part, timeout, max_redirects, progress, target.name)
                break
            except _Interrupted as e:
                if attempt == retries:
                    raise UserError(f"{url}: {e} ({attempt + 1} attempts); run the command again to "
                                    f"resume from {part}") from None
        verify(part, url, sha256, size)
        os.replace(part, target)
    return target


def verify(path: Path, url: str, sha256: str | None, size: int | None) -> None:
    """Check a downloaded file; delete it and raise `CheckpointError` saying why if it is wrong."""
    problem = None
    actual_size = path.stat().st_size
    if sha256 and (actual := file_sha256(path)) != sha256.lower():
        problem = f"sha256 mismatch: expected {sha256.lower()}, got {actual}"
    elif size is not None and actual_size != size:
        problem = f"size mismatch: expected {size} bytes, got {actual_size}"
    elif not sha256:  # nothing vouches for the bytes: at least they must be a safetensors file
        problem = safetensors_problem(path)
    if problem:
        hint = " (it looks like an HTML page, not a model)" if _starts_with_markup(path) else ""
        path.unlink(missing_ok=True)
        raise CheckpointError(f"{url}: {problem}{hint}; the downloaded file was deleted")


def safetensors_problem(path: Path) -> str | None:
    """Why `path` is not a safetensors file (None if its header parses): 8-byte little-endian
    header length, then that many bytes of JSON, then the tensor data."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            return f"not a safetensors file ({size} bytes)"
        (n,) = struct.unpack("<Q", head)
        if n < 2 or n > size - 8:
            return "not a safetensors file (bad header length)"
        try:
            header = json.loads(f.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError):
            return "not a safetensors file (header is not JSON)"
    return None if isinstance(header, dict) else "not a safetensors file (header is not a JSON object)"


def _usable(target: Path, sha256: str | None) -> bool:
    """A cached file is used only if it still matches its sha256; a corrupted one is removed."""
    if not target.is_file():
        return False
    if sha256 and file_sha256(target) != sha256.lower():
        target.unlink(missing_ok=True)
        return False
    return True


def _default_timeout() -> float:
    value = os.environ.get("FOUNDATION_DOWNLOAD_TIMEOUT", "")
    try:
        return float(value) if value else DEFAULT_TIMEOUT
    except ValueError:
        raise UserError(f"FOUNDATION_DOWNLOAD_TIMEOUT={value!r}: expected a number of seconds") from None


def _check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UserError(f"{url!r}: not a downloadable URL (expected http:// or https://)")


def _fetch(url: str, part: Path, timeout: float, max_redirects: int, progress: bool, label: str) -> None:
    """Append the rest of `url` to `part`, resuming from its current size."""
    have = part.stat().st_size if part.exists() else 0
    try:
        response = _open(url, have, timeout, max_redirects)
    except _RangeRefused:
        part.unlink(missing_ok=True)
        have, response = 0, _open(url, 0, timeout, max_redirects)
    with response:
        if have and response.status != 206:
            have = 0  # the server ignored the Range: start over
        _refuse_web_page(url, response)
        length = response.headers.get("Content-Length")
        expected = int(length) if length and length.isdigit() else None
        total = have + expected if expected is not None else None
        received = 0
        with open(part, "ab" if have else "wb") as f, \
                progress_bar(total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024,
                             desc=label, enabled=progress) as bar:
            while True:
                try:
                    chunk = response.read(_CHUNK)
                except (http.client.IncompleteRead, ConnectionError, TimeoutError, socket.timeout) as e:
                    raise _Interrupted(f"connection lost after {have + received} bytes ({type(e).__name__})") from None
                if not chunk:
                    break
                f.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
        if expected is not None and received < expected:
            raise _Interrupted(f"connection closed after {have + received} of {total} bytes")


def _open(url: str, have: int, timeout: float, max_redirects: int):
    """urlopen with a Range from `have`, following redirects ourselves (to name loops)."""
    from foundation import __version__

    opener = urllib.request.build_opener(_NoRedirect)
    seen = [url]
    while True:
        request = urllib.request.Request(url, headers={"User-Agent": f"foundation/{__version__}"})
        if have:
            request.add_header("Range", f"bytes={have}-")
        try:
            return opener.open(request, timeout=timeout)
        except urllib.error.HTTPError as e:
            location = e.headers.get("Location") if e.code in _REDIRECTS else None
            e.close()
            if location is None:
                if e.code == 416 and have:
                    raise _RangeRefused() from None
                hint = " (no such file: check the URL or the registry entry)" if e.code == 404 else ""
                raise UserError(f"{seen[0]}: the server answered HTTP {e.code} {e.reason}{hint}") from None
            url = urljoin(url, location)
            _check_url(url)
            if url in seen:
                raise UserError(f"{seen[0]}: redirect loop ({' -> '.join(seen + [url])})") from None
            seen.append(url)
            if len(seen) > max_redirects + 1:
                raise UserError(f"{seen[0]}: more than {max_redirects} redirects") from None
        except (TimeoutError, socket.timeout):
            raise UserError(f"{url}: no answer within {timeout:g} s (set FOUNDATION_DOWNLOAD_TIMEOUT "
                            "to wait longer)") from None
        except urllib.error.URLError as e:
            reason = e.reason
            if isinstance(reason, (TimeoutError, socket.timeout)):
                raise UserError(f"{url}: no answer within {timeout:g} s (set FOUNDATION_DOWNLOAD_TIMEOUT "
                                "to wait longer)") from None
            raise UserError(f"{url}: cannot connect ({reason})") from None
        except (http.client.HTTPException, ConnectionError) as e:
            raise UserError(f"{url}: the connection failed ({type(e).__name__}: {e})") from None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None  # surface 3xx as HTTPError; `_open` follows them with its own limit


def _refuse_web_page(url: str, response) -> None:
    kind = (response.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if kind in ("text/html", "application/xhtml+xml"):
        raise UserError(f"{url}: the server sent a web page ({kind}), not a model file; use the "
                        "file's direct download URL")


def _starts_with_markup(path: Path) -> bool:
    with contextlib.suppress(FileNotFoundError), open(path, "rb") as f:
        return f.read(64).lstrip().startswith(b"<")
    return False


@contextlib.contextmanager
def _lock(target: Path):
    """Serialise downloads of one file between processes (e.g. all ranks of a job on one node)."""
    try:
        import fcntl
    except ImportError:  # not POSIX (Windows): no lock
        yield
        return
    with open(target.with_name(target.name + ".lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
