"""MACE fine-tuned to CCSD(T) by mace-torch's own `--foundation_model` path and by our recipes,
from the DFT models of `benchmarks.peers_mace` (`python -m benchmarks.peers_mace_transfer`, `make
bench-peers`, which runs it after peers_mace and reuses that run's models; alone, it trains them
first). Not part of `make bench`: 65 minutes on 2 shared cores after peers_mace.

Each start is the DFT-only model of peers_mace (mace-torch's, and our MACE, ANI and PaiNN, all
trained on the same ωB97X structures). Each is fine-tuned on the embedded CC training molecules'
CCSD(T) energies (no CC forces exist) for the same number of CC epochs, validated once per epoch,
the best validation's weights kept:

- mace-torch, its multihead fine-tuning (its default with `--foundation_model`: a new head, the
  DFT training structures replayed as `--pt_train_file`, as many as there are CC ones; its own
  forced settings, lr 1e-4 and EMA 0.99999, and E0s estimated from the foundation model);
- mace-torch, plain fine-tuning (`--multiheads_finetuning False`, E0s refit by least squares, our
  recipes' lr 5e-4 and EMA 0.99);
- our `finetune` recipe with three choices of frozen layers (none; MACE's embedding and first
  layer; everything but the readouts), and our `multihead` recipe (DFT replayed 50/50);
- our `finetune` and `multihead` recipes on ANI and PaiNN (each architecture's default freeze).

Every choice (mace-torch's path, our recipe, MACE's frozen layers) is made on the CC validation
molecules; the test molecules only score. Writes mace_transfer_rel_energy_rmse_vs_mace_torch.json
(ratio: mace-torch's chosen fine-tune / ours, above 1 means ours is more accurate), with every
candidate's validation and test scores under "results".
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import torch

from benchmarks import common
from benchmarks.peers_mace import (BIN, CC, DFT, LR, EMA, BATCH, mace_torch_predictions, ours_predictions,
                                   pretrain, score, steps_for, train_side_by_side)
from foundation.errors import entry_point

FT_EPOCHS = common.sized(25, 2)
PATIENCE = 10  # validations (epochs) without improvement before a fine-tune stops; both sides
OUR_LR = 5e-4  # our recipes' rate, also given to mace-torch's plain fine-tuning
QUICK_JOBS = ("mace_torch multihead", "mace_torch finetune", "mace finetune, freeze first layer", "mace multihead",
              "ani finetune")
# Spelled out, not `auto`: MACE's default is what this benchmark chooses (now: nothing frozen).
MACE_FREEZE = {"none": [], "first layer": ["mace.node_embedding.*", "mace.interactions.0.*", "mace.products.0.*"],
               "all but readouts": ["mace.node_embedding.*", "mace.interactions.*", "mace.products.*"]}
MACE_TORCH_RUNS = {"mace_torch multihead": "mh", "mace_torch finetune": "ft"}  # label: its --name


def cc_files(work: Path) -> dict[str, list]:
    """The embedded CC training and validation structures (CCSD(T) energies only) as extxyz for
    mace-torch; {split: samples}."""
    from foundation.data import Sample, write_extxyz
    from foundation.recipes.common import embedded_samples

    out = {}
    for split in ("train", "val"):
        samples = [Sample(s.numbers, s.positions, {CC: s.energies[CC]}, {}, molecule=s.molecule, source=s.source)
                   for s in embedded_samples(split, CC)]
        if common.QUICK:
            samples = samples[:24] if split == "train" else samples[:8]
        write_extxyz(work / f"cc_{split}.xyz", samples, energy_key="REF_energy", forces_key="REF_forces", fidelity=CC)
        out[split] = samples
    return out


def mace_torch_commands(work: Path, start: str, n_cc: int) -> dict[str, list[str]]:
    common_args = [str(BIN / "mace_run_train"), "--train_file", str(work / "cc_train.xyz"),
                   "--valid_file", str(work / "cc_val.xyz"), "--energy_key", "REF_energy",
                   "--forces_key", "REF_forces", "--foundation_model", start, "--batch_size", str(BATCH),
                   "--valid_batch_size", str(BATCH), "--max_num_epochs", str(FT_EPOCHS), "--patience",
                   str(PATIENCE), "--eval_interval", "1", "--default_dtype", "float32", "--device", "cpu",
                   "--seed", "0", "--plot", "False", "--energy_weight", "1.0", "--forces_weight", "100.0",
                   "--clip_grad", "10.0", "--E0s", "estimated"]
    own = {"mace_torch multihead": ["--multiheads_finetuning", "True", "--pt_train_file", str(work.parent / "train.xyz"),
                                    "--pt_valid_file", str(work.parent / "val.xyz"), "--num_samples_pt", str(n_cc)],
           "mace_torch finetune": ["--multiheads_finetuning", "False", "--lr", str(OUR_LR), "--ema", "--ema_decay",
                                   str(EMA)]}
    return {label: [*common_args, "--name", MACE_TORCH_RUNS[label], "--work_dir", str(mace_torch_model(work, label).parent),
                    *args] for label, args in own.items()}


def mace_torch_model(work: Path, label: str) -> Path:
    name = MACE_TORCH_RUNS[label]
    return work / f"mace_torch_{name}" / f"{name}.model"


def our_commands(work: Path, starts: dict[str, str], mean_atoms: float, n_cc: int) -> dict[str, list[str]]:
    """{label: `foundation train` command} for each of our recipes on each start, the same CC epochs."""
    jobs = {}
    for model, start in starts.items():
        variants = {f"{model} finetune, freeze {k}": ("finetune", v) for k, v in MACE_FREEZE.items()} \
            if model == "mace" else {f"{model} finetune": ("finetune", ["auto"])}
        variants[f"{model} multihead"] = ("multihead", [])
        for label, (recipe, freeze) in variants.items():
            base = [f"recipe={recipe}", f"trainer.init_from={start}", f"out_dir={work / 'runs'}",
                    f"name={run_name(label)}", f"trainer.freeze=[{','.join(freeze)}]",
                    f"data.max_atoms_per_batch={round(BATCH * mean_atoms)}", "logger.progress_bar=false",
                    f"trainer.early_stopping_patience={PATIENCE}"]
            structures = FT_EPOCHS * n_cc * (2 if recipe == "multihead" else 1)  # multihead: half the draws are DFT
            steps = steps_for(base, structures)
            jobs[label] = [sys.executable, "-m", "foundation", "train", *base, f"trainer.max_steps={steps}",
                           f"trainer.val_every={max(1, steps // FT_EPOCHS)}", f"trainer.ckpt_every={steps}",
                           f"trainer.warmup_steps={min(50, steps // 10)}"]
    return jobs


def run_name(label: str) -> str:
    """Our run's folder name for a candidate's label."""
    return label.replace(" ", "_").replace(",", "")


def our_model(work: Path, label: str) -> Path:
    return work / "runs" / run_name(label) / "model.safetensors"


def predictions(work: Path, label: str, split: str, samples) -> tuple[np.ndarray, list[np.ndarray]]:
    if label.startswith("mace_torch"):
        return mace_torch_predictions(work / f"cc_{split}.xyz" if split == "val" else work.parent / "test.xyz",
                                      mace_torch_model(work, label), head="Default")
    return ours_predictions(our_model(work, label), samples, head=CC)


def run() -> list[dict]:
    torch.set_num_threads(1)
    if not (BIN / "mace_run_train").exists():
        print("peers_mace_transfer: skipped, mace-torch is not installed (pip install 'foundation-mlip[mace]')")
        return []
    with common.work_dir("peers_mace") as root:
        data, record = pretrain(root)
        work = root / "transfer"
        shutil.rmtree(work, ignore_errors=True)  # a kept folder's earlier fine-tunes
        work.mkdir()
        cc = cc_files(work)
        n_cc, mean_atoms = len(cc["train"]), sum(s.n_atoms for s in cc["train"]) / len(cc["train"])
        starts = {m: record["models"][m] for m in ("mace", "ani", "painn") if not isinstance(record["times"][m], str)}
        jobs = mace_torch_commands(work, record["models"]["mace_torch"], n_cc) | \
            our_commands(work, starts, mean_atoms, n_cc)
        if common.QUICK:  # each kind of command once: the check that none is broken
            jobs = {k: v for k, v in jobs.items() if k in QUICK_JOBS}
        ordered = dict(sorted(jobs.items(), key=lambda kv: ("multihead" not in kv[0], "mace" not in kv[0])))
        times = train_side_by_side(ordered, work, required=False, slots=2)  # the longest first
        results = {}
        for label, timing in times.items():
            if isinstance(timing, str):
                results[label] = {"failed": timing}
                continue
            results[label] = {"validation": score(*predictions(work, label, "val", cc["val"]), cc["val"]),
                              "test": score(*predictions(work, label, "test", data["test"]), data["test"]),
                              "cpu_s": round(timing[0], 1)}
    inputs = {"cc_epochs": FT_EPOCHS, "cc_train_structures": n_cc, "cc_val_structures": len(cc["val"]),
              "patience_epochs": PATIENCE, "starts": "peers_mace's DFT-only models", "pretraining": record["inputs"]}
    return [figure(results, inputs)]


def chosen(results: dict, prefix: str) -> str:
    """Of the candidates whose label starts with `prefix`, the one best on the validation molecules."""
    scored = {k: v["validation"]["rel_energy_rmse_vs_cc_kcal_mol"] for k, v in results.items()
              if k.startswith(prefix) and "validation" in v}
    return min(scored, key=scored.get)


def figure(results: dict, inputs: dict) -> dict:
    key = "rel_energy_rmse_vs_cc_kcal_mol"
    choice = {name: chosen(results, prefix) for name, prefix in
              (("mace_torch", "mace_torch"), ("mace", "mace "), ("ani", "ani"), ("painn", "painn"))
              if any(k.startswith(prefix) and "validation" in v for k, v in results.items())}
    ours, peer = results[choice["mace"]]["test"][key], results[choice["mace_torch"]]["test"][key]
    return common.figure("mace_transfer_rel_energy_rmse_vs_mace_torch", "kcal/mol", [ours], [peer], goal=1.0,
                         inputs=inputs | {"chosen_on_validation": choice}, ratio=peer / ours,
                         versioned=("foundation-mlip", "torch", "mace-torch", "e3nn", "numpy", "ase"),
                         also={m: results[c]["test"][key] for m, c in choice.items() if m not in ("mace", "mace_torch")},
                         results=results,
                         note="test rel. E RMSE vs CCSD(T) after fine-tuning; ratio = peer/ours (lower error is better)")


@entry_point
def main() -> None:
    common.run_and_report(run)


if __name__ == "__main__":
    main()
