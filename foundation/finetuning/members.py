"""Fine-tuning an ensemble start (ANI-1x, ANI-1ccx, any `EnsembleModel` file): its members one by
one, written as one ensemble.

An ensemble is never trained as one network (`foundation.train.build.one_member`): its mean
would be fitted and its members would stop disagreeing. So member k is its own run
(`<run dir>/member<k>`) from member k of the start (`trainer.init_member=k`) with its own seed
(`trainer.seed` + k: its own shuffled order), on one split for all (`data.seed` is not varied, so
every member is validated on the same structures and the ensemble can be scored on them). Each
run keeps its own never-worse floor; at the end the ensemble is compared with its start (the same
members as they were at step 0, references refit) on the same selection metric, and the start is
written when the fine-tuned ensemble is not better (unless `trainer.allow_worse`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import pickle
from collections.abc import Callable
from typing import Any, NamedTuple

from foundation.errors import UserError


class Trained(NamedTuple):
    """One fine-tune's models before they are scored and written (`foundation.finetuning.run`)."""

    trainer: Any  # its trainer (an ensemble's: member 0's): the split, parameters, references
    start: Any  # the model at step 0 (pretrained weights, references refit); an ensemble's: its members'
    model: Any  # the model to write, default head set
    header: dict  # what the written file keeps of the training (metrics, training, data_manifest_hash)
    outcome: dict  # FinetuneResult's training fields: status, steps, best_step, selection, ...


def plan_members(model, members: int | None, where: str, trainer) -> int:
    """How many runs fine-tune `model` (`--members`; default: all members of an ensemble, 1 for
    one network). One run on an ensemble is its member 0 (`trainer.init_member` set here)."""
    networks = getattr(model, "members", None)
    size = len(networks) if networks is not None else None
    if members is not None and members < 1:
        raise UserError(f"--members {members}: give 1 or more")
    if size is None or trainer.init_member is not None:
        if members not in (None, 1):
            what = (f"trainer.init_member={trainer.init_member} chose one member" if size
                    else f"{where} is one model, not an ensemble")
            raise UserError(f"--members {members}: {what}; drop --members")
        return 1
    if members is not None and members > size:
        raise UserError(f"--members {members}: {where} has {size} members; give 1 to {size}")
    count = members or size
    if count == 1:
        trainer.init_member = 0
    return count


def train_members(config, count: int, train_one: Callable, describe: Callable, verbose: bool) -> Trained:
    """Fine-tune members 0..count-1 (`train_one(config, announce) -> Trained`, the one-run path;
    `describe(trainer)` the lines printed once) and combine them; see the module's docstring."""
    runs = _each(config, count, train_one, describe, verbose)
    first, fidelity = runs[0].trainer, config.data.fidelity
    start, tuned = _ensemble([r.start for r in runs], fidelity), _ensemble([r.model for r in runs], fidelity)
    start_value, start_metrics, start_rows = _selected(start, first)
    tuned_value, tuned_metrics, _ = _selected(tuned, first)
    kept = (config.trainer.early_stopping_patience > 0 and not config.trainer.allow_worse
            and None not in (start_value, tuned_value) and not _beats(first, start_value, tuned_value, start_rows))
    selection = first.selection
    outcome = {
        "status": "completed" if all(r.outcome["status"] == "completed" for r in runs) else "early_stopped",
        "steps": max(r.outcome["steps"] for r in runs), "best_step": max(r.outcome["best_step"] for r in runs),
        "selection": selection.describe(), "start_value": _shown(selection, start_value),
        "best_value": _shown(selection, start_value if kept else tuned_value), "kept_start": kept,
        "reason": _not_better(selection, start_value, tuned_value, count, first.config.significance) if kept else None,
        "members": [_member_record(config, k, r) for k, r in enumerate(runs)]}
    header = {"metrics": start_metrics if kept else tuned_metrics,
              "training": {"recipe": "finetune", "members": [str(r.trainer.run_dir) for r in runs]}}
    return Trained(first, start, start if kept else tuned, header, outcome)


