"""Make a shipped model and install it in the package, with its sha256 in the registry.

    python -m foundation.recipes.ship_model [--name ani-1x-ccsdt|ani-cc-mini] [--members 8] [--choose-members N] [--out runs/ship] [--fresh] [overrides…]

- `ani-1x-ccsdt` (default): the published ANI-1x ensemble transferred to the embedded
  CCSD(T)/cc-pVDZ data. The recipe (`--recipes`: by default `transfer.CANDIDATES` and the MP2
  rung's couplings, chains such as `mp2_transfer>delta` included) is chosen on the validation
  molecules, the frontier's first (`foundation.recipes.transfer`), on ensembles of
  `--choose-members` members (default `--members`: the ensemble is what ships), 3 seed draws
  each; then member k of ANI-1x is
  transferred by it into member k of the new ensemble (a chain: both stages, member by member),
  each with its own seed, so the spread still says how far to trust a prediction.
- `ani-cc-mini`: the pipeline's demonstration: our small DFT pretraining on the embedded data,
  then the finetune recipe. Not a start to fine-tune from.

The file and its registry entry are replaced atomically; `foundation hub info NAME` shows the
header (recipe, data manifest hash, validation metrics). When a model of that name is already
installed, both are scored on the validation and test molecules, the frontier's (5-7 heavy atoms)
and the embedded set's (2-5): the new one replaces it only if it is better on the frontier
validation molecules without losing on the small ones (`keeps_installed`; `--replace` installs it
anyway; a remake must earn its place as every choice here does), and `choice.json` keeps both
scores (the test ones a report of what the new data bought, never an input to the choice). The
registry entry's `version` counts the remakes installed, and `changes` says what the last changed."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from foundation.files import replacing
from foundation.errors import entry_point
import foundation.hub
from foundation.hub import file_sha256
from foundation.recipes.common import DFT, write_atomic
from foundation.train.run import train
from foundation.recipes.rerun import Rerun, add_fresh_argument

SEEDS = 3  # seed draws per candidate recipe; the choice is on their mean (recipes/transfer.py)
# the transfer candidates and the MP2 rung's couplings (docs/frontier.md)
RECIPES = ("finetune", "finetune_l2sp", "multihead_mp2", "mp2_transfer>finetune", "mp2_transfer>finetune_l2sp",
           "mp2_transfer>delta")
SPLIT_NAMES = {"frontier_val": "frontier validation molecules (the choice)", "val": "validation molecules (no loss allowed)",
               "frontier_test": "frontier test molecules (report only)", "test": "test molecules (report only)"}
SMALL_TOLERANCE = 0.05  # kcal/mol: "not losing on the small molecules" within their labels' scatter between seeds
HUB = Path(foundation.hub.__file__).parent  # the source tree in an editable install
ANI_ATTRIBUTION = ("from ANI-1x (Smith, Isayev, Roitberg et al., AIQM; github.com/aiqm/ani-model-zoo; MIT licence, "
                   "copyright (c) 2020 AIQM), transferred by Foundation")
ENTRIES = {
    "ani-1x-ccsdt": {
        "description": (
            "ANI-1x (published, 8 members) transferred to CCSD(T)/cc-pVDZ on Foundation's embedded CC data "
            "(938 training CCSD(T) energies of 126 small closed-shell H/C/N/O molecules of 1-7 heavy atoms, "
            "covering 23 functional-group families: displaced force-field minima and 300-600 K thermal "
            "conformers) and, where the recipe uses it, its MP2 rung (RI-MP2/cc-pVDZ energies of 320 "
            "molecules of 4-8 heavy atoms); a wB97X head beside the CC head. For conformer and reaction "
            "energies of small organics near CC quality; not for charged, open-shell or other-element "
            "systems, nor absolute energies of unseen molecule types"
        ),
        "default_head": "ccsdt_ccpvdz",
        "elements": ["H", "C", "N", "O"], "license": "MIT", "attribution": ANI_ATTRIBUTION},
    "ani-cc-mini": {
        "description": "Demonstration: a small ANI-style model pretrained on the embedded wB97X/6-31G* data (1.5 k "
                       "structures) and fine-tuned to CCSD(T)/cc-pVDZ; shows the pipeline, not a start to fine-tune from",
        "default_head": "ccsdt_ccpvdz",
        "elements": ["H", "C", "N", "O"], "license": "MIT"},
}


def install(model_path: Path, name: str, hub: Path = HUB, changes: str | None = None) -> dict:
    """Copy `model_path` into the package and write its registry entry (sha256, size, the heads in
    the file's own order and the fields of `ENTRIES[name]`). A new file of an installed name is its
    next `version` (a first install, or an entry from before versions, counts as 1), and `changes`
    says what it changed."""
    from foundation.hub import read_header

    target = hub / "weights" / f"{name}.safetensors"
    with replacing(target) as tmp:
        shutil.copyfile(model_path, tmp)
    registry_path = hub / "registry.json"
    registry = json.loads(registry_path.read_text())
    entry = registry["models"].setdefault(name, {})
    sha256 = file_sha256(target)
    if entry.get("sha256") not in (None, sha256):
        entry["version"] = int(entry.get("version", 1)) + 1
        entry["changes"] = changes or "remade"
    entry.setdefault("version", 1)
    entry.update(ENTRIES[name], fidelities=list(read_header(target)["heads"]),
                 path=f"weights/{name}.safetensors", sha256=sha256,
                 size=target.stat().st_size)
    write_atomic(registry_path, json.dumps(registry, indent=2, ensure_ascii=False) + "\n")
    return entry


def make_ani_1x_ccsdt(members: int, base: list[str], start: str = "ani-1x",
                      recipes: tuple[str, ...] | None = None, choose_members: int | None = None) -> tuple[Path, dict]:
    """(the ensemble file, what was chosen and measured). The recipe is chosen on ensembles of
    `choose_members` members (default: `members`, what ships), `SEEDS` seed draws each."""
    from foundation.recipes import transfer

    choose_members = choose_members or members
    compared = transfer.compare(start, recipes or RECIPES, base, seeds=SEEDS, members=choose_members)
    recipe = transfer.choose(compared)
    split = next(iter(compared.values()))["choice_split"]
    scored = "member 0" if choose_members == 1 else f"{choose_members}-member ensembles"
    print(f"chosen on {split}: {recipe} "
          + ", ".join(f"{r} {v['validation'][transfer.METRIC]:.3f}" for r, v in compared.items())
          + f" kcal/mol (relative-energy RMSE, {scored}, mean of {SEEDS} seed draws)", flush=True)
    path = transfer_ensemble(members, recipe, start, base)
    if recipe != "delta":  # delta on the start passes the start's head through already
        path = keep_start_head(path, start, path.with_name("ani-1x-ccsdt.safetensors"))
    choice = {"start": start, "recipe": recipe, "members": members, "start_head_kept": DFT, "choice_split": split,
              "choice_members": choose_members,
              "validation": {r: v["validation"][transfer.METRIC] for r, v in compared.items()},
              "splits": {r: {sp: m[transfer.METRIC] for sp, m in v["splits"].items()} for r, v in compared.items()}}
    return path, choice


def transfer_ensemble(members: int, recipe: str, start: str, base: list[str]) -> Path:
    """Member k of `start` transferred by `recipe` into member k; a chain runs its first stage for
    every member, then its second from each member's first-stage model."""
    from foundation.recipes import ensemble, transfer

    stages = transfer.stages(recipe)
    if len(stages) == 1:
        return Path(ensemble.run(members, recipe, [start], [*base, "name=ani-1x-ccsdt"], quiet=True)["path"])
    first = ensemble.run(members, stages[0], [start], [*base, f"name=ani-1x-ccsdt-{stages[0]}"], quiet=True)
    from foundation.loading import load_model

    head = transfer.start_head_override(stages[1], first["members"][0], load_model(start).heads)
    return Path(ensemble.run(members, stages[1], [str(p) for p in first["members"]],
                             [*base, *head, "name=ani-1x-ccsdt"], quiet=True)["path"])


def keep_start_head(path: Path, start: str, out: Path, head: str = DFT) -> Path:
    """The ensemble at `path` with its `head` answered by the start's member k, untouched, beside
    the transferred member k's other heads (`foundation.models.routed`): the recipes that train
    the shared layers move the start's own answers, which users of its DFT head rely on."""
    from foundation.hub import read_header, save_model
    from foundation.loading import load_model, load_pretrained
    from foundation.models import EnsembleModel, RoutedModel

    tuned, begin = load_model(path), load_pretrained(start)
    members = [RoutedModel.from_parts([first, mine], {**{h: 1 for h in mine.heads if h != head}, head: 0})
               for first, mine in zip(begin.members, tuned.members)]
    header = read_header(path)
    metadata = {k: header[k] for k in ("metrics", "training") if k in header}
    metadata.setdefault("training", {})["start_head_kept"] = {"head": head, "from": str(start)}
    return save_model(EnsembleModel.from_members(members), out, metadata)


def against_installed(path: Path, name: str, hub: Path, out: Path) -> dict:
    """{split: {"new": metrics, "replaced": metrics or absent}} on the CC validation and test
    molecules, the frontier's and the embedded set's, where labelled (the replaced file is kept as
    out/replaced.safetensors)."""
    from foundation.recipes.common import CC, evaluate_models
    from foundation.recipes.transfer import has_relative_energies, validation_samples

    models = {"new": path}
    installed = hub / "weights" / f"{name}.safetensors"
    if installed.exists():
        with replacing(out / "replaced.safetensors") as tmp:
            shutil.copyfile(installed, tmp)
        models["replaced"] = out / "replaced.safetensors"
    keep = ("relative_energy_rmse_kcal_mol", "energy_rmse_kcal_mol", "forces_vs_dft_mae_ev_per_a", "n_structures")
    result = {}
    for split in SPLIT_NAMES:
        samples = validation_samples(split)
        if not has_relative_energies(samples):
            continue
        scores = evaluate_models(models, samples, CC)
        result[split] = {label: {k: m[k] for k in keep if k in m} for label, m in scores.items()}
        print(f"{SPLIT_NAMES[split]}: " + ", ".join(
            f"{label} rel. E RMSE {m['relative_energy_rmse_kcal_mol']:.3f} kcal/mol" for label, m in result[split].items()))
    return result


def keeps_installed(compared: dict) -> bool:
    """Whether the installed model stays: the new one must be no worse on the frontier validation
    molecules (where labelled; ties go to the new model, made from the newer data) and lose no more
    than `SMALL_TOLERANCE` on the embedded validation molecules (the small ones). Test molecules
    never decide."""
    def rmse(split: str, label: str) -> float:
        return compared[split][label]["relative_energy_rmse_kcal_mol"]

    if "replaced" not in compared["val"]:
        return False
    if "frontier_val" in compared and rmse("frontier_val", "replaced") < rmse("frontier_val", "new"):
        return True
    return rmse("val", "new") > rmse("val", "replaced") + (SMALL_TOLERANCE if "frontier_val" in compared else 0.0)


def make_ani_cc_mini(base: list[str]) -> tuple[Path, dict]:
    pretrained = train(base + ["name=pretrain"], recipe="pretrain", quiet=True)
    tuned = train(base + ["name=finetune", f"trainer.init_from={pretrained.model_path}"], recipe="finetune", quiet=True)
    return Path(tuned.model_path), {"start": "embedded DFT pretraining", "recipe": "finetune"}


def describe_change(choice: dict) -> str:
    """One line for the registry: what made this version and what it scored against the one it replaced."""
    line = f"recipe {choice.get('recipe')} from {choice.get('start')}"
    if choice.get("choice_split"):
        line += f", chosen on {choice['choice_split']}"
    for split, scores in choice.get("compared", {}).items():
        if "replaced" in scores:
            line += (f"; {split} rel. E RMSE {scores['new']['relative_energy_rmse_kcal_mol']:.2f} (was "
                     f"{scores['replaced']['relative_energy_rmse_kcal_mol']:.2f}) kcal/mol")
    return line


@entry_point
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="ani-1x-ccsdt", choices=sorted(ENTRIES), help="which model to make")
    parser.add_argument("--members", type=int, default=8, help="ensemble members of ani-1x-ccsdt (ANI-1x has 8)")
    parser.add_argument("--recipes", default=",".join(RECIPES),
                        help="comma-separated candidates for ani-1x-ccsdt (recipes or chains first>then)")
    parser.add_argument("--choose-members", type=int,
                        help="members of the ensembles the recipe is chosen on (default: --members)")
    parser.add_argument("--out", type=Path, default=Path("runs/ship"))
    parser.add_argument("--hub", type=Path, default=HUB, help="the package's hub folder to install into")
    parser.add_argument("--replace", action="store_true",
                        help="install the new model even when the installed one is better on validation")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every training")
    add_fresh_argument(parser)
    args = parser.parse_args(argv)
    rerun = Rerun(args.out / args.name, argv, args.fresh, writes=[args.hub])
    if rerun.done:  # made from the same inputs: install that file again (the hub may have changed since)
        if rerun.record.get("model"):  # none when the installed model was kept
            install(Path(rerun.record["model"]), args.name, args.hub)
        return 0
    base = [f"out_dir={args.out / args.name}", "logger.progress_bar=false", *args.overrides]
    if args.name == "ani-1x-ccsdt":
        path, choice = make_ani_1x_ccsdt(args.members, base, recipes=tuple(r for r in args.recipes.split(",") if r),
                                         choose_members=args.choose_members)
    else:
        path, choice = make_ani_cc_mini(base)
    choice["compared"] = against_installed(path, args.name, args.hub, args.out / args.name)
    kept = keeps_installed(choice["compared"]) and not args.replace
    if kept:  # the hub is left as it was (installing the old file again would give it today's entry)
        summary = (f"kept the installed {args.name}: better on the validation molecules than the new one "
                   "(--replace installs the new one anyway)")
    else:
        entry = install(path, args.name, args.hub, changes=describe_change(choice))
        summary = f"installed {args.name}: {entry['size']} bytes, sha256 {entry['sha256']}"
    choice["installed"] = "replaced" if kept else "new"
    write_atomic(args.out / args.name / "choice.json", json.dumps(choice, indent=1) + "\n")
    print(summary)
    rerun.finish(summary, model=None if kept else str(path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
