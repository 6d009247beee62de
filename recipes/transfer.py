"""Which transfer recipe, chosen on the validation molecules: each candidate recipe starts from
the same pretrained model (member 0 of an ensemble: a member is a network, and what a recipe
does to one member it does to each; or, with `members`, the first `members` members, each into
an ensemble member, since the ensemble is what ships and one member reads 0.2-0.3 kcal/mol worse
than eight), is trained on the CC training molecules with `seeds` seeds (seed draws of the whole
ensemble), and is scored on validation molecules by relative energies, what conformer rankings
and dynamics depend on, averaged over the seeds (one seed's luck decided earlier choices by 0.03
kcal/mol).
The choice is made on the first of `splits` that has labels: by default the frontier validation
molecules (5-7 heavy atoms, larger than any CC training molecule: where a transfer forgets), then
the embedded validation molecules. The test molecules are never looked at here.

    python -m foundation.recipes.transfer --from ani-1x [--recipes finetune,multihead,delta] [--seeds 3] [--members 1] [--fresh] [overrides…]
"""

from __future__ import annotations

import argparse
import collections
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
SPLITS = ("frontier_val", "val")  # the choice is made on the first that has CC labels


def validation_samples(split: str) -> list:
    """CC-labelled structures of a validation split: the frontier set's or the embedded set's."""
    if split.startswith("frontier"):
        from foundation.recipes.frontier import frontier_samples

        return frontier_samples(split)
    return embedded_samples(split, CC)


def has_relative_energies(samples: Sequence) -> bool:
    """A molecule with two labelled structures: the least that scores relative energies (a
    labelling run in progress may have one conformer of each)."""
    counts = collections.Counter(s.molecule for s in samples)
    return any(n > 1 for n in counts.values())


def run_name(recipe: str, seed: int, member: int | None = None) -> str:
    name = "choose_" + recipe.replace(">", "-then-")
    name = name if seed == 0 else f"{name}_seed{seed}"
    return name if member is None else f"{name}_member{member}"


def stages(candidate: str) -> list[str]:
    """The recipes of a candidate, in the order they are trained (one, or a `first>then` chain)."""
    parts = candidate.split(">")
    if len(parts) > 2 or not all(parts):
        from foundation.errors import UserError

        raise UserError(f"--recipes: {candidate!r}: a candidate is a recipe or a chain of two, first>then")
    return parts


# How the second stage of a chain is told which head to start from: the head the first stage added.
_START_HEAD = {"delta": "delta.base_head"}


def start_head_override(recipe: str, start, source_heads: Sequence[str]) -> list[str]:
    """The override that makes `recipe` start from the head `start` (a model file) has that its
    own start, whose heads were `source_heads`, lacks."""
    from foundation.loading import load_model

    added = [h for h in load_model(str(start)).heads if h not in source_heads]
    if len(added) != 1:
        from foundation.errors import UserError

        raise UserError(f"{start}: a chain's first stage must add one head to {list(source_heads)} "
                        f"(added: {added or 'none'})")
    return [f"{_START_HEAD.get(recipe, 'trainer.new_head_from')}={added[0]}"]


