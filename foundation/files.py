"""Writing a file so that a crash never leaves half of it under its real name.

Every writer of a result (model, checkpoint, shard manifest, report, trajectory, JSON results)
goes through `replacing`: it writes a temp file beside the target and renames it into place only
when the write finished, so a reader sees the old file or the new one, never a truncated one.
"""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def replacing(path: str | os.PathLike, suffix: str = ".tmp", durable: bool = False) -> Iterator[Path]:
    """Yield a temp path beside `path` to write; on success it replaces `path`, on any exception it
    is deleted. The file gets the permissions `open()` would give (mkstemp's are 0600, which made
    shipped weights unreadable to other users). `durable`: fsync before the rename (checkpoints)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        if durable:
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | os.PathLike, text: str, durable: bool = False) -> Path:
    """Write `text` (UTF-8) to a temp file beside `path`, then rename it into place."""
    with replacing(path, durable=durable) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | os.PathLike, value, durable: bool = False) -> Path:
    """`value` as indented JSON (one helper for every results file: recipes, benchmarks, pipelines),
    written atomically. Numbers from numpy or torch are written as numbers, paths as strings."""
    return write_text_atomic(path, json.dumps(value, indent=1, default=_plain) + "\n", durable=durable)


def _plain(value):
    if hasattr(value, "tolist"):  # numpy and torch scalars and arrays
        return value.tolist()
    return str(value)
