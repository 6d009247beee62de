"""MACE trained by mace-torch's own CLI and by us (`model=mace`) on the same data, split, size and
number of epochs (`python -m benchmarks.peers_mace`, `make bench-peers`). Not part of `make bench`:
at full size (60 epochs on 1,475 structures) it took 54 minutes on 2 cores (46 for the two MACE
trainings side by side, then ANI and PaiNN).

Data: the embedded dataset's ωB97X/6-31G* training split (energies and forces) and its validation
split, written as extxyz for `mace_run_train` and as our shards for `foundation train`: the same
structures and the same split for both. Both train MACE 32x0e+32x1o, r_max 5 Å, 2 interactions,
correlation 3 (mace_run_train's other defaults), in float32, one thread each, the two side by side
on two cores, the same way: batches of 10 structures (ours: batches of the same mean number of
atoms), lr 0.01, loss weights 1 (per-atom energy) : 100 (forces), EMA 0.99, gradient clipping 10,
validation once per epoch, the best validation's weights kept; reference energies (E0s) by least
squares and avg_num_neighbors and the scale from the training data. Our ANI and PaiNN train the
same way beside them (under "also" in each JSON). Scored on the embedded test split (molecules none
of them saw): the relative-energy RMSE against CCSD(T) of each DFT model's energies (no CC head: as
issue 18 compares them), the force MAE against ωB97X, and the training throughput (training
structures x epochs per CPU second of the whole training command, start-up and validation
included). mace-torch's model is scored by its own `mace_eval_configs`, in its own process: we
never unpickle its file. Writes mace_{rel_energy_rmse,forces_mae,train_throughput}_vs_mace_torch.json.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks import common
from foundation.files import write_text_atomic
from foundation.errors import entry_point

DFT, CC = "wb97x_631gs", "ccsdt_ccpvdz"
EPOCHS = common.sized(60, 2)
BATCH, LR, FORCES_WEIGHT, EMA = 10, 0.01, 100.0, 0.99
FULL = {"hidden_irreps": "32x0e+32x1o", "mlp_irreps": "16x0e", "max_ell": 3, "correlation": 3,
        "radial_mlp": [64, 64, 64], "num_bessel": 8}
TINY = {"hidden_irreps": "8x0e+8x1o", "mlp_irreps": "8x0e", "max_ell": 2, "correlation": 2, "radial_mlp": [16],
        "num_bessel": 6}
SIZE = common.sized(FULL, TINY)
QUICK_SPLIT = (24, 8, 2)  # a quick run: training and validation structures, test molecules
BIN = Path(sys.executable).parent


def prepare(work: Path) -> dict:
    """The samples (train, val: DFT labels only; test: all labels), as shards and extxyz files."""
    from benchmarks.active_learning import snapshot_data
    from foundation.data import Sample, iter_samples, load_manifest, write_extxyz, write_manifest, write_shards

    shutil.rmtree(work / "data", ignore_errors=True)  # a kept folder: today's embedded data
    manifest = load_manifest(snapshot_data(work))  # one dataset throughout: the labeller rebuilds it
    dft = {split: [Sample(s.numbers, s.positions, {DFT: s.energies[DFT]}, {DFT: s.forces[DFT]}, molecule=s.molecule,
                          source=s.source) for s in iter_samples(manifest, split) if DFT in s.forces]
           for split in ("train", "val")}
    test = list(iter_samples(manifest, "test"))
    if common.QUICK:
        n_train, n_val, n_molecules = QUICK_SPLIT
        dft = {"train": dft["train"][:n_train], "val": dft["val"][:n_val]}
        keep = sorted({s.molecule for s in test if CC in s.energies})[:n_molecules]
        test = [s for s in test if s.molecule in keep]
    shards = [info for split, samples in dft.items() for info in write_shards(samples, work / "shards", split)]
    write_manifest(work / "shards", shards, command="benchmarks.peers_mace")
    for split, samples in dft.items():
        write_extxyz(work / f"{split}.xyz", samples, energy_key="REF_energy", forces_key="REF_forces", fidelity=DFT)
    write_extxyz(work / "test.xyz", test, energy_key="REF_energy", forces_key="REF_forces", fidelity=DFT)
    return {**dft, "test": test}


def mace_torch_command(work: Path) -> list[str]:
    s = SIZE
    return [str(BIN / "mace_run_train"), "--name", "mace_torch", "--work_dir", str(work / "mace_torch"),
            "--train_file", str(work / "train.xyz"), "--valid_file", str(work / "val.xyz"),
            "--energy_key", "REF_energy", "--forces_key", "REF_forces", "--E0s", "average", "--model", "MACE",
            "--r_max", "5.0", "--num_interactions", "2", "--hidden_irreps", s["hidden_irreps"],
            "--MLP_irreps", s["mlp_irreps"], "--max_ell", str(s["max_ell"]), "--correlation", str(s["correlation"]),
            "--radial_MLP", str(s["radial_mlp"]), "--num_radial_basis", str(s["num_bessel"]),
            "--batch_size", str(BATCH), "--valid_batch_size", str(BATCH), "--lr", str(LR),
            "--energy_weight", "1.0", "--forces_weight", str(FORCES_WEIGHT), "--ema", "--ema_decay", str(EMA),
            "--clip_grad", "10.0", "--weight_decay", "5e-7", "--max_num_epochs", str(EPOCHS), "--eval_interval", "1",
            "--default_dtype", "float32", "--device", "cpu", "--seed", "0", "--plot", "False"]


def our_overrides(model: str, work: Path, mean_atoms: float) -> list[str]:
    """`foundation train` settings matching mace_run_train's above (the step count comes later)."""
    size = [f"model.{k}={v}" for k, v in SIZE.items()] if model == "mace" else \
        (["experiment=smoke"] if common.QUICK else [])  # ANI and PaiNN: their default (or smoke) sizes
    return [f"model={model}", *size, "data=shards", f"data.path={work / 'shards'}",
            f"data.max_atoms_per_batch={round(BATCH * mean_atoms)}", "trainer.device=cpu", "trainer.dtype=float32",
            f"trainer.lr={LR}", "trainer.schedule=constant", "trainer.warmup_steps=0", "trainer.weight_decay=5e-7",
            f"trainer.ema_decay={EMA}", "trainer.grad_clip=10.0", "trainer.energy_weight=1.0",
            f"trainer.forces_weight={FORCES_WEIGHT}", "trainer.val_at_start=false", "trainer.allow_worse=true",
            "trainer.early_stopping_patience=1000000", "trainer.early_stopping_metric=val/loss",  # keeps the best
            "logger.progress_bar=false", f"out_dir={work / 'runs'}", f"name={model}"]