def mean_scores(per_seed: list[dict]) -> dict:
    """The seeds' mean of every number in their metrics, and the choice metric of each seed."""
    keys = [k for k, v in per_seed[0].items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return {k: float(sum(m[k] for m in per_seed) / len(per_seed)) for k in keys} | {
        "per_seed": [m.get(METRIC) for m in per_seed]}


def is_ensemble(source: str | os.PathLike) -> bool:
    from foundation.loading import load_model

    return hasattr(load_model(str(source)), "members")


def compare(source: str | os.PathLike, recipes: Sequence[str] = CANDIDATES, overrides: Sequence[str] = (),
            quiet: bool = True, seeds: int = 1, splits: Sequence[str] = SPLITS, members: int = 1) -> dict[str, dict]:
    """{recipe: {"model": seed 0's path, "models", "validation": the seeds' mean metrics on the
    choice split, "splits": {split: mean metrics} for every split with labels, "choice_split"}};
    with `members` > 1 each seed's model is the ensemble of its members."""
    results = train_candidates(str(source), recipes, overrides, quiet, seeds, members)
    samples = {split: got for split in splits if has_relative_energies(got := validation_samples(split))}
    if not samples:
        from foundation.errors import UserError

        raise UserError(f"no CC-labelled validation structures in any of {', '.join(splits)}")
    choice_split = next(iter(samples))
    out = {}
    for i, recipe in enumerate(recipes):
        draws = [results[(i * seeds + seed) * members:(i * seeds + seed + 1) * members] for seed in range(seeds)]
        models = {str(seed): _one_model(runs, run_name(recipe, seed)) for seed, runs in enumerate(draws)}
        by_split = {split: mean_scores(list(evaluate_models(models, got, CC).values())) for split, got in samples.items()}
        out[recipe] = {"model": models["0"], "models": [str(p) for p in models.values()], "members": members,
                       "status": draws[0][0].status, "step": draws[0][0].step, "validation": by_split[choice_split],
                       "splits": by_split, "choice_split": choice_split}
    return out


def _one_model(runs: list, name: str):
    """The model one seed draw made: its one run's file, or its members' ensemble, written beside them."""
    if len(runs) == 1:
        return runs[0].model_path
    from foundation.hub import save_model
    from foundation.loading import load_model
    from foundation.models import EnsembleModel

    path = runs[0].model_path.parent.parent / f"{name}_x{len(runs)}.safetensors"
    return save_model(EnsembleModel.from_members([load_model(r.model_path) for r in runs]), path, {})


def train_candidates(source: str, candidates: Sequence[str], overrides: Sequence[str], quiet: bool,
                      seeds: int, members: int = 1) -> list:
    """The TrainResult of each candidate, seed and member (candidate-major, then seed): first stages
    side by side, then the chains' second stages side by side. Member k starts from member k of an
    ensemble `source`, with seed `seed + k * seeds`, so no two trainings share one."""
    from foundation.loading import load_model

    start_model = load_model(source)  # once: its members decide init_member, its heads the chains' start
    ensemble = hasattr(start_model, "members")
    _check_members(source, members, len(start_model.members) if ensemble else 0)
    keys = [(seed, k) for seed in range(seeds) for k in range(members)]

    def job(recipe, start, seed, k, extra=()):
        name = run_name(recipe, seed, k if members > 1 else None)
        return (recipe, start, [*overrides, f"name={name}", f"trainer.seed={seed + k * seeds}", *extra])

    firsts = list(dict.fromkeys(stages(c)[0] for c in candidates))
    first_jobs = [job(r, source, seed, k, [f"trainer.init_member={k}"] if ensemble else [])
                  for r in firsts for seed, k in keys]
    first = dict(zip([(r, *key) for r in firsts for key in keys], train_all(first_jobs, quiet)))
    chains = [(c, *key) for c in candidates if len(stages(c)) == 2 for key in keys]
    source_heads = list(start_model.heads)
    second_jobs = []
    for c, seed, k in chains:
        begin, then = stages(c)
        start = first[begin, seed, k].model_path
        second_jobs.append(job(then, str(start), seed, k, start_head_override(then, start, source_heads)))
    second = dict(zip(chains, train_all(second_jobs, quiet)))
    return [second.get((c, *key)) or first[(c, *key)] for c in candidates for key in keys]


def _check_members(source: str, members: int, have: int) -> None:
    if members == 1:
        return
    from foundation.errors import UserError

    if members < 1 or members > have:
        raise UserError(f"--members {members}: the choice trains member k from member k of the start, and "
                        f"{source} has {have or 'no'} members")


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
    parser.add_argument("--seeds", type=int, default=3, help="trainings per recipe; the choice is on their mean")
    parser.add_argument("--members", type=int, default=1,
                        help="score ensembles of this many members (member k from member k of the start)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every candidate, e.g. out_dir=runs/choose")
    add_fresh_argument(parser)
    args = parser.parse_args(argv)
    recipes = [r for r in args.recipes.split(",") if r]
    run_dir, _, resume = run_folder(None, args.overrides)  # the candidates are <out_dir>/choose_<recipe>
    folders = [run_dir.parent / run_name(r, seed, k if args.members > 1 else None) for c in recipes
               for r in {stages(c)[0], c} for seed in range(args.seeds) for k in range(args.members)]
    rerun = None if resume else Rerun(folders, argv, args.fresh)
    if rerun is not None and rerun.done:
        return 0
    compared = compare(args.source, recipes, args.overrides, quiet=True, seeds=args.seeds, members=args.members)
    split = next(iter(compared.values()))["choice_split"]
    summary = "\n".join(f"{s} (mean of {args.seeds} seeds):\n" + markdown_table({r: v["splits"][s] for r, v in compared.items()})
                        for s in next(iter(compared.values()))["splits"])
    summary += f"\nchosen on {split}: {choose(compared)}"
    print(summary)
    if rerun is not None:
        rerun.finish(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
