"""Which transfer recipe, chosen on the validation molecules: each candidate recipe starts from
the same pretrained model (member 0 of an ensemble: a member is a network, and what a recipe
does to one member it does to each), is trained on the CC training molecules, and is scored on
the CC *validation* molecules by relative energies, what conformer rankings and dynamics depend
on. The test molecules are never looked at here.

    python -m foundation.recipes.transfer --from ani-1x [--recipes finetune,multihead,delta] [--fresh] [overrides…]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Sequence

from foundation.errors import entry_point
from foundation.recipes.common import CC, embedded_samples, evaluate_models, markdown_table
from foundation.recipes.jobs import train_all
from foundation.recipes.rerun import Rerun, add_fresh_argument, run_folder

CANDIDATES = ("finetune", "multihead", "delta")
METRIC = "relative_energy_rmse_kcal_mol"


def is_ensemble(source: str | os.PathLike) -> bool:
    from foundation.loading import load_model

    return hasattr(load_model(str(source)), "members")


def compare(source: str | os.PathLike, recipes: Sequence[str] = CANDIDATES, overrides: Sequence[str] = (),
            quiet: bool = True) -> dict[str, dict]:
    """{recipe: {"model": path, "validation": metrics on the CC validation molecules}}."""
    member = ["trainer.init_member=0"] if is_ensemble(source) else []
    jobs = [(recipe, str(source), [*overrides, f"name=choose_{recipe}", *member]) for recipe in recipes]
    runs = {recipe: {"model": result.model_path, "status": result.status, "step": result.step}
            for recipe, result in zip(recipes, train_all(jobs, quiet))}
    scores = evaluate_models({r: v["model"] for r, v in runs.items()}, embedded_samples("val", CC), CC)
    return {r: v | {"validation": scores[r]} for r, v in runs.items()}


def choose(compared: dict[str, dict], metric: str = METRIC) -> str:
    """The recipe with the lowest validation `metric` (ties: the earlier candidate)."""
    def key(recipe: str) -> float:
        value = compared[recipe]["validation"].get(metric)
        return math.inf if value is None or math.isnan(value) else value

    return min(compared, key=key)


@entry_point
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="source", default="ani-1x", help="the pretrained model (name, file or run)")
    parser.add_argument("--recipes", default=",".join(CANDIDATES), help="comma-separated candidate recipes")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every candidate, e.g. out_dir=runs/choose")
    add_fresh_argument(parser)
    args = parser.parse_args(argv)
    recipes = [r for r in args.recipes.split(",") if r]
    run_dir, _, resume = run_folder(None, args.overrides)  # the candidates are <out_dir>/choose_<recipe>
    rerun = None if resume else Rerun([run_dir.parent / f"choose_{r}" for r in recipes], argv, args.fresh)
    if rerun is not None and rerun.done:
        return 0
    compared = compare(args.source, recipes, args.overrides, quiet=True)
    summary = (markdown_table({r: v["validation"] for r, v in compared.items()})
               + f"\nchosen on the validation molecules: {choose(compared)}")
    print(summary)
    if rerun is not None:
        rerun.finish(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
