"""A recipe typed again in the same folder: shown again when it finished, else run afresh.

Every recipe writes into its own folder (`--out`, or `<out_dir>/<name>`). Run again there:

- it finished, with the same inputs (the arguments, the config tree, the version, the size and
  time of every file the arguments name): nothing would come out differently, so one line says
  so and the finished run's summary is printed again, at once;
- otherwise (it did not finish, the inputs differ, or `--fresh`), the earlier folder is moved
  aside to `<folder>.prev-<YYYYmmdd-HHMMSS>/` (one line says so; nothing is deleted) and the
  run starts afresh.

Not a resume of the trainings inside: a recipe strings several trainings and evaluations
together, and its report must come from one run of one set of inputs (the trainer's
`resume=true` stays for a single interrupted training). Code changes are not seen: after editing
the code, pass `--fresh`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from foundation.files import write_text_atomic

MARKER = "finished.json"  # written last, into the first folder: the run finished


def add_fresh_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fresh", action="store_true",
                        help="run again even when the folder holds a finished run of the same inputs "
                             "(the earlier run is moved aside, not deleted)")


class Rerun:
    """`Rerun(folder, argv, fresh)`: `.done` when `folder` holds a finished run of these inputs
    (its summary is printed and its record is `.record`); else the folder was moved aside and
    the caller runs, then calls `.finish(summary, **record)`."""

    def __init__(self, folders: str | os.PathLike | Sequence[str | os.PathLike],
                 argv: Sequence[str] | None = None, fresh: bool = False, writes: Sequence[Path] = ()):
        single = isinstance(folders, (str, os.PathLike))
        self.folders = [Path(folders)] if single else [Path(f) for f in folders]
        argv = [a for a in (sys.argv[1:] if argv is None else argv) if a != "--fresh"]
        self.inputs = fingerprint(argv, [*self.folders, *map(Path, writes)])  # `writes`: outputs never moved
        self.record = None if fresh else self._finished()
        if self.record is not None:
            print(f"{self.folders[0]}: finished on {self.record['finished']} with the same inputs; "
                  "its result again (--fresh runs it anew)", flush=True)
            print(self.record["summary"], flush=True)
        else:
            set_aside(self.folders, "--fresh" if fresh else self._why())

    @property
    def done(self) -> bool:
        return self.record is not None

    def finish(self, summary: str, **record) -> None:
        self.folders[0].mkdir(parents=True, exist_ok=True)
        entry = {"finished": time.strftime("%Y-%m-%d %H:%M"), "summary": summary, "inputs": self.inputs, **record}
        write_text_atomic(self.folders[0] / MARKER, json.dumps(entry, indent=1, default=str) + "\n")

    def _previous(self) -> dict | None:
        try:
            return json.loads((self.folders[0] / MARKER).read_text())
        except (OSError, ValueError):
            return None

    def _finished(self) -> dict | None:
        previous = self._previous()
        ok = previous is not None and previous.get("inputs") == self.inputs
        return previous if ok and all(f.is_dir() for f in self.folders) else None

    def _why(self) -> str:
        previous = self._previous()
        if previous is None:
            return "an unfinished earlier run"
        changed = [k for k in self.inputs if previous.get("inputs", {}).get(k) != self.inputs[k]]
        return f"an earlier run with other {' and '.join(changed) or 'inputs'}"


def run_folder(recipe: str | None, overrides: Sequence[str]) -> tuple[Path, list[str], bool]:
    """(`<out_dir>/<name>` of the run the overrides describe, the overrides with that name pinned
    (the default name is the time: composed twice it could differ), whether `resume=true`)."""
    from foundation.train.compose import compose_dict

    cfg = compose_dict(([f"recipe={recipe}"] if recipe else []) + list(overrides))
    pinned = list(overrides) + ([] if any(o.startswith("name=") for o in overrides) else [f"name={cfg['name']}"])
    return Path(cfg["out_dir"]).expanduser() / str(cfg["name"]), pinned, bool(cfg.get("resume"))


def set_aside(folders: Sequence[Path], why: str) -> None:
    """Move each existing, non-empty folder to `<folder>.prev-<time>`; say so in one line."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    moved = []
    for folder in folders:
        if not folder.exists() or (folder.is_dir() and not any(folder.iterdir())):
            continue
        target, n = folder.with_name(f"{folder.name}.prev-{stamp}"), 1
        while target.exists():
            n += 1
            target = folder.with_name(f"{folder.name}.prev-{stamp}-{n}")
        folder.rename(target)
        moved.append(f"{folder} -> {target}/")
    if moved:
        print(f"{why}: moved aside ({', '.join(moved)}); starting afresh", flush=True)


def fingerprint(argv: Sequence[str], outputs: Sequence[Path] = ()) -> dict:
    """What decides a recipe's result, besides the code: its arguments, the config tree, the
    version, and the size and time of each file an argument (or the value of a `key=value`)
    names, except the folders it writes (`outputs`) and the folders around them."""
    import foundation
    from foundation.train.compose import config_dir

    outs = [o.resolve() for o in outputs]
    files = {}
    for arg in argv:
        value = arg.partition("=")[2]
        for part in {arg, value, value.partition(":")[2]} - {""}:  # also LABEL=RECIPE:MODEL
            path = Path(part).expanduser()
            if path.exists() and not any(_related(path.resolve(), o) for o in outs):
                files[part] = _stat_digest(path)
    return {"arguments": list(argv), "configs": _stat_digest(Path(config_dir()), content=True),
            "version": foundation.__version__, "files": files}


def _related(path: Path, out: Path) -> bool:
    return path == out or out in path.parents or path in out.parents


def _stat_digest(path: Path, content: bool = False, limit: int = 20_000) -> str:
    """sha256 of the (name, size, mtime) of `path`'s files (with `content`, of their bytes)."""
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())[:limit]
    for p in files:
        if "__pycache__" in p.parts:
            continue
        stat = p.stat()
        digest.update(f"{p.relative_to(path) if p != path else p.name}\0{stat.st_size}\0".encode())
        digest.update(p.read_bytes() if content else str(stat.st_mtime_ns).encode())
    return digest.hexdigest()
