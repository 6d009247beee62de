"""What the MP2 labels are worth beyond the CC set: the frontier test molecules' error against the
number of MP2-set molecules a transfer trains on. Every point keeps all the other training labels
(ωB97X, CCSD(T) and the CC structures' MP2 partners); only the MP2 set's own structures (4-8 heavy
atoms, MP2 energies alone) grow, by whole molecules in one random order, so the points are nested.
The first point, none of them, is what the CC set's small molecules teach on their own.

    python -m foundation.recipes.mp2_curve --recipe "mp2_transfer>finetune" --from ani-1x --out runs/mp2_curve \\
        [--seeds 1] [--split frontier_test] [--fresh] [overrides…]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from foundation.errors import entry_point
from foundation.files import write_json
from foundation.recipes.common import CC, embedded_samples, evaluate_models, markdown_table
from foundation.recipes.learning_curve import shard_set
from foundation.recipes.rerun import Rerun, add_fresh_argument
from foundation.recipes.transfer import METRIC, train_candidates, validation_samples

MP2 = "mp2_ccpvdz"
FRACTIONS = (0.0, 0.25, 0.5, 1.0)


def mp2_only(sample) -> bool:
    """A structure of the MP2 set: an MP2 energy and nothing else (a CC structure's partner has its CC label)."""
    return set(sample.energies) == {MP2}


def nested(samples: list, fractions: Sequence[float], seed: int = 0) -> list[tuple[int, list]]:
    """[(molecules, their structures)] for each fraction of the MP2-set molecules, nested."""
    names = sorted({s.molecule for s in samples})
    order = [names[i] for i in np.random.default_rng(seed).permutation(len(names))]
    out = []
    for n in sorted({int(round(f * len(names))) for f in fractions}):
        keep = set(order[:n])
        out.append((n, [s for s in samples if s.molecule in keep]))
    return out


def mp2_curve(recipe: str, source: str, out_dir: Path, fractions: Sequence[float] = FRACTIONS, seeds: int = 1,
              split: str = "frontier_test", overrides: Sequence[str] = ()) -> list[dict]:
    """Rows {n_molecules, n_structures, recipe, split, METRIC (mean of the seeds), per_seed}."""
    train = embedded_samples("train")
    val, test = embedded_samples("val"), embedded_samples("test")
    rest = [s for s in train if not mp2_only(s)]
    scored = validation_samples(split)
    rows = []
    for n, chosen in nested([s for s in train if mp2_only(s)], fractions):
        folder = out_dir / f"mp2_molecules_{n}"
        data = shard_set(folder / "data", rest + chosen, val, test)
        runs = train_candidates(source, [recipe], ["data=shards", f"data.path={data}", f"out_dir={folder}",
                                                   "logger.progress_bar=false", *overrides], True, seeds)
        scores = evaluate_models({str(k): r.model_path for k, r in enumerate(runs)}, scored, CC)
        per_seed = [m[METRIC] for m in scores.values()]
        rows.append({"n_molecules": n, "n_structures": len(chosen), "recipe": recipe, "split": split,
                     METRIC: float(np.mean(per_seed)), "per_seed": per_seed})
        print(f"MP2 curve: {n} MP2-set molecules ({len(chosen)} structures): {rows[-1][METRIC]:.3f} kcal/mol on "
              f"{split}", flush=True)
    return rows


@entry_point
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="mp2_transfer>finetune", help="a transfer recipe or chain first>then")
    parser.add_argument("--from", dest="source", default="ani-1x", help="the start (member 0 of an ensemble)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--split", default="frontier_test", help="the molecules scored (report only)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every training")
    add_fresh_argument(parser)
    args = parser.parse_args(argv)
    rerun = Rerun(args.out, argv, args.fresh)
    if not rerun.done:
        rows = mp2_curve(args.recipe, args.source, args.out, seeds=args.seeds, split=args.split, overrides=args.overrides)
        write_json(args.out / "mp2_curve.json", rows)
        summary = markdown_table({f"{r['n_molecules']} MP2-set molecules": r for r in rows},
                                 [(METRIC, "rel. E RMSE (kcal/mol)"), ("n_structures", "MP2 structures")])
        print(summary)
        rerun.finish(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
