"""Labelling a round's tasks within the budget, on this machine or as SLURM array jobs.

A round's tasks live in one labeller folder (`foundation.pipelines.label.run`: structures.jsonl
written once, labels.jsonl appended one finished calculation at a time), so a killed run resumes
without redoing any calculation. Locally, `run_labelling` runs them on `workers` processes and
asks `Admission` before each one starts: the CPU seconds already spent (sampling and fine-tuning
from the ledger, every finished calculation's own `cpu_seconds`) plus the estimates of those in
flight plus this one's must fit the round's limit; the cost model is recalibrated on every
finished calculation before it is asked, so the estimate sharpens as the run goes.

With `--slurm` (submitit, the `slurm` extra) the admitted tasks are split into chunks, each its own
labeller folder under `chunks/`, labelled by one element of a SLURM array job; the run waits for
each chunk's `done.json`. Admission is by estimate at submission (a job cannot be stopped
half-way); what the chunks spent is read from their records afterwards. A resumed run submits
again only the chunks that have no `done.json` and no job still queued or running.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from foundation.errors import UserError
from foundation.files import write_json
from foundation.recipes.adapt.costs import CostModel, basis_functions

CHUNKS = "chunks"
DONE = "done.json"


def structure_of(task):
    """The labeller's `Structure` for a task (`choose.Task`)."""
    from foundation.pipelines.label.structures import Structure

    c = task.candidate
    return Structure(id=c.id, molecule=c.molecule, numbers=c.numbers, positions=c.positions, sampling=c.how,
                     split=task.split, levels=[task.fidelity])


def label_folders(root: Path) -> list[Path]:
    """Every labeller folder under `root` (the run's output): rounds and their chunks."""
    from foundation.pipelines.label.structures import FILE

    return sorted(p.parent for p in Path(root).rglob(FILE))


def records(root: Path) -> list[tuple[dict, dict]]:
    """(structure record, label record) of every finished calculation under `root`."""
    from foundation.pipelines.label.store import read_records
    from foundation.pipelines.label.structures import read_structures, record

    out = []
    for folder in label_folders(root):
        structures = {s.id: record(s) for s in read_structures(folder)}
        out += [(structures[r["id"]], r) for r in read_records(folder / "labels.jsonl") if r["id"] in structures]
    return out


def calibrated(costs: CostModel, root: Path) -> CostModel:
    return costs.calibrated((r["fidelity"], basis_functions(s["numbers"]), float(r.get("cpu_seconds") or 0.0))
                            for s, r in records(root) if r.get("status") == "ok")


def labelling_seconds(root: Path) -> dict[str, float]:
    """CPU seconds of the finished calculations under `root`, per level (failed ones count too)."""
    spent: dict[str, float] = {}
    for _, r in records(root):
        spent[r["fidelity"]] = spent.get(r["fidelity"], 0.0) + float(r.get("cpu_seconds") or r.get("seconds") or 0.0)
    return spent


@dataclasses.dataclass
class Admission:
    """`run_labelling`'s `admit`: a task starts only while the budget holds (module doc).
    `spent_elsewhere()` gives the CPU seconds spent outside labelling."""

    root: Path
    folder: Path
    costs: CostModel
    limit: float
    spent_elsewhere: Callable[[], float]
    always: frozenset = frozenset()  # ids admitted whatever the budget (the held-out set)

    def __post_init__(self):
        self.admitted: dict[tuple[str, str], float] = {}

    def __call__(self, structure, fidelity: str) -> bool:
        from foundation.pipelines.label.store import read_records

        finished = {(r["id"], r["fidelity"]) for r in read_records(self.folder / "labels.jsonl")}
        costs = calibrated(self.costs, self.root)
        estimate = costs.seconds(fidelity, basis_functions(structure.numbers))
        in_flight = sum(v for k, v in self.admitted.items() if k not in finished)
        spent = self.spent_elsewhere() + sum(labelling_seconds(self.root).values())
        if structure.id not in self.always and spent + in_flight + estimate > self.limit:
            return False
        self.admitted[(structure.id, fidelity)] = estimate
        return True


