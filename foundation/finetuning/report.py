"""What a fine-tune tells its user: the lines it prints before training, the before/after table,
and the Markdown report with a parity plot written beside the model (`foundation.finetuning`)."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from foundation.files import replacing, write_text_atomic
from foundation.data.elements import symbol
from foundation.data.sources.in_memory import AUTO_MIN_MOLECULES
from foundation.data.molecules import hill_formula
from foundation.units import EV_TO_KCAL_MOL

ROWS = [  # (score key, label, unit, format)
    ("relative_energy_rmse_kcal_mol", "relative energy RMSE", "kcal/mol", ".3f"),
    ("energy_mae_kcal_mol", "energy MAE", "kcal/mol", ".3f"),
    ("energy_rmse_kcal_mol", "energy RMSE", "kcal/mol", ".3f"),
    ("forces_mae_ev_per_a", "forces MAE", "eV/Å", ".4f"),
    ("forces_rmse_ev_per_a", "forces RMSE", "eV/Å", ".4f"),
]


def describe(trainer, model_name: str, where: str, samples, fidelity: str, copied_from: str | None,
             data_config, molecules: str = "") -> str:
    """The lines printed once the trainer is built: model and head, data, split (with how the
    molecules were told apart), refit references, what trains and what chooses the weights."""
    data = trainer.data
    total, trainable = trainer.n_parameters
    n_molecules = len({s.molecule for s in [*data.train, *data.val]})
    named = f"{n_molecules} molecule{'s' if n_molecules != 1 else ''}" + (f" {molecules}" if molecules else "")
    if data.split_by == "conformer":
        why = named
        if data_config.split == "auto":
            why += f"; fewer than {AUTO_MIN_MOLECULES}: conformers of one molecule may be in both sets"
    else:
        why = f"{named}; none in both sets"
    head = (f"new head {fidelity!r}, copied from {copied_from!r}" if copied_from
            else f"continuing head {fidelity!r}")
    elements = sorted({int(z) for s in samples for z in s.numbers})
    pretrained_heads = [h for h in trainer.model.heads if h != fidelity or not copied_from]
    return "\n".join([
        f"model: {model_name} (heads {', '.join(pretrained_heads)}); {head}",
        f"data: {where}: {len(samples)} structures, elements {', '.join(symbol(z) for z in elements)}"
        + (f"; {len(data_config.skipped)} skipped (data.on_error=skip)" if getattr(data_config, "skipped", None) else ""),
        f"split: by {data.split_by} ({why}): {len(data.train)} training, {len(data.val)} validation structures",
        references_line(trainer, fidelity, copied_from),
        f"training {trainable:,} of {total:,} parameters (frozen: {', '.join(trainer.freeze_patterns) or 'none'}), "
        f"lr {trainer.config.lr:g}, up to {trainer.config.max_steps} steps; device {trainer.engine.device}; "
        f"run dir {trainer.run_dir}",
        f"weights chosen on the {trainer.selection.describe()}, early stopping after "
        f"{trainer.config.early_stopping_patience} validations without improvement"
        + ("" if trainer.config.allow_worse else "; never worse than the start"),
    ])


def references_line(trainer, fidelity: str, copied_from: str | None) -> str:
    """E.g. "reference energies: a ridge-regularised change from head 'ccsdt_ccpvdz''s (…):
    H +0.0123, C -0.2345 eV"."""
    fit = trainer.reference_fits.get(fidelity)
    if fit is None:
        return "reference energies of the head: kept"
    shown = [(z, d) for z, d in fit.change.items() if d != 0.0 or fit.method == "least squares"]
    if fit.method == "least squares":
        values = ", ".join(f"{symbol(z)} {e:.4f}" for z, e in fit.energies.items())
        return f"reference energies of the head fitted by least squares ({fit.describe()}): {values} eV"
    origin = f"head {copied_from!r}" if copied_from else "its own"
    values = ", ".join(f"{symbol(z)} {d:+.4f}" for z, d in shown)
    return f"reference energies refit as a change from {origin} ({fit.describe()}): {values} eV"


