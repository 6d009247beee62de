"""Active learning in one command: sample → select → label → add to the shards → fine-tune → repeat.

    python -m foundation.recipes.active_learning --work-dir runs/al --init-from runs/pretrain/model.safetensors \\
        --smiles molecules.smi --conformers 20 --heldout test_labels/ --rounds 4 --n-initial 20 --n-per-round 20

Round 0 labels `n_initial` random candidates (every strategy starts from the same seed set). Each
later round scores the unlabelled candidates with the previous round's ensemble, labels the
`n_per_round` it disagrees on most (`--strategy random`: a uniform draw, the control), and
fine-tunes `ensemble_size` members (different seeds) from the pretrained model on every label so
far. Each round logs the labels spent (count and calculation time) and the ensemble's error on the
held-out structures to <work-dir>/log.jsonl. Killed anywhere, the same command resumes: finished
rounds are skipped, picks are read back and labels already made are never computed again
(data_pipelines/active/ledger.py).

Candidates: a fixed `--pool` (file, shard folder or labeller folder; copied into the work dir at
the start), or `--smiles`, sampled afresh each round by the ANI-style conformer sampler.
Labels: `--oracle pyscf` computes them at `--fidelity`; `--oracle lookup` reveals labels the pool
already carries (an exact, cheap experiment on a labelled pool: the selector sees structures only).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import shutil
import sys
import time
from pathlib import Path

from foundation.errors import entry_point
from foundation.data import Sample
from foundation.errors import UserError
from foundation.pipelines.active.ledger import Ledger, once
from foundation.files import write_json
from foundation.pipelines.active.oracle import LookupOracle, PySCFOracle, labelled_samples
from foundation.pipelines.active.pool import bare, conformer_pool, read_structures, save_labelled
from foundation.pipelines.label.structures import has_structures, read_smiles
from foundation.pipelines.active.select import STRATEGIES, SelectConfig
from foundation.train.run import train
from foundation.recipes.rerun import set_aside

ORACLES = ("pyscf", "lookup")


@dataclasses.dataclass
class ActiveLearningConfig:
    """The loop's settings. `rounds` selection rounds follow round 0, so the labels spent are
    `n_initial + rounds * n_per_round`. `init_from`: the pretrained model(s); member k starts from
    `init_from[k % len]` (an ensemble file counts as its members). `overrides`: Hydra overrides
    for each member's training (`recipe`, default hydra_configs/recipe/active_learning.yaml)."""

    work_dir: str
    init_from: list[str]
    pool: str | None = None
    pool_split: str | None = None
    smiles: str | None = None
    conformers: int = 20  # per molecule and round, with `smiles`
    heldout: str | None = None
    heldout_split: str | None = None
    val: str | None = None
    val_split: str | None = None
    fidelity: str = "ccsdt_ccpvdz"
    oracle: str = "pyscf"
    strategy: str = "spread"
    rounds: int = 3
    n_initial: int = 10
    n_per_round: int = 10
    ensemble_size: int = 3
    diversity: float = 0.0
    force_weight: float = 0.0
    seed: int = 0
    recipe: str = "active_learning"
    overrides: list[str] = dataclasses.field(default_factory=list)
    label_workers: int = 1

    def __post_init__(self):
        if (self.pool is None) == (self.smiles is None):
            raise UserError("active learning: give exactly one source of candidates, --pool or --smiles")
        if self.oracle not in ORACLES:
            raise UserError(f"active learning: oracle {self.oracle!r} is not one of {', '.join(ORACLES)}")
        if self.oracle == "lookup" and self.pool is None:
            raise UserError("active learning: the lookup oracle needs a labelled --pool")
        if self.strategy not in STRATEGIES:
            raise UserError(f"active learning: strategy {self.strategy!r} is not one of {', '.join(STRATEGIES)}")
        if not self.init_from:
            raise UserError("active learning: --init-from (the pretrained model) is required")
        for name in ("n_initial", "n_per_round", "ensemble_size", "conformers"):
            if getattr(self, name) < 1:
                raise UserError(f"active learning: {name} must be at least 1, got {getattr(self, name)}")
        if self.rounds < 0:
            raise UserError(f"active learning: rounds must be >= 0, got {self.rounds}")
        if self.strategy == "spread" and self.ensemble_size < 2:
            raise UserError("active learning: strategy 'spread' needs ensemble_size >= 2 (a committee)")
        SelectConfig(n=1, strategy=self.strategy, diversity=self.diversity, force_weight=self.force_weight)
        self.init_from = [os.path.expanduser(str(p)) for p in self.init_from]

    def record(self) -> dict:
        """What config.json keeps (paths as given: the run is resumed from the same place)."""
        return dataclasses.asdict(self)


