"""Ensemble recipe: N members of one recipe from different seeds, combined into one model whose
mean is the prediction and whose spread (`energy_std`) says how far to trust it (ANI-1x and
ANI-1ccx are ensembles of 8; query by committee, Smith et al., J. Chem. Phys. 148, 241733, 2018).

    python -m foundation.recipes.ensemble --members 4 --recipe finetune --from runs/pretrain/model.safetensors name=ens
    python -m foundation.recipes.ensemble --members 4 --recipe scratch name=ens_scratch trainer.max_steps=500
    python -m foundation.recipes.ensemble --members 4 --recipe delta --from PRETRAINED name=ens_delta

Member k is the run `<out_dir>/<name>/member<k>` with `trainer.seed` = seed + k (and, for data
with a split seed such as `data=extxyz`, `data.seed` = seed + k: each member holds out other
molecules). `--from` gives one model for all members, or, repeated, one per member; an ensemble given once
(e.g. `--from ani-1x`) gives member k its own member k (`trainer.init_member=k`), so the spread of
the new ensemble still comes from independently trained networks. The ensemble is `<out_dir>/<name>/ensemble.safetensors`; the members' and
the ensemble's validation errors are printed and written to `<out_dir>/<name>/ensemble.json`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from foundation.errors import entry_point
from foundation.errors import UserError
from foundation.recipes.common import markdown_table
from foundation.files import write_json
from foundation.train.run import train
from foundation.recipes.jobs import train_all
from foundation.recipes.rerun import Rerun, add_fresh_argument, run_folder

ENSEMBLE_NAME = "ensemble.safetensors"


def run(members: int, recipe: str | None, pretrained: Sequence[str | os.PathLike] = (),
        overrides: Sequence[str] = (), quiet: bool = False) -> dict:
    """Train the members, save the ensemble; return {"path", "members", "metrics"}."""
    from foundation.train.compose import compose_dict

    if members < 1:
        raise UserError(f"--members {members}: need at least one member")
    if pretrained and len(pretrained) not in (1, members):
        raise UserError(f"--from: give one model or one per member ({members}), got {len(pretrained)}")
    passed = [o for o in overrides if not o.startswith(("name=", "out_dir="))]
    cfg = compose_dict(([f"recipe={recipe}"] if recipe else []) + list(overrides))
    folder = Path(cfg["out_dir"]).expanduser() / cfg["name"]
    size = _ensemble_size(pretrained[0]) if len(pretrained) == 1 else None
    if size is not None and members > size:
        raise UserError(f"--members {members}: {pretrained[0]} has only {size} members")
    member_overrides = [_member_overrides(cfg, folder, k) + ([f"trainer.init_member={k}"] if size else [])
                        for k in range(members)]
    jobs = [(recipe, str(pretrained[k % len(pretrained)]) if pretrained else None, [*passed, *extra])
            for k, extra in enumerate(member_overrides)]
    paths, kept_start = [], []
    for k, result in enumerate(train_all(jobs, quiet)):
        if not quiet:
            kept = " (its start: no step beat it)" if result.kept_start else ""
            print(f"member {k}: {result.status} at step {result.step} -> {result.model_path}{kept}", flush=True)
        paths.append(result.model_path)
        kept_start += [k] if result.kept_start else []
    path = folder / ENSEMBLE_NAME
    metrics = _combine(paths, path, cfg, recipe, pretrained)
    write_json(folder / "ensemble.json", {"ensemble": str(path), "members": [str(p) for p in paths],
                                          "members_kept_start": kept_start, "validation": metrics})
    return {"path": path, "members": paths, "metrics": metrics}


def _ensemble_size(source: str | os.PathLike) -> int | None:
    """Members of `source` when it is an ensemble (member k of the new one starts from its member k)."""
    from foundation.loading import load_pretrained

    members = getattr(load_pretrained(str(source), device="cpu"), "members", None)
    return len(members) if members is not None else None


def _member_overrides(cfg: dict, folder: Path, k: int) -> list[str]:
    seeds = [f"trainer.seed={int(cfg['trainer'].get('seed', 0)) + k}"]
    if isinstance(cfg.get("data"), dict) and "seed" in cfg["data"]:  # a data split seed: vary the split too
        seeds.append(f"data.seed={int(cfg['data']['seed']) + k}")
    return [f"out_dir={folder}", f"name=member{k}", *seeds]


def train_member(recipe: str | None, source: str | None, overrides: list[str], quiet: bool):
    """One run of `recipe` (delta included: it builds its composite first) from `source`."""
    if recipe == "delta":
        from foundation.recipes import delta

        if source is None:
            raise UserError("--recipe delta needs --from: the pretrained model the corrections sit on")
        return delta.run(source, overrides, quiet=quiet)
    init = [f"trainer.init_from={source}"] if source else []
    return train([o for o in overrides if not o.startswith("trainer.init_from=")] + init, recipe=recipe, quiet=quiet)


def _combine(paths: list[Path], path: Path, cfg: dict, recipe: str | None,
             pretrained: Sequence[str | os.PathLike]) -> dict[str, dict]:
    """Save the ensemble of `paths` at `path`; return validation errors {label: metrics}."""
    from foundation.hub import save_model
    from foundation.loading import load_model
    from foundation.models import EnsembleModel

    members = [load_model(p) for p in paths]
    ensemble = EnsembleModel.from_members(members)
    metrics = {f"member {k}": validation_errors(m, cfg) for k, m in enumerate(members)}
    metrics["ensemble"] = validation_errors(ensemble, cfg)
    training = {"recipe": "ensemble", "member_recipe": recipe, "members": [str(p) for p in paths],
                "init_from": [str(p) for p in pretrained] or None}
    save_model(ensemble, path, {"metrics": metrics["ensemble"], "training": training})
    return metrics


def validation_errors(model, cfg: dict) -> dict[str, float]:
    """The trainer's validation metrics (`val/<fid>/energy_rmse`, …) of `model` on the validation
    split of the data `cfg` describes (member 0's split when members vary theirs)."""
    from foundation.models import predict
    from foundation.train.compose import instantiate
    from foundation.train.loss import LossConfig
    from foundation.train.validate import validate

    data = instantiate(cfg["data"], "data").build()
    tc = cfg["trainer"]
    loss = LossConfig(float(tc["energy_weight"]), float(tc["forces_weight"]), dict(tc.get("fidelity_weights") or {}))
    heads = [h for h in data.fidelities if h in model.heads]

    def predict_fn(batch, heads, force_heads):
        return predict(model, batch, heads, force_heads, create_graph=False)

    return validate(predict_fn, data.val_batches(), heads, loss, next(model.parameters()).device, model.dtype)


@entry_point
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=4)
    parser.add_argument("--recipe", default="finetune", help="the members' recipe (hydra_configs/recipe/)")
    parser.add_argument("--from", dest="pretrained", action="append", default=[],
                        help="the model the members start from; repeat it to give one per member")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. name=ens trainer.max_steps=500")
    add_fresh_argument(parser)
    args = parser.parse_args(argv)
    folder, overrides, resume = run_folder(args.recipe, args.overrides)
    rerun = None if resume else Rerun(folder, argv, args.fresh)  # resume=true: the trainer's resume
    if rerun is not None and rerun.done:
        return 0
    out = run(args.members, args.recipe, args.pretrained, overrides)
    metrics = out["metrics"]
    columns = [(k, k.removeprefix("val/") + (" (eV)" if "energy" in k else " (eV/Å)" if "forces" in k else ""))
               for k in next(iter(metrics.values())) if k.endswith(("energy_mae", "energy_rmse", "forces_rmse"))]
    summary = f"{markdown_table(metrics, columns)}\nensemble: {out['path']}"
    print(summary)
    if rerun is not None:
        rerun.finish(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
