"""Oracles: who gives the picked structures their labels.

    PySCFOracle(fidelity)   computes them (the labeller: `run_labelling`, resumable, one record
                            per calculation with its wall time)
    LookupOracle(known)     reads labels that already exist (an experiment on a labelled pool: the
                            selector never sees them, only the structures; the oracle reveals the
                            label of what was picked, as if it had been computed)

Both write the labeller's folder layout in `work_dir` (structures.jsonl, labels.jsonl), so a
round's labels look the same whoever made them, and asking again for structures already labelled
there computes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from foundation.data import Sample
from foundation.errors import DataError
from foundation.pipelines.label.levels import get_level
from foundation.pipelines.label.store import LabelStore, read_records
from foundation.pipelines.label.structures import Structure, read_structures, write_structures


def _write_structures(work_dir: Path, samples: Sequence[Sample], fidelity: str) -> None:
    """The structures to label, once: a resumed round must label exactly the same ones."""
    write_structures(work_dir, [Structure(id=s.source, molecule=s.molecule, numbers=s.numbers, positions=s.positions,
                                          sampling="active_learning", split="train", levels=[fidelity],
                                          charge=s.charge, multiplicity=s.multiplicity) for s in samples])


def labelled_samples(work_dir: Path, fidelity: str) -> tuple[list[Sample], dict]:
    """The structures of `work_dir` with an "ok" label at `fidelity` (only that label), and
    stats {"ok", "failed", "seconds"} over its records."""
    structures = {s.id: s for s in read_structures(work_dir)}
    records = [r for r in read_records(work_dir / "labels.jsonl") if r["fidelity"] == fidelity]
    out, failed, seconds = [], 0, 0.0
    for r in records:
        seconds += float(r.get("seconds") or 0.0)
        if r["status"] != "ok":
            failed += 1
            continue
        s = structures[r["id"]]
        forces = {fidelity: r["forces"]} if r.get("forces") is not None else {}
        out.append(Sample(numbers=s.numbers, positions=s.positions, energies={fidelity: r["energy"]},
                          forces=forces, molecule=s.molecule, source=s.id, charge=s.charge,
                          multiplicity=s.multiplicity))
    return out, {"ok": len(out), "failed": failed, "seconds": seconds}


class PySCFOracle:
    """Labels at `fidelity` (a level in `foundation.pipelines.label.levels`) computed with PySCF."""

    def __init__(self, fidelity: str, workers: int = 1):
        self.fidelity = get_level(fidelity).fidelity
        self.workers = workers

    def label(self, samples: Sequence[Sample], work_dir: str | Path) -> tuple[list[Sample], dict]:
        from foundation.pipelines.label.run import run_labelling

        work_dir = Path(work_dir)
        _write_structures(work_dir, samples, self.fidelity)
        counts = run_labelling(work_dir, None, workers=self.workers, progress=False)
        labelled, stats = labelled_samples(work_dir, self.fidelity)
        return labelled, stats | {"computed_now": counts["ok"] + counts["unconverged"] + counts["failed"]}


class LookupOracle:
    """Reveals labels the pool already has: `known` maps a structure's `source` to a sample
    carrying its `fidelity` label."""

    def __init__(self, fidelity: str, known: Sequence[Sample]):
        self.fidelity = fidelity
        self.known = {s.source: s for s in known if fidelity in s.energies}

    def label(self, samples: Sequence[Sample], work_dir: str | Path) -> tuple[list[Sample], dict]:
        work_dir = Path(work_dir)
        _write_structures(work_dir, samples, self.fidelity)
        computed = 0
        with LabelStore(work_dir / "labels.jsonl") as store:
            for s in samples:
                if (s.source, self.fidelity) in store.done:
                    continue
                store.append(self._record(s))
                computed += 1
        labelled, stats = labelled_samples(work_dir, self.fidelity)
        return labelled, stats | {"computed_now": computed}

    def _record(self, s: Sample) -> dict:
        found = self.known.get(s.source)
        if found is None:
            raise DataError(f"{s.source}: the lookup oracle has no {self.fidelity} label for this structure")
        if not np.allclose(found.positions, s.positions, atol=1e-6):
            raise DataError(f"{s.source}: the lookup oracle's structure has other positions than the pick")
        forces = found.forces.get(self.fidelity)
        return {"id": s.source, "fidelity": self.fidelity, "status": "ok", "energy": found.energies[self.fidelity],
                "forces": None if forces is None else forces.tolist(), "method": "lookup", "basis": "",
                "program": "known label", "seconds": 0.0}
