"""`manifest.json`: what a folder of shards holds, and the data's identity.

The manifest lists every shard (name, sha256, sample count, bytes, split, label counts), the
per-split and per-fidelity counts, the elements, the structures by total charge and by spin
multiplicity (`charges`, `multiplicities`; a manifest written before they existed describes
neutral singlets only), the level of theory of each fidelity (method,
basis, program: given by whoever made the data), the command that generated it and the package
versions. The sha256 of the manifest's bytes is the training-data hash that checkpoints record:
the shard hashes are inside it, so it changes whenever any shard does.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path

from foundation.files import write_text_atomic
from foundation.data.shards import location
from foundation.data.shards.writer import ShardInfo
from foundation.errors import DataError

MANIFEST = "manifest.json"
FORMAT = "foundation-shards"
VERSION = 1
UNITS = {"positions": "angstrom", "cell": "angstrom", "energy": "eV", "forces": "eV/angstrom"}
_VERSIONED = ("foundation-mlip", "numpy", "msgpack", "webdataset", "h5py", "ase", "torch")


def build_manifest(shards: Sequence[ShardInfo | Mapping], levels_of_theory: Mapping[str, Mapping] | None = None,
                   command: Sequence[str] | str | None = None, extra: Mapping | None = None) -> dict:
    """The manifest as a dict. `levels_of_theory`: fidelity -> {"method", "basis", "program", …};
    `command`: what generated the data (default: this process's command line)."""
    shards = [s.to_json() if isinstance(s, ShardInfo) else dict(s) for s in shards]
    splits: dict[str, dict] = {}
    for shard in shards:
        _add(splits.setdefault(shard["split"], _empty_counts()), shard)
    total = _empty_counts()
    for shard in shards:
        _add(total, shard)
    levels = {fid: dict(levels_of_theory.get(fid, {})) if levels_of_theory else {} for fid in total["fidelities"]}
    command = command if command is not None else sys.argv
    return {
        "format": FORMAT,
        "version": VERSION,
        "units": UNITS,
        "n_samples": total["n_samples"],
        "elements": total["elements"],
        "fidelities": total["fidelities"],
        "charges": total["charges"],
        "multiplicities": total["multiplicities"],
        "levels_of_theory": levels,
        "splits": splits,
        "shards": shards,
        "generator": {"command": command if isinstance(command, str) else " ".join(map(str, command)),
                      "python": sys.version.split()[0], "versions": _versions()},
        **(dict(extra) if extra else {}),
    }


def write_manifest(out_dir: str | os.PathLike, shards: Sequence[ShardInfo | Mapping],
                   levels_of_theory: Mapping[str, Mapping] | None = None,
                   command: Sequence[str] | str | None = None, extra: Mapping | None = None) -> Path:
    """Write `out_dir/manifest.json` atomically; returns its path."""
    text = json.dumps(build_manifest(shards, levels_of_theory, command, extra), indent=1, sort_keys=True) + "\n"
    return write_text_atomic(Path(out_dir) / MANIFEST, text)


@dataclasses.dataclass(frozen=True)
class Manifest:
    data: dict
    location: str  # the folder holding the shards: a local path or a URL
    sha256: str  # of the manifest file's bytes: the data's identity

    @property
    def splits(self) -> list[str]:
        return sorted(self.data["splits"])

    def shards(self, split: str | None = None) -> list[dict]:
        return [s for s in self.data["shards"] if split is None or s["split"] == split]

    def url(self, shard_name: str) -> str:
        return location.join(self.location, shard_name)

    def counts(self, split: str | None = None) -> dict:
        """{"n_samples", "elements", "fidelities": {fid: {"energy", "forces"}}, "charges",
        "multiplicities", …} for one split, or for all of them."""
        if split is None:
            counts = {k: self.data[k] for k in ("n_samples", "elements", "fidelities")}
            return {**counts, **_states_of(self.data)}
        if split not in self.data["splits"]:
            raise DataError(f"{self.location}: no split {split!r} in the manifest (has {', '.join(self.splits)})")
        return {**self.data["splits"][split], **_states_of(self.data["splits"][split])}

    def fidelities(self, split: str | None = None) -> list[str]:
        return sorted(self.counts(split)["fidelities"])

    def elements(self, split: str | None = None) -> list[int]:
        return list(self.counts(split)["elements"])

    def states(self, split: str | None = None) -> tuple[list[int], list[int]]:
        """(charges, multiplicities) of the structures in one split or in all, sorted."""
        counts = self.counts(split)
        return sorted(map(int, counts["charges"])), sorted(map(int, counts["multiplicities"]))


def load_manifest(path_or_url: str | os.PathLike) -> Manifest:
    """Read a manifest from a shard folder or a `manifest.json`, local or any URL."""
    where = str(path_or_url)
    if where.endswith(".json"):
        folder = where.rsplit("/", 1)[0] if location.is_url(where) else os.path.dirname(where) or "."
    else:
        folder, where = where, location.join(where, MANIFEST)
    raw = location.read_bytes(where)
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"{where}: not a JSON manifest ({e})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise DataError(f"{where}: not a Foundation shard manifest (format is not {FORMAT!r})")
    if data.get("version") != VERSION:
        raise DataError(f"{where}: manifest version {data.get('version')}; this Foundation reads {VERSION}")
    return Manifest(data=data, location=folder, sha256=hashlib.sha256(raw).hexdigest())


def verify_shards(manifest: Manifest | str | os.PathLike, splits: Sequence[str] | None = None) -> int:
    """Check every shard's sha256 against the manifest (reading each shard whole); raises
    `DataError` naming the first missing or altered shard. Returns the number checked."""
    if not isinstance(manifest, Manifest):
        manifest = load_manifest(manifest)
    checked = 0
    for shard in manifest.shards():
        if splits is not None and shard["split"] not in splits:
            continue
        url = manifest.url(shard["name"])
        sha = hashlib.sha256()
        with location.open_binary(url) as f:
            while chunk := f.read(1 << 20):
                sha.update(chunk)
        if sha.hexdigest() != shard["sha256"]:
            raise DataError(f"{url}: sha256 {sha.hexdigest()[:12]}… differs from the manifest's "
                            f"{shard['sha256'][:12]}… (corrupt or replaced shard; re-download or regenerate it)")
        checked += 1
    return checked


def _empty_counts() -> dict:
    return {"n_samples": 0, "n_shards": 0, "bytes": 0, "n_atoms": 0, "elements": [], "fidelities": {},
            "label_sets": {}, "charges": {}, "multiplicities": {}}


def _add(counts: dict, shard: dict) -> None:
    counts["n_samples"] += shard["n_samples"]
    counts["n_shards"] += 1
    counts["bytes"] += shard["bytes"]
    counts["n_atoms"] += shard["n_atoms"]
    counts["elements"] = sorted(set(counts["elements"]) | set(shard["elements"]))
    labels = Counter(counts["label_sets"]) + Counter(shard["label_sets"])
    counts["label_sets"] = dict(sorted(labels.items()))
    for fid, c in shard["fidelities"].items():
        mine = counts["fidelities"].setdefault(fid, {"energy": 0, "forces": 0})
        mine["energy"] += c["energy"]
        mine["forces"] += c["forces"]
    counts["fidelities"] = dict(sorted(counts["fidelities"].items()))
    for key, value in _states_of(shard).items():
        merged = Counter(counts[key]) + Counter(value)
        counts[key] = {k: merged[k] for k in sorted(merged, key=int)}


def _states_of(counts: Mapping) -> dict[str, dict[str, int]]:
    """The charge and multiplicity counts of a shard, split or manifest; one written before they
    were recorded holds neutral singlets only."""
    n = counts["n_samples"]
    return {"charges": dict(counts.get("charges") or ({"0": n} if n else {})),
            "multiplicities": dict(counts.get("multiplicities") or ({"1": n} if n else {}))}


def _versions() -> dict[str, str]:
    found = {}
    for name in _VERSIONED:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found
