"""Fine-tuning a round, and scoring models on the held-out conformers.

A round fine-tunes the start (not the previous round's model: every round starts from the same
weights, so rounds differ only by their labels) on every training label so far with
`foundation.finetuning.finetune`: an ensemble member by member, the CCSD(T) energies as the
`ccsdt_ccpvdz` head (the default head of the model written, and what chooses its weights, never
worse than the start on validation), the cheaper levels' energies and forces as extra heads beside
it (copied from the CC head, sharing the layers below). Its step budget comes from the CPU
seconds the round may spend and a measured step (`step_seconds`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

CC = "ccsdt_ccpvdz"
MIN_STEPS, MAX_STEPS = 20, 2000
OVERHEAD = 1.5  # validation, EMA, checkpoints and the rest of a run, over its bare steps


def train_samples(root: Path) -> tuple[list, list]:
    """(training samples, held-out samples) of every finished label under `root` (one `Sample`
    per structure, all its fidelities), from the labeller's folders."""
    from foundation.data.sample import Sample
    from foundation.recipes.adapt.labelling import records

    from foundation.pipelines.label.export import labels_by_structure

    pairs = records(root)
    structures = {s["id"]: s for s, r in pairs if r.get("status") == "ok"}
    labels = labels_by_structure(r for _, r in pairs)  # by fidelity: an RI-MP2 label is an mp2_ccpvdz one
    train, held = [], []
    for sid, s in structures.items():
        got = labels[sid]
        sample = Sample(numbers=s["numbers"], positions=s["positions"],
                        energies={f: r["energy"] for f, r in got.items()},
                        forces={f: r["forces"] for f, r in got.items() if r.get("forces") is not None},
                        molecule=s["molecule"], source=sid)
        (held if s["split"] == "holdout" else train).append(sample)
    return train, held


def step_seconds(model, samples: Sequence, max_atoms: int = 256, repeats: int = 3) -> float:
    """CPU seconds of one training step of one network of `model` on a batch of `samples`
    (forward, forces when the batch has any, backward), measured."""
    import copy

    import torch

    from foundation.data.batch import collate
    from foundation.data.batching import group_by_atoms
    from foundation.models.prediction import predict

    network = copy.deepcopy(getattr(model, "members", [model])[0]).train()
    group = next(iter(group_by_atoms(list(samples), max_atoms)))
    heads = sorted({f for s in group for f in s.energies} & set(network.heads)) or [network.heads[0]]
    batch = collate(group, fidelities=heads, dtype=network.dtype)
    force_heads = [h for h in heads if any(h in s.forces for s in group)]
    start = time.process_time()
    for _ in range(repeats):
        out = predict(network, batch, heads, force_heads, create_graph=True)
        loss = sum(e.sum() for e in out["energy"].values())
        loss.backward()
    return (time.process_time() - start) / repeats


def member_seconds(seconds: float, members: int, fixed: float) -> float:
    """CPU seconds each member's training loop may spend of `seconds`, after `fixed` per member
    (loading, the start's validation, writing); at least one second, so a loop can end cleanly."""
    return max(seconds / max(members, 1) - fixed, 1.0)


def plan_steps(seconds: float, members: int, step: float, fixed: float) -> int:
    """Steps per member that `seconds` of CPU buy, after `fixed` seconds per member (loading): what
    the cosine schedule is laid out over. The loop's CPU limit (`member_seconds`) is what keeps the
    budget when a step costs more than planned (a loaded machine)."""
    usable = member_seconds(seconds, members, fixed)
    return int(np.clip(usable / (OVERHEAD * max(step, 1e-6)), MIN_STEPS, MAX_STEPS))


def finetune_round(start: str, samples: list, out: Path, run_dir: Path, members: int | None, steps: int,
                   seed: int, extra: Sequence[str] = (), cpu_seconds: float | None = None,
                   start_heads: Sequence[str] = (CC,)):
    """`foundation.finetuning.finetune` on `samples` (CC head chooses), written to `out`; each
    member's loop ends after `cpu_seconds` of CPU if it has not ended before. Heads the start
    lacks (`start_heads`: its heads) are copied from its CC head, or its default head when it has
    none (ANI-1x)."""
    from foundation.finetuning import finetune

    overrides = [f"out_dir={run_dir}", "name=finetune", f"trainer.max_steps={steps}", "trainer.device=cpu",
                 f"trainer.seed={seed}", f"data.seed={seed}", f"trainer.ckpt_every={max(steps, 1)}"]
    overrides += [f"trainer.new_head_from={CC}"] if CC in start_heads else []
    overrides += [f"trainer.cpu_seconds={cpu_seconds:.3f}"] if cpu_seconds is not None else []
    overrides += list(extra)  # the caller's last: they win
    return finetune(start, samples, fidelity=CC, out=out, overrides=overrides, verbose=False, members=members)


def heldout_errors(model, held: Sequence) -> dict:
    """Relative-energy RMSE (kcal/mol) against CCSD(T) on the held-out conformers: per molecule,
    and over all of them (energies relative to each molecule's mean)."""
    from foundation.evaluation.evaluate import evaluate
    from foundation.evaluation.metrics import relative_energy_rmse_kcal_mol

    rows = evaluate(model, list(held), head=CC if CC in model.heads else None, fidelity=CC,
                    include_forces=False)["structures"]
    per: dict[str, list] = {}
    for r in rows:
        per.setdefault(r["molecule"], []).append(r)

    def rmse(rs):
        return relative_energy_rmse_kcal_mol([r["energy_pred_ev"] for r in rs], [r["energy_ref_ev"] for r in rs],
                                             [r["molecule"] for r in rs])

    return {"all": rmse(rows), "molecules": {m: rmse(rs) for m, rs in per.items()},
            "structures": {m: len(rs) for m, rs in per.items()}}