def _each(config, count: int, train_one: Callable, describe: Callable, verbose: bool) -> list[Trained]:
    """The member runs, a progress bar over them and one line as each starts. Side by side where
    there are cores for it (`foundation.side_by_side`, `FOUNDATION_JOBS`): member 0 here (its
    trainer is the ensemble's: the split, the metrics), the others in spawned one-thread
    processes or here once this process is free. Each member is its own seeded run, so the
    weights are those of one after another (tested)."""
    import functools

    from foundation.progress import progress_bar
    from foundation.side_by_side import side_by_side
    from foundation.threads import parallel_jobs

    with progress_bar(total=count, desc="members", unit="member", enabled=verbose) as bar:
        write = bar.write if verbose else (lambda *_: None)

        def here(k: int) -> Trained:
            member = member_config(config, k)
            write(f"member {k + 1}/{count}: from member {k} of the start, trainer.seed={member.trainer.seed}, "
                  f"run dir {member.run_dir}")
            run = _with_split(train_one(member, (lambda t: write(describe(t))) if k == 0 else (lambda t: None)))
            bar.update(1)
            return run

        runs = side_by_side(count, here, functools.partial(_train_elsewhere, train_one, config),
                            workers=min(parallel_jobs(), count) - 1, done=lambda k: bar.update(1))
    return [pickle.loads(r) if isinstance(r, bytes) else r for r in runs]


class _Elsewhere(NamedTuple):
    """What a member trained in another process brings back of its trainer."""

    run_dir: Any


def _train_elsewhere(train_one: Callable, config, k: int) -> bytes:
    """Member k in a worker process, returned pickled: as bytes it travels by value (a model
    returned as it is would come back through torch's shared-memory file descriptors, one per
    tensor, or CUDA handles into a process that is about to end)."""
    run = _with_split(train_one(member_config(config, k), lambda t: None))
    return pickle.dumps(run._replace(trainer=_Elsewhere(run.trainer.run_dir)))


def _with_split(run: Trained) -> Trained:
    """The run with its split's fingerprint in its outcome (taken where its trainer lives)."""
    return run._replace(outcome={**run.outcome, "split": split_fingerprint(run.trainer.data)})


def member_config(config, k: int):
    """Member k's run: `<run dir>/member<k>`, from member k of the start, seed + k. The data
    config (and so its split seed) is the same object for every member: one split for all."""
    tc = config.trainer
    return dataclasses.replace(config, out_dir=str(config.run_dir), name=f"member{k}",
                               trainer=dataclasses.replace(tc, seed=tc.seed + k, init_member=k))


def split_fingerprint(data) -> str:
    """sha256 of the sources of the training and the validation structures, in order."""
    digest = hashlib.sha256()
    for part in (data.train, data.val):
        digest.update("\n".join(s.source or s.molecule for s in part).encode())
        digest.update(b"\0")
    return digest.hexdigest()


def _member_record(config, k: int, run: Trained) -> dict:
    return {"member": k, "seed": config.trainer.seed + k, "run_dir": str(run.trainer.run_dir),
            "split": run.outcome["split"],
            **{key: run.outcome[key] for key in ("status", "steps", "best_step", "kept_start",
                                                 "start_value", "best_value")}}


def _ensemble(models: list, fidelity: str):
    from foundation.models.ensemble import EnsembleModel

    ensemble = EnsembleModel.from_members(models)
    ensemble.default_head = fidelity
    return ensemble.eval()


def _selected(model, trainer) -> tuple[float | None, dict[str, float], list]:
    """`model`'s validation metrics on the members' split, as each member's trainer measures
    them, its selection metric (None when validation lacks one of its terms) and the
    per-structure rows (`foundation.train.significance`)."""
    from foundation.models.prediction import predict
    from foundation.train.validate import validate

    def predict_fn(batch, heads, force_heads):
        return predict(model, batch, heads, force_heads, create_graph=False)

    rows: list = []
    val = validate(predict_fn, trainer.data.val_batches(), trainer.heads, trainer.loss_config,
                   trainer.engine.device, trainer.dtype, rows=rows)
    return trainer.selection.value(val), val, rows


def _beats(trainer, start_value: float, tuned_value: float, start_rows: list) -> bool:
    """The fine-tuned ensemble is lower than its start by more than the start's sampling error
    (`trainer.significance` bootstrap standard errors, as each member's own floor;
    `foundation.train.significance`)."""
    from foundation.train.significance import standard_error

    tc = trainer.config
    margin = tc.significance * standard_error(start_rows, trainer.metric_of_sums, tc.bootstrap_draws, tc.seed) \
        if tc.significance > 0 else 0.0
    return tuned_value < start_value - margin


def _shown(selection, value: float | None) -> str:
    return selection.format(value) if value is not None and math.isfinite(value) else ""


def _not_better(selection, start: float, tuned: float, count: int, sigmas: float = 0.0) -> str:
    beyond = f" by more than {sigmas:g} × its sampling error (bootstrap over validation molecules)" if sigmas > 0 else ""
    return (f"not better: the fine-tuned ensemble's {selection.describe()} ({selection.format(tuned)}) is not "
            f"lower than its start's ({selection.format(start)}: the {count} start members, reference energies "
            f"refit){beyond}, so the start ensemble is written; --allow-worse writes the fine-tuned ensemble instead")
