"""Run a labelling plan: every (structure, level) task once, in parallel over structures (a
process pool, one thread per process), resumably.

Output folder:
    structures.jsonl   the expanded plan, written once, so a resumed run labels the same geometries
                       (its format, reader and writer: `structures.py`)
    labels.jsonl       one record per finished task (LabelStore): energy (eV), forces (eV/Å),
                       method, basis, program version, convergence, wall time; failures and
                       unconverged calculations are recorded with status != "ok" and never used
                       as labels
Each structure is computed with its own charge and spin multiplicity (`structures.jsonl` keys
`charge`, `multiplicity`; absent: a neutral singlet, so older folders resume unchanged), checked
before the first calculation (`plan.check_structure`). A killed run restarts where it stopped: finished tasks are skipped, failed ones are not retried
unless `retry_failed`. A worker process that dies takes only the task that killed it: the others
in flight with it are run again, one at a time, until the culprit is found.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import multiprocessing
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from foundation.pipelines.label.levels import get_level
from foundation.pipelines.label.plan import check_structure, expand
from foundation.pipelines.label.structures import (Structure, has_structures, read_structures, structures_path,
                                                   write_structures)
from foundation.pipelines.label.store import LabelStore
from foundation.progress import progress_bar


def _init_worker() -> None:
    from foundation.children import die_with_parent

    die_with_parent()  # a calculation nobody will take the result of stops with its parent
    os.environ["OMP_NUM_THREADS"] = "1"
    from pyscf import lib

    lib.num_threads(1)


def _compute(fidelity: str, numbers: list, positions: list, charge: int = 0, multiplicity: int = 1) -> dict:
    level = get_level(fidelity)
    cpu = time.process_time()  # one thread per worker: what the calculation cost, whoever shares the machine
    if (charge, multiplicity) == (0, 1):  # as before: levels of older plugins take no charge or spin
        label = level.compute(np.array(numbers), np.array(positions))
    else:
        label = level.compute(np.array(numbers), np.array(positions), charge=charge, multiplicity=multiplicity)
    return dataclasses.asdict(label) | {"cpu_seconds": time.process_time() - cpu}


def load_structures(out_dir: Path, plan: dict | None) -> list[Structure]:
    """The folder's structures; a new folder gets them from `plan` (written once)."""
    if not has_structures(out_dir):
        if plan is None:
            from foundation.errors import UserError

            raise UserError(f"{structures_path(out_dir)} does not exist: give a plan to start a new labelling run")
        write_structures(out_dir, expand(plan))
    return read_structures(out_dir)


def run_labelling(out_dir: str | Path, plan: dict | None = None, workers: int = 1,
                  retry_failed: bool = False, max_tasks: int | None = None, progress: bool = True,
                  problems: list[str] | None = None,
                  admit: Callable[[Structure, str], bool] | None = None) -> dict:
    """Label every pending task; returns counts {"ok", "unconverged", "failed", "skipped"} (and
    "deferred" with `admit`). `problems` (a list) gets one line per calculation of this run that failed or did
    not converge, "<id> <fidelity>: <why>", in the order they finished. `admit(structure,
    fidelity)`, asked just before each task would start (in task order), may refuse it (a
    budget spent): it is left undone, counted as deferred, and asked again by a later run."""
    out_dir = Path(out_dir)
    structures = load_structures(out_dir, plan)
    for s in structures:  # every refusal before the first calculation
        check_structure(s)
    with LabelStore(out_dir / "labels.jsonl") as store:
        before = len(store.records)
        if retry_failed:
            store.done = {(r["id"], r["fidelity"]) for r in store.records if r["status"] == "ok"}
        tasks = [(s, fid) for s in structures for fid in s.levels if (s.id, fid) not in store.done]
        counts = {"ok": 0, "unconverged": 0, "failed": 0, "skipped": sum(len(s.levels) for s in structures) - len(tasks)}
        if admit is not None:
            counts["deferred"] = 0
        tasks = tasks[:max_tasks] if max_tasks is not None else tasks
        bar = progress_bar(total=len(tasks), desc="labelling", unit="calc", enabled=progress, smoothing=0.05)
        while tasks:
            tasks, suspects = _run_pool(tasks, store, workers, counts, bar, 2 * workers, admit)
            while suspects:  # in flight when a worker died: rerun them one at a time to find which killed it
                suspects, _ = _run_pool(suspects, store, 1, counts, bar, 1)
        bar.close()
        if problems is not None:
            problems.extend(_problem(r) for r in store.records[before:] if r["status"] != "ok")
    return counts


