"""Labelled records → `Sample`s, grouped by split. Only calculations with status "ok" become
labels; the rest are counted so the caller can report them."""

from __future__ import annotations

import collections
from pathlib import Path

from foundation.data import Sample
from foundation.pipelines.label.store import read_records
from foundation.pipelines.label.structures import read_structures


def load_samples(label_dir: str | Path) -> tuple[dict[str, list[Sample]], dict]:
    """({split: [Sample]}, stats). A structure with no successful label is left out."""
    label_dir = Path(label_dir)
    structures = read_structures(label_dir)
    labels: dict[str, dict[str, dict]] = collections.defaultdict(dict)
    stats = collections.Counter()
    for r in read_records(label_dir / "labels.jsonl"):
        stats[f"{r['fidelity']}:{r['status']}"] += 1
        if r["status"] == "ok":
            labels[r["id"]][r["fidelity"]] = r
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
    computed restricted and unrestricted (closed and open shells) names both methods."""
    meta: dict[str, dict] = {}
    for r in read_records(Path(label_dir) / "labels.jsonl"):
        if r["status"] != "ok":
            continue
        if r["fidelity"] not in meta:
            meta[r["fidelity"]] = {k: r[k] for k in ("method", "basis", "program")}
        elif r["method"] not in meta[r["fidelity"]]["method"].split("; "):
            meta[r["fidelity"]]["method"] += f"; {r['method']}"
    return meta
