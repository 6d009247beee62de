"""`foundation data select`: let an ensemble's disagreement choose which candidate structures to
label (query by committee), and write the picks.

    foundation data select --model ensemble.safetensors --pool candidates.xyz --n 50 --out picks.xyz
    foundation data select --model m1.safetensors,m2.safetensors,m3.safetensors --smiles mols.smi \\
        --conformers 20 --n 30 --diversity 0.5 --labelled train.xyz --out picks.xyz
    foundation data label --structures picks.xyz --levels ccsdt_ccpvdz --out labels/   # then label them

The picks go to --out (any format ASE writes; extxyz keeps each pick's spreads in its info), and
every candidate's scores to <out>.scores.json (or --scores) for the report.
"""

from __future__ import annotations

import sys
from pathlib import Path

from foundation.errors import UserError
from foundation.files import write_json


def add_parser(actions) -> None:
    p = actions.add_parser("select", help="pick the structures an ensemble disagrees on most, to label them")
    p.add_argument("--model", default=None,
                   help="an ensemble (a registry name such as ani-1x, or a model file), or several model files separated by commas (the committee)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--pool", help="candidates: any ASE-readable file, a shard folder or a labeller folder")
    src.add_argument("--smiles", help="sample candidates: a file with one 'SMILES [name]' per line")
    p.add_argument("--split", default=None, help="with a shard or labeller folder: one split (default all)")
    p.add_argument("--conformers", type=int, default=20, help="with --smiles: conformers per molecule")
    p.add_argument("--md-steps", type=int, default=0,
                   help="run MD with the model from each candidate and pick among the snapshots instead")
    p.add_argument("--md-interval", type=int, default=10, help="MD steps between snapshots")
    p.add_argument("--md-temperature", type=float, default=500.0, help="MD temperature (K)")
    p.add_argument("--n", type=int, required=True, help="how many structures to pick")
    p.add_argument("--out", required=True, help="file for the picks (e.g. picks.xyz)")
    p.add_argument("--scores", default=None, help="JSON with every candidate's scores (default <out>.scores.json)")
    p.add_argument("--head", default=None, help="the head (fidelity) whose disagreement counts (default: the model's)")
    p.add_argument("--strategy", default="spread", choices=["spread", "random"],
                   help="spread: the ensemble's disagreement (default); random: a uniform draw, for comparison")
    p.add_argument("--diversity", type=float, default=0.0,
                   help="0..1: weight of the AEV distance to picks and --labelled structures (default 0)")
    p.add_argument("--force-weight", type=float, default=0.0,
                   help="add this x force spread (eV/Å) to the energy spread per atom (eV/atom)")
    p.add_argument("--no-forces", action="store_true", help="skip the force spread (faster)")
    p.add_argument("--labelled", default=None,
                   help="structures already labelled: left out of the pool (same atoms and positions) and "
                        "kept away from with --diversity")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def run(args) -> int:
    from foundation.pipelines.active.pick import pick
    from foundation.pipelines.active.pool import conformer_pool, read_structures, write_structures
    from foundation.pipelines.active.select import SelectConfig

    config = SelectConfig(n=args.n, strategy=args.strategy, diversity=args.diversity,
                          force_weight=args.force_weight, seed=args.seed)
    model = load_committee(args.model) if args.model else None
    if config.needs_model and model is None:
        raise UserError("--model is required for --strategy spread (an ensemble, or several model files)")
    if args.pool:
        pool = read_structures(args.pool, args.split)
    else:
        from foundation.pipelines.label.structures import read_smiles

        pool = conformer_pool(read_smiles(args.smiles), args.conformers, args.seed)
    if args.md_steps:
        if model is None:
            raise UserError("--md-steps needs --model: the MD runs with it")
        from foundation.pipelines.active.pool import md_pool

        pool = md_pool(model, pool, args.md_steps, args.md_interval, args.md_temperature, seed=args.seed,
                       head=args.head)
    labelled = read_structures(args.labelled) if args.labelled else []
    pool = without(pool, labelled)
    if not pool:
        raise UserError(f"{args.pool or args.smiles}: every candidate is already in --labelled")
    picked = pick(pool, config, model, head=args.head, reference=labelled, forces=not args.no_forces)
    out = write_structures(args.out, picked.samples, picked.pick_info())
    scores = Path(args.scores) if args.scores else out.with_name(out.name + ".scores.json")
    write_json(scores, {"settings": {k: v for k, v in vars(args).items() if k != "func"},
                         "n_pool": len(pool), "picked": [pool[i].source for i in picked.selection.indices],
                         "candidates": picked.rows})
    print(f"picked {len(picked.samples)} of {len(pool)} candidates ({config.strategy}"
          f"{f', diversity {config.diversity}' if config.diversity else ''}) -> {out}; scores -> {scores}",
          file=sys.stdout)
    return 0


def load_committee(spec: str):
    """An ensemble model, or several models (comma-separated paths/names) wrapped as one."""
    from foundation.loading import load_model
    from foundation.models.ensemble import EnsembleModel

    paths = [p for p in spec.split(",") if p]
    if len(paths) == 1:
        return load_model(paths[0])
    return EnsembleModel.from_members([load_model(p) for p in paths]).eval()


def without(pool: list, labelled: list) -> list:
    """`pool` less the structures of `labelled` (same atoms at the same positions, to 1e-4 Å:
    names differ between files, geometries do not)."""
    if not labelled:
        return pool
    geometries = {_geometry_key(s) for s in labelled}
    return [s for s in pool if _geometry_key(s) not in geometries]


def _geometry_key(sample) -> tuple:
    return tuple(sample.numbers.tolist()), tuple(sample.positions.round(4).reshape(-1).tolist())