def _problem(record: dict) -> str:
    """One line: which calculation, and why it gave no label."""
    why = record.get("error") or "did not converge" + (
        f" ({record['details']['failed']} reference)" if record.get("details", {}).get("failed") else "")
    return f"{record['id']} {record['fidelity']}: {why}"


def _run_pool(tasks, store: LabelStore, workers: int, counts: dict, bar, max_in_flight: int,
              admit: Callable | None = None) -> tuple[list, list]:
    """Run `tasks` in a fresh pool until done or the pool breaks (a worker died: a crash in native
    code, the kernel's OOM killer). Returns (tasks not started, tasks in flight when it broke). A
    task alone in flight when its worker died is the one that killed it: it is recorded as failed,
    so one poisonous structure cannot stop the run, and no innocent task is lost with it."""
    ctx = multiprocessing.get_context("spawn")
    pending = list(reversed(tasks))
    in_flight: dict[cf.Future, tuple] = {}
    with cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker) as pool:
        while pending or in_flight:
            try:
                while pending and len(in_flight) < max_in_flight:
                    s, fid = pending[-1]
                    if admit is not None and not admit(s, fid):
                        pending.pop()
                        counts["deferred"] += 1
                        bar.update()
                        continue
                    in_flight[pool.submit(_compute, fid, s.numbers.tolist(), s.positions.tolist(),
                                          int(s.charge), int(s.multiplicity))] = (s, fid)
                    pending.pop()
            except cf.process.BrokenProcessPool:  # a worker died between two waits
                break
            done, _ = cf.wait(in_flight, return_when=cf.FIRST_COMPLETED)
            if any(_broke(f) for f in done):
                break
            for future in done:
                _settle(store, future, *in_flight.pop(future), counts, bar)
        cf.wait(in_flight)  # a broken pool fails every unfinished future at once
        suspects = []
        for future, (s, fid) in in_flight.items():
            if _broke(future):
                suspects.append((s, fid))
            else:  # finished before the worker died
                _settle(store, future, s, fid, counts, bar)
    if len(suspects) == 1 and len(in_flight) == 1:
        _store_failure(store, *suspects[0], "worker process died", counts, bar)
        suspects = []
    return list(reversed(pending)), suspects


def _broke(future: cf.Future) -> bool:
    return isinstance(future.exception(), cf.process.BrokenProcessPool)


def _settle(store: LabelStore, future: cf.Future, s: Structure, fid: str, counts: dict, bar) -> None:
    """Record a finished task: its label (ok or unconverged), or the error it raised."""
    error = future.exception()
    if error is not None:  # a calculation error is data, not a crash
        _store_failure(store, s, fid, f"{type(error).__name__}: {error}", counts, bar)
        return
    record = _record(s, fid, future.result())
    store.append(record)
    counts[record["status"]] += 1
    bar.update()
    bar.set_postfix(ok=counts["ok"], bad=counts["unconverged"] + counts["failed"])


def _record(s: Structure, fid: str, label: dict) -> dict:
    status = "ok" if label["converged"] else "unconverged"
    return {"id": s.id, "fidelity": fid, "status": status, **label}


def _store_failure(store: LabelStore, s: Structure, fid: str, why: str, counts: dict, bar) -> None:
    store.append({"id": s.id, "fidelity": fid, "status": "failed", "error": why})
    counts["failed"] += 1
    bar.update()