def run(config: ActiveLearningConfig, log=print) -> list[dict]:
    """Run (or resume) the loop; returns the per-round log."""
    ledger = Ledger(config.work_dir)
    ledger.check_config(config.record())
    pool = _frozen(ledger, "pool", config.pool, config.pool_split) if config.pool else None
    if config.oracle == "lookup":  # only what the oracle can answer is a candidate
        pool = [s for s in pool if config.fidelity in s.energies]
    heldout = _labelled_at(_frozen(ledger, "heldout", config.heldout, config.heldout_split), config.fidelity)
    val = _labelled_at(_frozen(ledger, "val", config.val, config.val_split), config.fidelity)
    for name, given, got in (("heldout", config.heldout, heldout), ("val", config.val, val)):
        if given and not got:
            raise UserError(f"--{name} {given}: no structure labelled at {config.fidelity} (give a shard "
                            "folder or a labeller folder, e.g. from `foundation data convert` or `data label`)")
    oracle = LookupOracle(config.fidelity, pool) if config.oracle == "lookup" else \
        PySCFOracle(config.fidelity, config.label_workers)
    init = _member_inits(config, ledger)
    for r in range(config.rounds + 1):
        if ledger.finished(r):
            continue
        record = _round(config, ledger, r, pool, heldout, val, oracle, init)
        rmse = record["heldout"].get("energy_rmse_kcal_mol")
        log(f"round {r}: +{record['labels_new']} labels ({record['labels_total']} in all), held-out "
            f"{config.fidelity} energy RMSE {'–' if rmse is None else f'{rmse:.3f}'} kcal/mol")
    return ledger.log()


def _round(config, ledger: Ledger, r: int, pool, heldout, val, oracle, init: list[str]) -> dict:
    started = time.perf_counter()
    rd = ledger.round_dir(r)
    labelled = [s for k in range(r) for s in labelled_samples(ledger.round_dir(k) / "labels", config.fidelity)[0]]
    candidates = _candidates(config, rd, r, pool, {s.source for s in labelled})
    picks = once(rd / "selected.json", lambda: _choose(config, ledger, r, candidates, labelled))
    by_source = {s.source: s for s in candidates}
    new, stats = oracle.label([by_source[s] for s in picks["sources"]], rd / "labels")
    members = _train_members(config, rd, labelled + new, val, init)
    metrics = _evaluate(rd, members, heldout, config.fidelity)
    spent = [ledger.finished(k)["label_seconds"] for k in range(r)]
    record = {"round": r, "strategy": picks["strategy"], "labels_new": len(picks["sources"]),
              "labels_ok": stats["ok"], "labels_failed": stats["failed"], "labels_total": len(labelled) + len(new),
              "label_seconds": stats["seconds"], "label_seconds_total": sum(spent) + stats["seconds"],
              "n_candidates": len(candidates), "picked": picks["sources"], "pick_spread": picks.get("pick_spread"),
              "pool_spread": picks.get("pool_spread"), "heldout": metrics, "members": members,
              "round_seconds": time.perf_counter() - started}
    ledger.finish(r, record)
    return record


def _frozen(ledger: Ledger, name: str, source: str | None, split: str | None) -> list[Sample]:
    """The structures of `source` as copied into the work dir when the loop started."""
    if source is None:
        return []
    folder = ledger.work_dir / name
    if not has_structures(folder):
        save_labelled(folder, read_structures(source, split))
    return read_structures(folder)