def steps_for(overrides: list[str], structures: int) -> int:
    """Optimiser steps in which our stream yields at least `structures` training structures."""
    from foundation.train.compose import load_run_config

    config = load_run_config(overrides)
    seen = 0
    for step, batch in enumerate(config.data.build().train_stream(seed=config.trainer.seed, rank=0, world_size=1), 1):
        seen += batch.n_structures
        if seen >= structures:
            return step
    raise RuntimeError("the training stream ended")  # it loops over epochs: never


class Job:
    """A command run in the background, its output in a log."""

    def __init__(self, name: str, command: list[str], log: Path):
        self.name, self.log, self.started = name, log, time.perf_counter()
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        with open(log, "w") as out:
            self.proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)

    def result(self, status: int, usage) -> tuple[float, float] | str:
        """(CPU s, wall s), or the end of its log if it failed."""
        wall = time.perf_counter() - self.started
        if os.waitstatus_to_exitcode(status) != 0:
            return f"{self.name} failed:\n{self.log.read_text()[-3000:]}"
        return usage.ru_utime + usage.ru_stime, wall


def train_side_by_side(jobs: dict[str, list[str]], work: Path, required: bool, slots: int | None = None) -> dict:
    """Run `jobs`, `slots` at a time (default: all at once; one core each), in the order given;
    {name: (CPU s, wall s) or why it failed}. A `required` group that failed stops the benchmark
    (after all its jobs ended)."""
    pending, running, done = list(jobs.items()), {}, {}
    while pending or running:
        while pending and len(running) < (slots or len(jobs)):
            name, command = pending.pop(0)
            job = Job(name, command, work / f"{name}.log")
            running[job.proc.pid] = job
        pid, status, usage = os.wait4(-1, 0)
        if pid in running:
            job = running.pop(pid)
            done[job.name] = job.result(status, usage)
    failed = [why for why in done.values() if isinstance(why, str)]
    if required and failed:
        raise RuntimeError("\n".join(failed))
    return done