def label_locally(folder: Path, tasks: Sequence, workers: int, admission: Admission, progress: bool) -> dict:
    from foundation.pipelines.label.run import run_labelling
    from foundation.pipelines.label.structures import write_structures

    write_structures(folder, [structure_of(t) for t in tasks])
    return run_labelling(folder, None, workers=workers, progress=progress, admit=admission)


# ---- SLURM ---------------------------------------------------------------------------------
@dataclasses.dataclass
class SlurmSettings:
    jobs: int = 8  # array elements a round's tasks are split over (at most)
    cpus_per_task: int = 4  # labelling workers in each
    timeout_min: int = 240
    partition: str | None = None
    poll_seconds: float = 5.0
    folder: str | None = None  # submitit's logs and pickles (default: <out>/slurm)


def label_chunk(folder: str, workers: int) -> dict:
    """One array element: label its chunk (resuming it if it was started), then mark it done."""
    from foundation.pipelines.label.run import run_labelling

    counts = run_labelling(Path(folder), None, workers=workers, progress=False)
    write_json(Path(folder) / DONE, counts)
    return counts


def label_on_slurm(folder: Path, tasks: Sequence, admission: Admission, settings: SlurmSettings,
                   say: Callable[[str], None]) -> dict:
    """Admit tasks by estimate, write them as chunks, submit the chunks not done as one array
    job and wait for every chunk's done.json."""
    from foundation.pipelines.label.structures import write_structures

    chunks_root = folder / CHUNKS
    chunks = sorted(p for p in chunks_root.glob("chunk-*") if p.is_dir()) if chunks_root.exists() else []
    deferred = 0
    if not chunks:
        admitted = []
        for t in tasks:
            if admission(structure_of(t), t.fidelity):
                admitted.append(t)
            else:
                deferred += 1
        size = max(1, math.ceil(len(admitted) / max(1, settings.jobs)))
        for k in range(0, len(admitted), size):
            chunk = chunks_root / f"chunk-{k // size:03d}"
            write_structures(chunk, [structure_of(t) for t in admitted[k:k + size]])
            chunks.append(chunk)
    pending = [c for c in chunks if not (c / DONE).exists() and not _queued(c)]
    if pending:
        job_ids = _submit(pending, folder, settings)
        for chunk, job in zip(pending, job_ids):
            write_json(chunk / "job.json", {"job_id": job})
        say(f"  submitted {len(pending)} array job element(s) ({', '.join(job_ids)}); waiting for them")
    _wait(chunks, settings.poll_seconds)
    counts = {"ok": 0, "unconverged": 0, "failed": 0, "skipped": 0}
    for chunk in chunks:
        for key, value in json.loads((chunk / DONE).read_text()).items():
            counts[key] = counts.get(key, 0) + value
    return counts | {"deferred": deferred}


def _submit(chunks: list[Path], folder: Path, settings: SlurmSettings) -> list[str]:
    try:
        import submitit
    except ImportError:
        raise UserError("--slurm needs submitit: pip install 'foundation-mlip[slurm]'") from None
    executor = submitit.AutoExecutor(folder=settings.folder or str(folder / "submitit"), cluster="slurm")
    parameters = {"timeout_min": settings.timeout_min, "cpus_per_task": settings.cpus_per_task,
                  "tasks_per_node": 1, "nodes": 1, "slurm_array_parallelism": len(chunks)}
    if settings.partition:
        parameters["slurm_partition"] = settings.partition
    executor.update_parameters(**parameters)
    jobs = executor.map_array(label_chunk, [str(c) for c in chunks], [settings.cpus_per_task] * len(chunks))
    return [str(j.job_id) for j in jobs]


def _queued(chunk: Path) -> bool:
    """A job of an earlier run still queued or running for `chunk` (submitit asks sacct; where it
    cannot tell, the chunk is waited for rather than computed twice)."""
    marker = chunk / "job.json"
    if not marker.exists():
        return False
    try:
        import submitit

        state = submitit.SlurmJob(folder=str(chunk), job_id=json.loads(marker.read_text())["job_id"]).state
    except Exception:  # noqa: BLE001 - no scheduler to ask: assume it is still there
        return True
    return state.upper() not in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL",
                                 "PREEMPTED", "BOOT_FAIL", "DEADLINE")


def _wait(chunks: list[Path], poll: float) -> None:
    while not all((c / DONE).exists() for c in chunks):
        time.sleep(poll)