def _labelled_at(samples: list[Sample], fidelity: str) -> list[Sample]:
    return [Sample(s.numbers, s.positions, energies={fidelity: s.energies[fidelity]}, molecule=s.molecule,
                   source=s.source) for s in samples if fidelity in s.energies]


def _candidates(config, rd: Path, r: int, pool, labelled: set[str]) -> list[Sample]:
    """Unlabelled candidates of round `r`, without their labels."""
    if pool is None:
        folder = rd / "candidates"
        if not has_structures(folder):
            save_labelled(folder, conformer_pool(read_smiles(config.smiles), config.conformers, config.seed + r))
        pool = read_structures(folder)
    candidates = [bare(s) for s in pool if s.source not in labelled]
    if not candidates:
        raise UserError(f"round {r}: every candidate is labelled already; the pool is spent")
    return candidates


def _choose(config, ledger: Ledger, r: int, candidates: list[Sample], labelled: list[Sample]) -> dict:
    from foundation.pipelines.active.pick import pick

    if r == 0:  # the seed set: random for every strategy, so strategies share it
        select = SelectConfig(n=config.n_initial, strategy="random", seed=config.seed)
    else:
        select = SelectConfig(n=config.n_per_round, strategy=config.strategy, diversity=config.diversity,
                              force_weight=config.force_weight, seed=config.seed + 1000 * r)
    model = _load_ensemble(ledger.round_dir(r - 1)) if select.needs_model else None
    picked = pick(candidates, select, model, head=config.fidelity, reference=labelled,
                  forces=config.force_weight > 0)
    write_json(ledger.round_dir(r) / "scores.json", picked.rows)
    out = {"strategy": select.strategy, "sources": [s.source for s in picked.samples]}
    if picked.scores is not None:
        chosen = picked.selection.indices
        out["pick_spread"] = float(picked.scores.energy_spread_per_atom[chosen].mean())
        out["pool_spread"] = float(picked.scores.energy_spread_per_atom.mean())
    return out


def _train_members(config, rd: Path, train_set: list[Sample], val: list[Sample], init: list[str]) -> list[str]:
    shards = _write_shards(rd / "shards", train_set, val)
    paths = []
    for k in range(config.ensemble_size):
        run_dir = rd / "members" / f"member-{k}"
        if not (run_dir / "model.safetensors").exists():
            fid = config.fidelity
            train([f"data.path={shards}", f"data.fidelities=[{fid}]",
                   f"trainer.init_from={init[k % len(init)]}",
                   f"trainer.early_stopping_metric=val/{fid}/energy_rmse",
                   f"trainer.seed={config.seed * 1000 + k}", f"name={run_dir.name}",
                   f"out_dir={run_dir.parent}", "resume=true", "logger.progress_bar=false",
                   *config.overrides], recipe=config.recipe, quiet=True)
        paths.append(str(run_dir / "model.safetensors"))
    return paths


def _write_shards(folder: Path, train_set: list[Sample], val: list[Sample]) -> Path:
    """The round's training data (every label so far) and the validation set, as shards. Made
    once: a resumed member must train on the same bytes."""
    from foundation.data import write_manifest, write_shards

    if (folder / "manifest.json").exists():
        return folder
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shards = write_shards(train_set, tmp, "train")
    if val:
        shards += write_shards(val, tmp, "val")
    write_manifest(tmp, shards, command="python -m foundation.recipes.active_learning", extra={"name": folder.parent.name})
    tmp.rename(folder)
    return folder


def _load_ensemble(rd: Path):
    from foundation.loading import load_model

    return load_model(rd / "ensemble.safetensors")


