"""Labelled records → `Sample`s, grouped by split. Only calculations with status "ok" become
labels; the rest are counted so the caller can report them."""

from __future__ import annotations

import collections
from pathlib import Path

from foundation.data import Sample
from foundation.pipelines.label.store import read_records
from foundation.pipelines.label.structures import read_structures


def fidelity_of(level: str) -> str:
    """The fidelity a level's labels are (a record's "fidelity" field names the level that made it:
    `mp2_ccpvdz_ri` labels are `mp2_ccpvdz`); a level this installation does not know is its own."""
    from foundation.errors import UserError
    from foundation.pipelines.label.levels import get_level

    try:
        return get_level(level).fidelity
    except UserError:
        return level


def labels_by_structure(records) -> dict[str, dict[str, dict]]:
    """{structure id: {fidelity: record}} of the successful records. Where two levels gave one
    fidelity to a structure, the one with forces wins (it carries more), else the first."""
    labels: dict[str, dict[str, dict]] = collections.defaultdict(dict)
    for r in records:
        if r["status"] != "ok":
            continue
        have = labels[r["id"]].get(fid := fidelity_of(r["fidelity"]))
        if have is None or (have.get("forces") is None and r.get("forces") is not None):
            labels[r["id"]][fid] = r
    return labels


def load_samples(label_dir: str | Path) -> tuple[dict[str, list[Sample]], dict]:
    """({split: [Sample]}, stats). A structure with no successful label is left out. Stats count
    calculations by the level that ran them."""
    label_dir = Path(label_dir)
    structures = read_structures(label_dir)
    records = read_records(label_dir / "labels.jsonl")
    stats = collections.Counter(f"{r['fidelity']}:{r['status']}" for r in records)
    labels = labels_by_structure(records)
    by_split: dict[str, list[Sample]] = collections.defaultdict(list)
    for s in structures:
        got = labels.get(s.id)
        if not got:
            continue
        by_split[s.split].append(Sample(
            numbers=s.numbers, positions=s.positions,
            energies={fid: r["energy"] for fid, r in got.items()},
            forces={fid: r["forces"] for fid, r in got.items() if r.get("forces") is not None},
            molecule=s.molecule, source=f"{label_dir.name}:{s.id}", charge=s.charge, multiplicity=s.multiplicity))
    return dict(by_split), dict(stats)


def level_metadata(label_dir: str | Path) -> dict[str, dict]:
    """{fidelity: {method, basis, program}} as recorded by the calculations themselves; a fidelity
    computed restricted and unrestricted (closed and open shells), or by two levels (canonical and
    RI-MP2), names both methods."""
    meta: dict[str, dict] = {}
    for r in read_records(Path(label_dir) / "labels.jsonl"):
        if r["status"] != "ok":
            continue
        fid = fidelity_of(r["fidelity"])
        if fid not in meta:
            meta[fid] = {k: r[k] for k in ("method", "basis", "program")}
        else:
            meta[fid]["method"] = merge_methods(meta[fid]["method"], r["method"])
    return meta


def merge_methods(have: str, more: str) -> str:
    """"a; b" and "b; c" -> "a; b; c": every method that made a fidelity, each once, in order."""
    known = have.split("; ")
    return "; ".join(known + [m for m in more.split("; ") if m not in known])