def score_rows(before: dict, after: dict) -> list[tuple[str, str, str]]:
    """(label with unit, before, after) for each score either side has; "n/a" for NaN (no
    formula with two validation structures: no relative energy to score)."""
    def shown(scores, key, fmt):
        value = scores.get(key)
        return "n/a" if value is None or not math.isfinite(value) else f"{value:{fmt}}"

    return [(f"{label} ({unit})", shown(before, key, fmt), shown(after, key, fmt))
            for key, label, unit, fmt in ROWS if key in before or key in after]


def format_summary(result) -> str:
    """The lines printed at the end: status (and, when the start was kept, the one line why),
    the before/after table, where the files are."""
    lines = [_training(result), *member_lines(result)] + ([result.reason] if result.reason else [])
    start = f"; before: its {len(result.members)} start members" if result.members else ""
    lines += [f"validation errors{' of the ensemble' if result.members else ''} ({result.n_val} structures, "
              f"head {result.fidelity}{start}):",
              f"  {'':<32}{'before':>10}{'after':>10}"]
    lines += [f"  {label:<32}{b:>10}{a:>10}" for label, b, a in score_rows(result.before, result.after)]
    lines.append(f"model: {result.model_path} (default head {result.fidelity})")
    lines.append(f"report: {result.report_path}")
    return "\n".join(lines)


def member_lines(result) -> list[str]:
    """One line per member of an ensemble fine-tune: how its run ended and which weights it gave."""
    n = len(result.members)
    return [f"  member {m['member'] + 1}/{n}: {m['status'].replace('_', ' ')} after {m['steps']} steps, "
            + ("no step beat its start: its start is used" if m["kept_start"] else
               f"weights of step {m['best_step']} ({m['best_value']}; start {m['start_value']})")
            for m in result.members]


def _training(result) -> str:
    if result.members:
        kept = (f"not better than its start ({result.start_value}): the start is written" if result.kept_start
                else f"selection metric {result.best_value}, start {result.start_value}")
        return (f"{len(result.members)} members fine-tuned, each its own run, in {result.seconds:.0f} s; "
                f"the ensemble: {kept}")
    if result.kept_start:
        kept = f"no step beat the start ({result.start_value}): the start is written"
    else:
        gain = f", start {result.start_value}" if result.start_value else ""
        kept = f"weights of step {result.best_step} written: selection metric {result.best_value}{gain}"
    return f"{result.status.replace('_', ' ')} after {result.steps} steps in {result.seconds:.0f} s ({kept})"


def write_report(result, val_samples: Sequence, before_energies: Sequence[float],
                 after_energies: Sequence[float], context: dict) -> Path | None:
    """Write `result.report_path` (Markdown) and, when matplotlib is there, a parity plot beside
    it; return the plot's path (None without one). `context`: model, data, energy_key,
    forces_key, freeze, parameters (total, trainable), references ({Z: eV})."""
    plot = result.report_path.with_name(result.report_path.stem + "_parity.png")
    try:
        parity_plot(plot, val_samples, result.fidelity, before_energies, after_energies)
    except ImportError:
        plot = None
    write_text_atomic(result.report_path, report_markdown(result, context, plot))
    return plot