def _evaluate(rd: Path, members: list[str], heldout: list[Sample], fidelity: str) -> dict:
    """Save the round's ensemble (the next round's committee) and score it on the held-out set."""
    from foundation.evaluation.evaluate import evaluate
    from foundation.hub import save_model
    from foundation.loading import load_model
    from foundation.models import EnsembleModel

    ensemble = EnsembleModel.from_members([load_model(p) for p in members]).eval()
    save_model(ensemble, rd / "ensemble.safetensors", metadata={"training": {"active_learning_round": rd.name}})
    if not heldout:
        return {}
    m = evaluate(ensemble, heldout, head=fidelity, fidelity=fidelity, include_forces=False)
    keys = ("n_structures", "energy_rmse_kcal_mol", "energy_mae_kcal_mol", "relative_energy_rmse_kcal_mol",
            "energy_mae_ev_per_atom")
    return {k: None if isinstance(m[k], float) and math.isnan(m[k]) else m[k] for k in keys}  # JSON has no NaN


def _member_inits(config, ledger: Ledger) -> list[str]:
    """Model files to start members from; an ensemble file is split into its members once."""
    from foundation.hub import save_model
    from foundation.loading import load_model

    out = []
    for j, path in enumerate(config.init_from):
        model = load_model(path)
        members = getattr(model, "members", None)
        if members is None:
            out.append(path)
            continue
        for k, member in enumerate(members):
            target = ledger.work_dir / "init" / f"init-{j}-member-{k}.safetensors"
            if not target.exists():
                save_model(member, target)
            out.append(str(target))
    return out


HELP = {
    "pool": "candidates: any ASE-readable file, a shard folder or a labeller folder (copied at the start)",
    "pool_split": "with a shard or labeller folder: one split (default all)",
    "smiles": "instead of --pool: a 'SMILES [name]' file; conformers are sampled afresh each round",
    "conformers": "with --smiles: conformers per molecule and round",
    "heldout": "labelled held-out structures (shard/labeller folder): the error logged each round",
    "heldout_split": "with a folder: its split, e.g. test",
    "val": "labelled validation structures for early stopping (default: none)",
    "val_split": "with a folder: its split, e.g. val",
    "fidelity": "the labels to acquire (default ccsdt_ccpvdz)",
    "oracle": "pyscf: compute labels; lookup: reveal labels the pool already has",
    "strategy": "spread: the ensemble's disagreement picks; random: a uniform draw (the control)",
    "rounds": "selection rounds after the initial random round",
    "n_initial": "labels in round 0 (random)",
    "n_per_round": "labels per later round",
    "ensemble_size": "members trained per round (seeds differ; the committee of the next round)",
    "diversity": "0..1: weight of the AEV distance to labelled structures and earlier picks",
    "force_weight": "add this x force spread (eV/Å) to the energy spread per atom (eV/atom)",
    "seed": "seeds the initial draw, ties, random picks and the members' training",
    "recipe": "the training recipe of each member (hydra_configs/recipe/)",
    "label_workers": "parallel PySCF processes",
}
CHOICES = {"oracle": ORACLES, "strategy": STRATEGIES}


@entry_point
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", required=True, help="where the rounds live; rerun the command to resume")
    parser.add_argument("--init-from", required=True, help="pretrained model(s), comma-separated, or an ensemble file")
    parser.add_argument("--overrides", nargs="*", default=[], help="Hydra overrides for each member's training (last)")
    for f in dataclasses.fields(ActiveLearningConfig):
        if f.name in HELP:
            kind = {"int": int, "float": float}.get(str(f.type), str)
            default = "" if f.default is None else f" (default {f.default})"
            parser.add_argument(f"--{f.name.replace('_', '-')}", type=kind, default=f.default,
                                choices=CHOICES.get(f.name), help=HELP[f.name] + default)
    parser.add_argument("--fresh", action="store_true",
                        help="start over: the work dir's rounds are moved aside (by default a rerun resumes them)")
    args = vars(parser.parse_args(argv))
    if args.pop("fresh"):
        set_aside([Path(args["work_dir"])], "--fresh")
    args["init_from"] = [p for p in args["init_from"].split(",") if p]
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    run(ActiveLearningConfig(**args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
