"""Make a shipped model and install it in the package, with its sha256 in the registry.

    python -m foundation.recipes.ship_model [--name ani-1x-ccsdt|ani-cc-mini] [--members 8] [--out runs/ship] [--fresh] [overrides…]

- `ani-1x-ccsdt` (default): the published ANI-1x ensemble transferred to the embedded
  CCSD(T)/cc-pVDZ data. The recipe (finetune, multihead with DFT replay, delta on frozen ANI-1x)
  is chosen on the validation molecules (`foundation.recipes.transfer`); then member k of ANI-1x
  is transferred by it into member k of the new ensemble, each with its own seed, so the spread
  still says how far to trust a prediction.
- `ani-cc-mini`: the pipeline's demonstration: our small DFT pretraining on the embedded data,
  then the finetune recipe. Not a start to fine-tune from.

The file and its registry entry are replaced atomically; `foundation hub info NAME` shows the
header (recipe, data manifest hash, validation metrics). When a model of that name is already
installed, both are scored on the embedded validation and test molecules: the new one replaces it
unless the installed one is better on validation (`--replace` installs it anyway; a remake must
earn its place as every choice here does), and `choice.json` keeps both scores (the test ones a
report of what the new data bought, never an input to the choice)."""

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

SEEDS = 3  # trainings per candidate recipe; the choice is on their mean (recipes/transfer.py)
SPLIT_NAMES = {"val": "validation molecules (the choice)", "test": "test molecules (report only)"}
HUB = Path(foundation.hub.__file__).parent  # the source tree in an editable install
ANI_ATTRIBUTION = ("from ANI-1x (Smith, Isayev, Roitberg et al., AIQM; github.com/aiqm/ani-model-zoo; MIT licence, "
                   "copyright (c) 2020 AIQM), transferred by Foundation")
ENTRIES = {
    "ani-1x-ccsdt": {
        "description": (
            "ANI-1x (published, 8 members) transferred to CCSD(T)/cc-pVDZ on Foundation's embedded CC set "
            "(823 CCSD(T) energies of 102 small closed-shell H/C/N/O molecules, up to 6 heavy atoms, covering"
            " 23 functional-group families); a wB97X head beside the CC head. For conformer and reaction "
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


def install(model_path: Path, name: str, hub: Path = HUB) -> dict:
    """Copy `model_path` into the package and write its registry entry (sha256, size, the heads in
    the file's own order and the fields of `ENTRIES[name]`)."""
    from foundation.hub import read_header

    target = hub / "weights" / f"{name}.safetensors"
    with replacing(target) as tmp:
        shutil.copyfile(model_path, tmp)
    registry_path = hub / "registry.json"
    registry = json.loads(registry_path.read_text())
    entry = registry["models"].setdefault(name, {})
    entry.update(ENTRIES[name], fidelities=list(read_header(target)["heads"]),
                 path=f"weights/{name}.safetensors", sha256=file_sha256(target),
                 size=target.stat().st_size)
    write_atomic(registry_path, json.dumps(registry, indent=2, ensure_ascii=False) + "\n")
    return entry


def make_ani_1x_ccsdt(members: int, base: list[str], start: str = "ani-1x") -> tuple[Path, dict]:
    """(the ensemble file, what was chosen and measured)."""
    from foundation.recipes import ensemble, transfer

    compared = transfer.compare(start, transfer.CANDIDATES, base, seeds=SEEDS)
    recipe = transfer.choose(compared)
    print(f"chosen on the validation molecules: {recipe} "
          + ", ".join(f"{r} {v['validation'][transfer.METRIC]:.3f}" for r, v in compared.items())
          + f" kcal/mol (relative-energy RMSE, member 0, mean of {SEEDS} seeds)", flush=True)
    out = ensemble.run(members, recipe, [start], [*base, "name=ani-1x-ccsdt"], quiet=True)
    path = Path(out["path"])
    if recipe != "delta":  # delta passes the start's head through already
        path = keep_start_head(path, start, path.with_name("ani-1x-ccsdt.safetensors"))
    choice = {"start": start, "recipe": recipe, "members": members, "start_head_kept": DFT,
              "validation_member0": {r: v["validation"][transfer.METRIC] for r, v in compared.items()}}
    return path, choice


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
    """{split: {"new": metrics, "replaced": metrics or absent}} on the embedded CC validation and
    test molecules (the replaced file is kept as out/replaced.safetensors)."""
    from foundation.recipes.common import CC, embedded_samples, evaluate_models

    models = {"new": path}
    installed = hub / "weights" / f"{name}.safetensors"
    if installed.exists():
        with replacing(out / "replaced.safetensors") as tmp:
            shutil.copyfile(installed, tmp)
        models["replaced"] = out / "replaced.safetensors"
    keep = ("relative_energy_rmse_kcal_mol", "energy_rmse_kcal_mol", "forces_vs_dft_mae_ev_per_a", "n_structures")
    result = {}
    for split in ("val", "test"):
        scores = evaluate_models(models, embedded_samples(split, CC), CC)
        result[split] = {label: {k: m[k] for k in keep if k in m} for label, m in scores.items()}
        print(f"{SPLIT_NAMES[split]}: " + ", ".join(
            f"{label} rel. E RMSE {m['relative_energy_rmse_kcal_mol']:.3f} kcal/mol" for label, m in result[split].items()))
    return result


def keeps_installed(compared: dict) -> bool:
    """Whether the installed model stays: it is better on the validation molecules than the new
    one (ties go to the new model, made from the newer data)."""
    val = compared["val"]
    return "replaced" in val and (val["replaced"]["relative_energy_rmse_kcal_mol"]
                                  < val["new"]["relative_energy_rmse_kcal_mol"])


def make_ani_cc_mini(base: list[str]) -> tuple[Path, dict]:
    pretrained = train(base + ["name=pretrain"], recipe="pretrain", quiet=True)
    tuned = train(base + ["name=finetune", f"trainer.init_from={pretrained.model_path}"], recipe="finetune", quiet=True)
    return Path(tuned.model_path), {"start": "embedded DFT pretraining", "recipe": "finetune"}


@entry_point
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="ani-1x-ccsdt", choices=sorted(ENTRIES), help="which model to make")
    parser.add_argument("--members", type=int, default=8, help="ensemble members of ani-1x-ccsdt (ANI-1x has 8)")
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
        path, choice = make_ani_1x_ccsdt(args.members, base)
    else:
        path, choice = make_ani_cc_mini(base)
    choice["compared"] = against_installed(path, args.name, args.hub, args.out / args.name)
    kept = keeps_installed(choice["compared"]) and not args.replace
    if kept:  # the hub is left as it was (installing the old file again would give it today's entry)
        summary = (f"kept the installed {args.name}: better on the validation molecules than the new one "
                   "(--replace installs the new one anyway)")
    else:
        entry = install(path, args.name, args.hub)
        summary = f"installed {args.name}: {entry['size']} bytes, sha256 {entry['sha256']}"
    choice["installed"] = "replaced" if kept else "new"
    write_atomic(args.out / args.name / "choice.json", json.dumps(choice, indent=1) + "\n")
    print(summary)
    rerun.finish(summary, model=None if kept else str(path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
