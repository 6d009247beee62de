"""`finetune()`: one call from a pretrained model and a labelled file to a fine-tuned model, its
validation errors before and after, and a report (the steps: see `foundation.finetuning`)."""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from foundation.errors import UserError
from foundation.finetuning.data import check_count, check_elements, read_user_data
from foundation.finetuning.members import Trained, plan_members, train_members
from foundation.models.states import check_samples
from foundation.train.trainer import Trainer

SCORE_KEYS = ("relative_energy_rmse_kcal_mol", "energy_mae_kcal_mol", "energy_rmse_kcal_mol",
              "forces_mae_ev_per_a", "forces_rmse_ev_per_a")


@dataclasses.dataclass
class FinetuneResult:
    model_path: Path  # the fine-tuned model; its default head is `fidelity`
    report_path: Path  # Markdown report
    plot_path: Path | None  # parity plot (None without matplotlib)
    run_dir: Path  # metrics.csv, config.yaml, checkpoints
    fidelity: str
    copied_from: str | None  # the head the new one started as; None when an existing head was continued
    split_by: str  # molecule | conformer
    n_train: int
    n_val: int
    before: dict[str, Any]  # validation scores at step 0 (references refit), `SCORE_KEYS`
    after: dict[str, Any]  # the same, after training
    status: str  # completed | early_stopped
    steps: int
    best_step: int  # the step whose weights were written (0: the start's)
    seconds: float
    molecules: str = ""  # how structures were grouped into molecules ("named by the file's 'molecule' key")
    n_molecules: int = 0
    selection: str = ""  # the validation metric that chose the weights, in words
    start_value: str = ""  # that metric for the start and for the weights written, with units
    best_value: str = ""
    kept_start: bool = False  # no fine-tuned step beat the start: the start was written
    reason: str | None = None  # why, in one line, when `kept_start`
    references: str = ""  # how the head's reference energies were refit
    # An ensemble start fine-tuned member by member: one dict per member (member, seed, run_dir,
    # split, status, steps, best_step, kept_start, start_value, best_value); empty for one network.
    # Then `before` is the start's members (references refit) as an ensemble, `after` the ensemble
    # written, `kept_start` says the start ensemble was written, and status / steps / best_step
    # are over the members (completed when all completed; the most steps; the latest best step).
    members: list[dict] = dataclasses.field(default_factory=list)