def report_markdown(result, context: dict, plot: Path | None) -> str:
    total, trainable = context["parameters"]
    labels = f"energies `{context['energy_key']}` (eV)"
    if context["forces_key"]:
        labels += f", forces `{context['forces_key']}` (eV/Å)"
    head = (f"a new head, started as a copy of `{result.copied_from}`" if result.copied_from
            else "the model's existing head, continued")
    refs = ", ".join(f"{symbol(z)} {e:.4f}" for z, e in context["references"].items())
    lines = [
        f"# Fine-tuning report: `{result.fidelity}`", "",
        f"- Pretrained model: `{context['model']}`",
        f"- Data: {context['data']}, {labels}",
        f"- Fidelity `{result.fidelity}`: {head}; {result.references}; references now (eV): {refs}",
        f"- Split by {result.split_by}: {result.n_molecules} molecules {result.molecules}; "
        f"{result.n_train} training, {result.n_val} validation structures",
        f"- Weights chosen on the {result.selection}; never worse there than the start "
        "(the pretrained model with the refit references)" if not context.get("allow_worse") else
        f"- Weights chosen on the {result.selection} (--allow-worse: the best step, even if worse than the start)",
        *([f"- **{result.reason}**"] if result.reason else []),
        f"- Training: {_training(result)}; "
        f"{trainable:,} of {total:,} parameters trained{' per member' if result.members else ''} (frozen: "
        f"{', '.join(f'`{p}`' for p in context['freeze']) or 'none'}); run directory `{result.run_dir}`",
        *[f"- Member {line.strip().removeprefix('member ')}; run `{m['run_dir']}`"
          for line, m in zip(member_lines(result), result.members)],
        f"- Model: `{result.model_path}` (default head `{result.fidelity}`)", "",
        "## Validation errors", "",
        "Before: the pretrained model with the refit reference energies (step 0). After: the model written.",
        "Relative energies are energies relative to the mean of their molecule's validation conformers.", "",
        "| | before | after |", "|---|---:|---:|",
        *[f"| {label} | {b} | {a} |" for label, b, a in score_rows(result.before, result.after)], "",
    ]
    if plot is not None:
        lines += [f"![parity plot of validation energies]({plot.name})", ""]
    lines += ["## Use it", "", "```python", "import foundation", "",
              f"atoms.calc = foundation.calculator(\"{result.model_path}\")  # head {result.fidelity}",
              "```", ""]
    return "\n".join(lines)


def parity_plot(path: Path, samples: Sequence, fidelity: str, before: Sequence[float],
                after: Sequence[float]) -> None:
    """Predicted against reference validation energies, before and after, in kcal/mol: relative
    to their molecule's mean where a molecule has two structures or more (what conformer energies
    are), else total energies less the mean per atom (so molecules of any size share an axis)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib import pyplot as plt

    ref = np.array([s.energies[fidelity] for s in samples])
    molecules = [s.molecule or hill_formula(s.numbers) for s in samples]
    relative, label = _relative_groups(molecules)
    fig, ax = plt.subplots(figsize=(4.5, 4.5), dpi=120)
    for name, pred, style in (("before", before, dict(c="0.6", marker="x")),
                              ("after", after, dict(c="C0", marker="o", s=14))):
        x, y = _shift(ref, relative, samples), _shift(np.asarray(pred), relative, samples)
        ax.scatter(x * EV_TO_KCAL_MOL, y * EV_TO_KCAL_MOL, label=name, **style)
    lo, hi = ax.get_xlim()
    ax.plot([lo, hi], [lo, hi], "k-", lw=0.8)
    ax.set_xlabel(f"reference {label} (kcal/mol)")
    ax.set_ylabel(f"predicted {label} (kcal/mol)")
    ax.set_title(f"validation, head {fidelity}")
    ax.legend()
    fig.tight_layout()
    try:
        with replacing(path) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)


def _relative_groups(molecules: list[str]) -> tuple[list[list[int]] | None, str]:
    groups: dict[str, list[int]] = defaultdict(list)
    for i, m in enumerate(molecules):
        groups[m].append(i)
    several = [g for g in groups.values() if len(g) > 1]
    if several:
        return several, "energy relative to molecule mean"
    return None, "energy − mean energy per atom × atoms"


def _shift(energies: np.ndarray, groups: list[list[int]] | None, samples) -> np.ndarray:
    if groups is not None:
        return np.concatenate([energies[g] - energies[g].mean() for g in groups])
    n_atoms = np.array([s.n_atoms for s in samples])
    return energies - n_atoms * (energies.sum() / n_atoms.sum())
