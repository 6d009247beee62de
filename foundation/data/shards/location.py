"""Where shards live: a local folder, `http(s)://`, or any other fsspec URL (`s3://`, `hf://`, …).

Remote files are opened with fsspec; HTTP ones as a plain sequential stream (`block_size=0`), which
is all a tar reader needs and works with servers that do not support range requests.
"""

from __future__ import annotations

import os
import re
from typing import BinaryIO

from foundation.errors import DataError

_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


def is_url(location: str | os.PathLike) -> bool:
    return bool(_URL.match(str(location)))


def join(location: str | os.PathLike, name: str) -> str:
    location = str(location)
    if is_url(location):
        return location.rstrip("/") + "/" + name
    return os.path.join(location, name)


def open_binary(location: str | os.PathLike) -> BinaryIO:
    """Open a local path or URL for reading bytes; a missing or unreachable file is a `DataError`
    naming it."""
    location = str(location)
    try:
        if not is_url(location):
            return open(location, "rb")
        import fsspec

        options = {"block_size": 0} if location.startswith(("http://", "https://")) else {}
        return fsspec.open(location, "rb", **options).open()
    except FileNotFoundError:
        raise DataError(f"{location}: no such file") from None
    except OSError as e:
        raise DataError(f"{location}: cannot open ({e})") from None
    except Exception as e:  # fsspec backends raise their own types (aiohttp, botocore, …)
        raise DataError(f"{location}: cannot open ({type(e).__name__}: {e})") from None


def read_bytes(location: str | os.PathLike) -> bytes:
    with open_binary(location) as f:
        try:
            return f.read()
        except Exception as e:
            raise DataError(f"{location}: read failed ({type(e).__name__}: {e})") from None