def finetune(model, data, energy_key: str = "energy", forces_key: str | None = None,
             fidelity: str | None = None, val_fraction: float | None = None,
             out: str | os.PathLike | None = None, overrides: Sequence[str] = (), index: str = ":",
             verbose: bool = True, molecule_key: str | None = None, allow_worse: bool = False,
             members: int | None = None, energy_unit: str | None = None,
             length_unit: str = "angstrom") -> FinetuneResult:
    """Fine-tune `model` (a registry name, path, URL or a model object) on `data` (an ASE-readable
    file, a list of `ase.Atoms`, or a list of `Sample`s, whose other fidelities train extra heads)
    whose energies (eV) are under `energy_key` and forces (eV/Å,
    optional) under `forces_key`, as fidelity `fidelity` (a new head, or one the model has;
    default "user"). `overrides` are Hydra overrides on top of `recipe=finetune_user`, e.g.
    `["trainer.max_steps=3000", "data.split=molecule", "name=mine"]`. Writes the model to `out`
    (default `<run dir>/model.safetensors`) and a report beside it; with `verbose`, prints progress
    and the before/after errors.

    `molecule_key`: the info key naming each structure's molecule (`data.group_key`; default: one
    of the usual names if the file has it, else formula and bonds). The weights written are those
    of the best validation on `trainer.early_stopping_metric` (default: relative-energy RMSE, see
    `foundation.train.selection`) and never worse there than the start (the pretrained model with
    its refit references): when no step beats it, the start is written and `reason` says so;
    `allow_worse=True` writes the best step anyway.

    An ensemble start (e.g. "ani-1x") is fine-tuned member by member and written as one ensemble
    of the first `members` of its members (default all; `foundation.finetuning.members`);
    `members=1` fine-tunes its member 0 alone and writes a single model.

    `energy_unit` (eV, hartree, kcal/mol, kJ/mol) and `length_unit` (angstrom, bohr) are the
    file's units, converted on read; without `energy_unit`, energies that look like another unit
    than eV are refused before anything is trained. Structures of a charge or spin multiplicity
    the start was not trained on are refused (`foundation.models.states`)."""
    from foundation.finetuning.report import describe, format_summary, references_line, write_report

    say = print if verbose else (lambda *_: None)
    started = time.perf_counter()
    config = compose_config(fidelity, val_fraction, overrides, verbose)
    if molecule_key is not None:
        config.data.group_key = str(molecule_key)
    if allow_worse:
        config.trainer.allow_worse = True
    fidelity = config.data.fidelity
    skipped: list[str] = []  # with data.on_error=skip: the structures left out, and why
    samples, where, molecules = read_user_data(data, energy_key, forces_key, fidelity, index,
                                               config.data.on_error, skipped, config.data.group_key,
                                               energy_unit, length_unit)
    pretrained, model_name = _load(model)
    check_elements(pretrained, samples, model_name)
    check_samples(pretrained, samples, model_name)  # charges and spins it was never trained on: refused
    check_count(samples, where)
    count = plan_members(pretrained, members, model_name, config.trainer)
    label = _label(pretrained, model_name, count, config.trainer.init_member)
    copied_from = None
    if fidelity not in pretrained.heads:
        copied_from = config.trainer.new_head_from or pretrained.default_head or pretrained.heads[0]
        config.trainer.new_head_from = copied_from
    config.trainer.init_from = _init_path(model, pretrained, config.run_dir)
    config.data.samples, config.data.skipped = samples, skipped

    def lines(trainer) -> str:
        return describe(trainer, label, where, samples, fidelity, copied_from, config.data, molecules)

    trained = (_train_one(config, lambda trainer: say(lines(trainer))) if count == 1
               else train_members(config, count, _train_one, lines, verbose))
    trainer, tuned, data_module = trained.trainer, trained.model, trained.trainer.data
    scored = [s for s in data_module.val if fidelity in s.energies]  # samples given may carry other fidelities only
    before, before_energies = evaluate_scores(trained.start, scored, fidelity)
    after, after_energies = evaluate_scores(tuned, scored, fidelity)
    out = Path(out) if out is not None else config.run_dir / "model.safetensors"
    record = FinetuneResult(
        model_path=out, report_path=_report_path(out), plot_path=None, run_dir=config.run_dir,
        fidelity=fidelity, copied_from=copied_from, split_by=data_module.split_by,
        n_train=len(data_module.train), n_val=len(data_module.val), before=before, after=after,
        seconds=time.perf_counter() - started, molecules=molecules,
        n_molecules=len({s.molecule for s in [*data_module.train, *data_module.val]}),
        references=references_line(trainer, fidelity, copied_from)
        + (f" (member 1's; each of the {count} refits its own)" if count > 1 else ""), **trained.outcome)
    _save(tuned, trained.header, out, record, label, where, energy_key, forces_key, energy_unit or "eV")

    context = {"model": label, "data": where, "energy_key": energy_key, "forces_key": forces_key,
               "freeze": list(trainer.freeze_patterns), "parameters": trainer.n_parameters,
               "allow_worse": config.trainer.allow_worse,
               "references": tuned.reference_energies_dict()[fidelity]}
    record.plot_path = write_report(record, scored, before_energies, after_energies, context)
    say(format_summary(record))
    return record


def _train_one(config, announce) -> Trained:
    """One run (a single model, or one member of an ensemble): build the trainer, `announce(trainer)`,
    keep a copy of the start, train, load the weights it exported (the best validation's)."""
    import copy

    from foundation.hub.format import load_model_file, read_header

    trainer = Trainer(config)
    announce(trainer)
    start = copy.deepcopy(trainer.model).eval()  # the pretrained weights, references refit: "before"
    start.default_head = config.data.fidelity
    result = trainer.train()
    if result.status == "interrupted":
        raise UserError(f"fine-tuning interrupted at step {result.step}; the run is in {result.run_dir}")
    tuned = load_model_file(result.model_path, trainer.engine.device)
    tuned.default_head = config.data.fidelity
    header = read_header(result.model_path)
    state, selection = trainer.state, trainer.selection
    outcome = {"status": result.status, "steps": result.step, "best_step": result.best_step,
               "selection": result.selection, "start_value": _shown(selection, state.start_metric),
               "best_value": _shown(selection, state.best_metric), "kept_start": result.kept_start,
               "reason": _not_better(trainer) if result.kept_start else None}
    kept = {k: header[k] for k in ("metrics", "training", "data_manifest_hash") if k in header}
    return Trained(trainer, start, tuned, kept, outcome)


def _label(model, name: str, count: int, member: int | None) -> str:
    """The start as the output names it: "ani-1x"; "ani-1x, member 0 of 8" or "ani-1x, members
    0-3 of 8" when not all of its members are fine-tuned."""
    size = len(getattr(model, "members", None) or ())
    if count == size or not size:
        return name
    return f"{name}, member {member} of {size}" if count == 1 else f"{name}, members 0-{count - 1} of {size}"


def _shown(selection, value: float) -> str:
    return selection.format(value) if math.isfinite(value) else ""


