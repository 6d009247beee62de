"""Is choosing CC labels by the ensemble's disagreement worth it? The CC set
(`foundation.pipelines.cc_set`) labelled, for every new training molecule, the conformers the
ANI-1x committee disagreed on most (*active*) and as many drawn at random (*random*). Here the
same transfer from ANI-1x is trained twice, on the embedded CC training data plus either the
active or the random picks, with the same number of new labels per molecule (the smaller of the
two labelled counts, so a partly labelled set stays a fair comparison), and both are scored on
the same test molecules. Several seeds, because one run's noise is as large as the effect.

    python -m foundation.recipes.active_vs_random [--recipe delta] [--seeds 3] [--out runs/active_vs_random] [--fresh]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from foundation.errors import entry_point
from foundation.recipes.common import CC, embedded_samples, evaluate_models
from foundation.files import write_json
from foundation.recipes.jobs import train_all
from foundation.recipes.learning_curve import shard_set
from foundation.recipes.rerun import Rerun, add_fresh_argument
from foundation.recipes.transfer import is_ensemble



def selection() -> dict:
    """The CC set's record of its active and random picks (package data of foundation.pipelines)."""
    from importlib.resources import files

    return json.loads((files("foundation.pipelines.cc_set") / "selection.json").read_text())


def candidate_of(sample) -> tuple[str, int] | None:
    """(molecule, candidate index) of a CC-set structure, from its source `labels:<molecule>/<k>`."""
    _, _, ident = (sample.source or "").partition(":")
    molecule, _, k = ident.rpartition("/")
    return (molecule, int(k)) if k.isdigit() else None


def split_picks(samples: list, selection: dict) -> tuple[list, list, list]:
    """(the training samples outside the CC set's picks, the active picks, the random picks), each
    molecule cut to the same number of labelled picks in both; a conformer picked both ways counts
    in both."""
    picks = {m["name"]: m for m in selection["molecules"] if m["split"] == "train"}
    rest, active, random = [], [], []
    by_molecule: dict[str, dict[int, object]] = {}
    for s in samples:
        where = candidate_of(s)
        if where is None or where[0] not in picks:
            rest.append(s)
        else:
            by_molecule.setdefault(where[0], {})[where[1]] = s
    for name, labelled in by_molecule.items():
        a = [labelled[k] for k in picks[name]["active"] if k in labelled]
        r = [labelled[k] for k in picks[name]["random"] if k in labelled]
        n = min(len(a), len(r))
        active += a[:n]
        random += r[:n]
    return rest, active, random


def compare(recipe: str, start: str, out: Path, seeds: int, overrides: list[str]) -> dict:
    rest, active, random = split_picks(embedded_samples("train", CC), selection())
    if not active:
        from foundation.errors import UserError

        raise UserError("the embedded data hold no labelled active/random pairs of the CC set yet: label "
                        "(foundation data label --out data_pipelines/cc_set/labels) and rebuild the shards")
    val, test = embedded_samples("val", CC), embedded_samples("test", CC)
    member = ["trainer.init_member=0"] if is_ensemble(start) else []
    jobs, labels = [], []
    for way, picked in (("active", active), ("random", random)):
        data = shard_set(out / way, rest + picked, val, test)
        for seed in range(seeds):
            jobs.append((recipe, start, ["data=shards", f"data.path={data}", f"data.fidelities=[{CC}]",
                                         f"out_dir={out}", f"name={way}_{seed}", f"trainer.seed={seed}",
                                         "logger.progress_bar=false", *member, *overrides]))
            labels.append(way)
    scores: dict[str, list[float]] = {"active": [], "random": []}
    for way, run in zip(labels, train_all(jobs)):  # side by side, one process per core
        metrics = evaluate_models({way: run.model_path}, test, CC)[way]
        scores[way].append(metrics["relative_energy_rmse_kcal_mol"])
    result = {"recipe": recipe, "start": start, "new_labels_each": len(active), "base_labels": len(rest),
              "test_structures": len(test), "seeds": seeds, "relative_energy_rmse_kcal_mol": scores,
              "mean": {w: statistics.fmean(v) for w, v in scores.items()}}
    write_json(out / "active_vs_random.json", result)
    return result


@entry_point
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="delta", help="the transfer recipe (as chosen on validation)")
    parser.add_argument("--from", dest="start", default="ani-1x")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("runs/active_vs_random"))
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every training")
    add_fresh_argument(parser)
    args = parser.parse_args(argv)
    rerun = Rerun(args.out, argv, args.fresh)  # typed again: the finished result, or a fresh run
    if not rerun.done:
        r = compare(args.recipe, args.start, args.out, args.seeds, args.overrides)
        summary = (f"{r['new_labels_each']} new CC labels each, on {r['base_labels']} embedded ones; test rel. E "
                   f"RMSE (kcal/mol, mean of {r['seeds']} seeds): active {r['mean']['active']:.3f}, "
                   f"random {r['mean']['random']:.3f}")
        print(summary)
        rerun.finish(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