def ours_predictions(path: Path, samples, head: str = DFT) -> tuple[np.ndarray, list[np.ndarray]]:
    from foundation.data import collate
    from foundation.data.batching import group_by_atoms
    from foundation.loading import load_model

    model = load_model(path).eval()  # float32, as trained (and as mace-torch's is scored)
    energies, forces = [], []
    for group in group_by_atoms(samples, 512):
        out = model(collate(group, fidelities=[], dtype=model.dtype), head=head)
        energies.append(out["energy"].detach().numpy())
        forces += np.split(out["forces"].detach().numpy(), np.cumsum([s.n_atoms for s in group])[:-1])
    return np.concatenate(energies), forces


def mace_torch_predictions(configs: Path, model: str | Path, head: str | None = None
                           ) -> tuple[np.ndarray, list[np.ndarray]]:
    """mace-torch's own evaluation of its `model` file (of its `head`) on the structures of
    `configs` (its process loads its file), in the float32 it was trained in."""
    import ase.io

    out = Path(model).with_suffix(f".{configs.stem}.xyz")
    done = subprocess.run([str(BIN / "mace_eval_configs"), "--configs", str(configs), "--output", str(out),
                           "--model", str(model), "--device", "cpu", "--default_dtype", "float32",
                           *(["--head", head] if head else [])], capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    if done.returncode:
        raise RuntimeError(f"mace_eval_configs failed:\n{done.stderr[-3000:]}")
    frames = ase.io.read(out, ":")
    return np.array([a.info["MACE_energy"] for a in frames]), [a.arrays["MACE_forces"] for a in frames]


def score(energies: np.ndarray, forces: list[np.ndarray], test) -> dict:
    """Relative-energy RMSE (kcal/mol, per formula) of the DFT model's energies against CCSD(T),
    and force MAE (eV/Å) against ωB97X, on the test structures labelled with each."""
    from foundation.data.molecules import hill_formula
    from foundation.evaluation import metrics

    cc = [k for k, s in enumerate(test) if CC in s.energies]
    forced = [k for k, s in enumerate(test) if DFT in s.forces]
    return {"rel_energy_rmse_vs_cc_kcal_mol": metrics.relative_energy_rmse_kcal_mol(
                energies[cc], np.array([test[k].energies[CC] for k in cc]), [hill_formula(test[k].numbers) for k in cc]),
            "forces_mae_vs_dft_ev_per_a": metrics.forces_mae(np.concatenate([forces[k] for k in forced]),
                                                             np.concatenate([test[k].forces[DFT] for k in forced]))
            if forced else None,
            "cc_test_structures": len(cc), "dft_test_structures": len(forced),
            "test_molecules": len({test[k].molecule for k in cc})}


def pretrain(work: Path) -> tuple[dict, dict]:
    """The samples, and the record of the DFT trainings in `work` (mace-torch's and our MACE, then
    ANI and PaiNN): reused when `work` holds a finished run of the same inputs (`make bench-peers`
    keeps it for benchmarks.peers_mace_transfer), else trained afresh."""
    data = prepare(work)
    n_train = len(data["train"])
    mean_atoms = sum(s.n_atoms for s in data["train"]) / n_train
    ours = {m: our_overrides(m, work, mean_atoms) for m in ("mace", "ani", "painn")}
    steps = steps_for(ours["mace"], EPOCHS * n_train)  # the same data and batches for every model
    inputs = {"epochs": EPOCHS, "train_structures": n_train, "val_structures": len(data["val"]),
              "mean_atoms": round(mean_atoms, 2), "our_steps": steps, "mace_size": SIZE,
              "data": common.fingerprint(work / "train.xyz", work / "val.xyz"),
              "training": f"batch {BATCH} structures (ours: {round(BATCH * mean_atoms)} atoms), lr {LR}, "
                          f"loss 1:{FORCES_WEIGHT:g}, EMA {EMA}, clip 10, float32, best validation kept",
              "peer": "mace_run_train --model MACE (mace-torch), scored by mace_eval_configs",
              "ours": "foundation train model=mace; ANI and PaiNN under 'also', trained the same way"}
    record_path = work / "pretrained.json"
    if record_path.exists() and json.loads(record_path.read_text())["inputs"] == inputs:
        print(f"peers_mace: reusing the DFT trainings in {work} (same inputs)", flush=True)
        return data, json.loads(record_path.read_text())
    for old in (work / "runs", work / "mace_torch"):
        shutil.rmtree(old, ignore_errors=True)
    command = {m: [sys.executable, "-m", "foundation", "train", *o, f"trainer.max_steps={steps}",
                   f"trainer.val_every={max(1, steps // EPOCHS)}", f"trainer.ckpt_every={steps}"]
               for m, o in ours.items()}
    times = train_side_by_side({"mace_torch": mace_torch_command(work), "mace": command["mace"]}, work, True)
    times |= train_side_by_side({m: command[m] for m in ("ani", "painn")}, work, False)  # beside: not fatal
    record = {"inputs": inputs, "times": times,
              "models": {"mace_torch": str(work / "mace_torch" / "mace_torch.model"),
                         **{m: str(work / "runs" / m / "model.safetensors") for m in ours}}}
    write_text_atomic(record_path, json.dumps(record, indent=1))
    return data, record


def run() -> list[dict]:
    torch.set_num_threads(1)
    if not (BIN / "mace_run_train").exists():
        print("peers_mace: skipped, mace-torch is not installed (pip install 'foundation-mlip[mace]')")
        return []
    with common.work_dir("peers_mace") as work:
        data, record = pretrain(work)
        results = {"mace_torch": score(*mace_torch_predictions(work / "test.xyz", record["models"]["mace_torch"]),
                                       data["test"])}
        n_seen = EPOCHS * record["inputs"]["train_structures"]
        for name, timing in record["times"].items():
            if isinstance(timing, str):
                results[name] = {"failed": timing}
                continue
            if name != "mace_torch":
                results[name] = score(*ours_predictions(record["models"][name], data["test"]), data["test"])
            cpu, wall = timing
            results[name] |= {"structures_per_s": n_seen / cpu, "wall_structures_per_s": n_seen / wall,
                              "cpu_s": round(cpu, 1), "wall_s": round(wall, 1)}
    return figures(results, record["inputs"])


def figures(results: dict, inputs: dict) -> list[dict]:
    """Errors: ratio peer / ours (above 1: ours is more accurate), goal 1/1.1 (within 10 %);
    throughput: ratio ours / peer, goal 1."""
    out = []
    for name, key, unit, error in (("mace_rel_energy_rmse_vs_mace_torch", "rel_energy_rmse_vs_cc_kcal_mol", "kcal/mol", True),
                                   ("mace_forces_mae_vs_mace_torch", "forces_mae_vs_dft_ev_per_a", "eV/Å", True),
                                   ("mace_train_throughput_vs_mace_torch", "structures_per_s", "structures/s", False)):
        ours, peer = results["mace"][key], results["mace_torch"][key]
        out.append(common.figure(name, unit, [ours], [peer], goal=1 / 1.1 if error else 1.0, inputs=inputs,
                                 ratio=peer / ours if error else ours / peer,
                                 versioned=("foundation-mlip", "torch", "mace-torch", "e3nn", "numpy", "ase"),
                                 also={m: results[m].get(key) for m in ("ani", "painn")}, results=results,
                                 note="ratio = peer/ours (lower error is better)" if error else
                                 "CPU time of the whole training command"))
    return out


@entry_point
def main() -> None:
    common.run_and_report(run)


if __name__ == "__main__":
    main()