def _not_better(trainer) -> str:
    """The one line that says the start was written, and why."""
    state, selection = trainer.state, trainer.selection
    best = (f"the best fine-tuned step ({state.best_trained_step}) reached {selection.format(state.best_trained_metric)}"
            if math.isfinite(state.best_trained_metric) else "no fine-tuned step was scored")
    beyond = (f" by more than its sampling error ({trainer.config.significance:g} × "
              f"{selection.format(state.start_error)}, bootstrap over validation molecules)"
              if trainer.config.significance > 0 else "")
    return (f"not better: fine-tuning did not improve the {selection.describe()} of the start "
            f"({selection.format(state.start_metric)}; {best}){beyond}, so the starting model (pretrained weights, "
            "refit reference energies) is written; --allow-worse writes the best fine-tuned step instead")


def compose_config(fidelity: str | None, val_fraction: float | None, overrides: Sequence[str],
                   progress: bool = True):
    """The run config of `recipe=finetune_user` with the arguments and the caller's overrides
    (the caller's last: they win)."""
    from foundation.models.base import check_head_name
    from foundation.train.compose import load_run_config

    given = ["recipe=finetune_user"]
    if fidelity is not None:
        given.append(f"data.fidelity={check_head_name(fidelity)}")
    if val_fraction is not None:
        given.append(f"data.val_fraction={float(val_fraction)!r}")
    if not progress:
        given.append("logger.progress_bar=false")
    chosen = [o for o in overrides if o.lstrip("+~").split("=")[0] in ("data", "recipe")]
    if chosen:
        raise UserError(f"{chosen[0]}: fine-tuning reads the structures it is given with its own recipe; "
                        "drop this override (set data.split, data.val_fraction, trainer.… instead)")
    return load_run_config([*given, *overrides])


def evaluate_scores(model, samples, fidelity: str) -> tuple[dict[str, Any], list[float]]:
    """(`SCORE_KEYS` of `model`'s `fidelity` head on `samples`, predicted energies in eV in the
    order of `samples`, for the parity plot). Relative energies are relative to each molecule's
    mean (`Sample.molecule`), as the trainer's validation measures them."""
    from foundation.evaluation.evaluate import evaluate
    from foundation.evaluation.metrics import relative_energy_rmse_kcal_mol

    full = evaluate(model, samples, head=fidelity, fidelity=fidelity, include_forces=False)
    rows = full["structures"]
    pred, ref = [r["energy_pred_ev"] for r in rows], [r["energy_ref_ev"] for r in rows]
    full["relative_energy_rmse_kcal_mol"] = relative_energy_rmse_kcal_mol(
        pred, ref, [r["molecule"] or r["formula"] for r in rows])
    return {k: full[k] for k in SCORE_KEYS if k in full}, pred


def _load(model) -> tuple[Any, str]:
    import torch

    if isinstance(model, torch.nn.Module):
        return model, f"the given {type(model).__name__} model"
    from foundation.loading import load_pretrained

    return load_pretrained(str(model), device="cpu"), str(model)


def _init_path(model, loaded, run_dir: Path) -> str:
    """What the trainer starts from: the caller's name or path, or a model object saved into the
    run directory (the trainer rebuilds its model from a file)."""
    if isinstance(model, (str, os.PathLike)):
        return str(model)
    from foundation.hub.format import save_model

    path = save_model(loaded, Path(run_dir) / "pretrained.safetensors",
                      {"default_head": loaded.default_head} if loaded.default_head else None)
    return str(path)


def _save(tuned, kept: dict, out: Path, record: FinetuneResult, model_name: str, where: str,
          energy_key: str, forces_key: str | None, energy_unit: str = "eV") -> None:
    """The model to write, its default head set, what its training's header said (`kept`) and the
    fine-tune recorded in the header."""
    from foundation.hub.format import save_model

    recorded = {"from": model_name, "data": where, "energy_key": energy_key, "forces_key": forces_key,
                "energy_unit_given": energy_unit,
                "fidelity": record.fidelity, "copied_from": record.copied_from, "split_by": record.split_by,
                "n_train": record.n_train, "n_val": record.n_val, "before": record.before,
                "after": record.after, "status": record.status, "steps": record.steps,
                "best_step": record.best_step, "molecules": record.molecules, "n_molecules": record.n_molecules,
                "selection": record.selection, "kept_start": record.kept_start, "reason": record.reason,
                "references": record.references}
    if record.members:
        recorded["members"] = record.members
    save_model(tuned, out, {**kept, "default_head": record.fidelity, "finetune": recorded})


def _report_path(out: Path) -> Path:
    return out.with_suffix(".md") if out.name != "model.safetensors" else out.with_name("report.md")
