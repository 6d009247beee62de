"""Δ-learning recipe: a frozen DFT-pretrained model plus a small correction trained on CC − DFT
(hydra_configs/recipe/delta.yaml has the settings; `model` there is the correction).

    python -m foundation.recipes.delta --from runs/pretrain/model.safetensors name=delta [--fresh] [overrides…]

Builds `foundation.models.delta.DeltaModel` from the pretrained model, saves it as
`<out_dir>/<name>/delta_init.safetensors` with each target head's reference energies set to the
base's plus per-element offsets fitted to (target − base prediction) on the training data, then
trains it with `trainer.init_from=<that file>`; the trained composite is
`<out_dir>/<name>/model.safetensors`, a model like any other.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from foundation.errors import entry_point
from foundation.data import Sample, collate
from foundation.train.run import train
from foundation.recipes.rerun import Rerun, add_fresh_argument, run_folder
from foundation.train.trainer import TrainResult

INIT_NAME = "delta_init.safetensors"
_SET_HERE = ("name=", "trainer.init_from=")  # decided by this module, not passed through twice


def build_init_model(pretrained: str | os.PathLike, overrides: Sequence[str] = ()) -> tuple[Path, str, bool]:
    """Write the untrained composite for the run the overrides describe; return (its file, the
    run's name, whether its offsets were fitted here). Resuming a run whose file exists reuses it."""
    from foundation.hub import save_model
    from foundation.loading import load_model
    from foundation.models import DeltaModel
    from foundation.train.build import one_member
    from foundation.train.compose import compose_dict, instantiate

    cfg = compose_dict(["recipe=delta", *overrides])  # once: `name` may be a timestamp
    path = Path(cfg["out_dir"]).expanduser() / cfg["name"] / INIT_NAME
    if cfg.get("resume") and path.is_file():
        return path, cfg["name"], True
    settings = cfg.get("delta") or {}
    base_head, heads = settings.get("base_head", "wb97x_631gs"), list(settings.get("heads") or ["ccsdt_ccpvdz"])
    torch.manual_seed(int(cfg["trainer"].get("seed", 0)))  # the correction's initial weights
    base = one_member(load_model(pretrained), cfg["trainer"].get("init_member"), str(pretrained))
    rng = torch.get_rng_state()  # the correction's weights do not depend on reading the data
    samples = training_samples(instantiate(cfg["data"], "data").build())
    correction = correction_config({k: v for k, v in (cfg.get("model") or {}).items() if not k.startswith("_")},
                                   base, base_head, heads, samples)
    torch.set_rng_state(rng)
    model = DeltaModel.from_base(base, base_head, heads, correction,
                                 keep_base_head=bool(settings.get("keep_base_head", True)))
    fitted = samples is not None
    if fitted:
        fit_offsets(model, samples, ridge=cfg["trainer"].get("reference_ridge"))
    save_model(model, path, {"training": {"recipe": "delta", "base": str(pretrained), "steps": 0}})
    return path, cfg["name"], fitted


def correction_config(correction: dict, base, base_head: str, heads: list[str],
                      samples: Sequence[Sample] | None) -> dict:
    """The correction's config with what it leaves to the data (`auto`: MACE's avg_num_neighbors
    and energy_scale) computed as any run computes them, on what the correction learns: the
    training structures with energies target − base prediction (no forces: the recipe trains CC
    energies)."""
    from foundation.errors import UserError
    from foundation.models import model_config

    config = model_config({**correction, "elements": list(base.elements), "heads": heads})

    def residuals():
        if samples is None:
            raise UserError(f"recipe=delta: the correction's model={config.name} settings set to auto need the "
                            "training structures, which this data module does not offer; give them as numbers")
        return residual_samples(base, base_head, samples, heads)

    resolved = dataclasses.asdict(config.with_data_statistics(residuals))
    return {k: resolved[k] if v == "auto" else v for k, v in correction.items()}


def residual_samples(base, base_head: str, samples: Sequence[Sample], heads: Sequence[str]) -> list[Sample]:
    """The samples labelled at any of `heads`, their energies there minus `base`'s at `base_head`."""
    labelled = [s for s in samples if any(h in s.energies for h in heads)]
    predicted = _energies(base, base_head, labelled)
    return [Sample(s.numbers, s.positions, {h: s.energies[h] - e for h in heads if h in s.energies},
                   cell=s.cell, pbc=s.pbc, molecule=s.molecule, source=s.source)
            for s, e in zip(labelled, predicted)]


def fit_offsets(model, samples: Sequence[Sample], batch_size: int = 64,
                ridge: float | None = None) -> dict[str, dict[int, float]]:
    """Per-element offsets fitted to (target energy − base prediction) on the training
    structures, set as each target head's references (base's + offset); return the offsets.

    The residual is what the offsets must explain (on the embedded data this halves the starting
    error). They are fitted as every refit of references from a parent head is
    (`foundation.models.reference.refit_change`): ridge-regularised toward zero, one shift per
    atom when the formulas cannot separate the elements, and elements no structure has keep the
    base's references."""
    from foundation.models.reference import RIDGE, refit_change

    base_refs = model.base.reference_energies_dict()[model.config.base_head]
    offsets = {}
    for head in model.config.heads:  # the corrected heads; a passed-through base head stays the base's
        labelled = [s for s in samples if head in s.energies]
        if not labelled:
            continue
        residual = np.array([s.energies[head] for s in labelled]) - base_energies(model, labelled, batch_size)
        fit = refit_change([s.numbers for s in labelled], residual, model.elements,
                           {z: 0.0 for z in model.elements}, RIDGE if ridge is None else ridge)
        offsets[head] = fit.change
        model.set_reference_energies(head, {z: base_refs[z] + e for z, e in offsets[head].items()})
    return offsets


def base_energies(model, samples: Sequence[Sample], batch_size: int = 64) -> np.ndarray:
    """(len(samples),) eV: the frozen base's energies at its base head."""
    return _energies(model.base, model.config.base_head, samples, batch_size)


def _energies(model, head: str, samples: Sequence[Sample], batch_size: int = 64) -> np.ndarray:
    out = []
    with torch.no_grad():
        for start in range(0, len(samples), batch_size):
            batch = collate(samples[start:start + batch_size], fidelities=[], dtype=model.dtype)
            out.append(model(batch, head=head, forces=False)["energy"].numpy())
    return np.concatenate(out) if out else np.zeros(0)


def training_samples(data) -> list[Sample] | None:
    """One pass over a data module's training split: the in-memory files' samples, or the shards'
    (None for a data module that offers neither; the trainer's refit is then used)."""
    if isinstance(getattr(data, "train", None), list):
        return data.train
    if getattr(data, "manifest", None) is not None:
        from foundation.data import iter_samples

        return list(iter_samples(data.manifest, data.config.train_split, data.config.on_error))
    return None


def run(pretrained: str | os.PathLike, overrides: Sequence[str] = (), quiet: bool = False) -> TrainResult:
    """Build the composite on `pretrained` and train its correction."""
    passed = [o for o in overrides if not o.startswith(_SET_HERE)]
    named = [o for o in overrides if o.startswith("name=")][-1:]
    init, name, fitted = build_init_model(pretrained, passed + named)
    refit = [] if not fitted else ["trainer.refit_reference_energies=false"]  # done here, better
    passed = [o for o in passed if not o.startswith("trainer.init_member=")]  # the composite is one network
    return train([*passed, *refit, f"name={name}", f"trainer.init_from={init}"], recipe="delta", quiet=quiet)


@entry_point
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="pretrained", required=True,
                        help="the pretrained model: .safetensors file, run directory or registry name")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. name=delta trainer.max_steps=500")
    add_fresh_argument(parser)
    args = parser.parse_args(argv)
    folder, overrides, resume = run_folder("delta", args.overrides)
    rerun = None if resume else Rerun(folder, argv, args.fresh)  # resume=true: the trainer's resume
    if rerun is not None and rerun.done:
        return 0
    result = run(args.pretrained, overrides)
    summary = f"{result.status} at step {result.step}: {result.model_path}"
    if result.note:  # no step beat the start (base + offsets), which was written
        summary += f"\n{result.note}"
    print(summary)
    if rerun is not None and result.status != "interrupted":
        rerun.finish(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
