"""What every recipe does besides training (`foundation.train.run.train(overrides, recipe=…)`):
evaluate models on held-out data and tabulate the results. A recipe is a config in
`hydra_configs/recipe/` (the trainer settings) and, when it is more than one training, a short
module here that strings trainings together."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from foundation.data import Sample
from foundation.files import write_text_atomic as write_atomic

CC, DFT = "ccsdt_ccpvdz", "wb97x_631gs"


def embedded_samples(split: str, fidelity: str | None = None) -> list[Sample]:
    """The embedded dataset's `split`, only structures labelled at `fidelity` if given."""
    from foundation.data import EMBEDDED_DIR, iter_samples, load_manifest

    samples = iter_samples(load_manifest(EMBEDDED_DIR), split)
    return [s for s in samples if fidelity is None or fidelity in s.energies]


def evaluate_models(models: dict[str, str | os.PathLike], samples: Sequence[Sample], fidelity: str,
                    head: str | None = None) -> dict[str, dict]:
    """{label: metrics} for each model file on `samples` at `fidelity` (head: the model's head of
    that name when it has one, else `head`, else its default). Forces are compared with DFT's.
    `metrics["structures"]` holds the per-structure predictions, for parity plots."""
    from foundation.evaluation.evaluate import evaluate
    from foundation.loading import load_model

    results = {}
    for label, path in models.items():
        model = load_model(path).eval()
        use = fidelity if fidelity in model.heads else (head or model.default_head)
        # within each named molecule: what the frontier tables report (butanal and tetrahydrofuran
        # are one formula; the embedded validation and test sets have no such pair, so there it is
        # the per-formula number every earlier table shows)
        metrics = evaluate(model, samples, head=use, fidelity=fidelity, include_forces=False, relative_within="molecule")
        forces = _forces_vs_dft(model, samples, use)
        results[label] = metrics | forces | {"head": use}
    return results


def _forces_vs_dft(model, samples: Sequence[Sample], head: str) -> dict:
    from foundation.evaluation.evaluate import evaluate

    with_forces = [s for s in samples if DFT in s.forces]
    if not with_forces:
        return {}
    m = evaluate(model, with_forces, head=head, fidelity=DFT, include_forces=True)
    return {"forces_vs_dft_mae_ev_per_a": m.get("forces_mae_ev_per_a"),
            "forces_vs_dft_rmse_ev_per_a": m.get("forces_rmse_ev_per_a")}


COLUMNS = [("relative_energy_rmse_kcal_mol", "rel. E RMSE (kcal/mol)"),
           ("energy_rmse_kcal_mol", "E RMSE (kcal/mol)"),
           ("energy_mae_kcal_mol", "E MAE (kcal/mol)"),
           ("forces_vs_dft_mae_ev_per_a", "F MAE vs DFT (eV/Å)"),
           ("n_structures", "structures")]


def markdown_table(results: dict[str, dict], columns: Iterable[tuple[str, str]] = COLUMNS) -> str:
    columns = list(columns)
    lines = ["| model | " + " | ".join(title for _, title in columns) + " |",
             "|---|" + "---:|" * len(columns)]
    for label, metrics in results.items():
        cells = [_fmt(metrics.get(key)) for key, _ in columns]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _fmt(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, int):
        return str(value)
    return f"{value:.3f}" if abs(value) < 100 else f"{value:.1f}"
