"""Scale rehearsal: one epoch of an ANI-1x-sized shard set (5 M conformations) through 2-process
`torchrun` data loading on one machine (not run in tests; about 20 minutes on 2 cores):

    nice -n 10 python -m benchmarks.scale_rehearsal [--n 5000000] [--work /tmp/scale_rehearsal]

1. Write the shards (`benchmarks/scale_data.py`, perturbed copies of real molecules) under --work,
   never into the repository, fsync them and drop them from the page cache, so the epoch reads
   from disk as a cluster reads from its file system (not from memory the writer just filled).
2. Time to the first batch at two sizes: the whole set and its first tenth of shards (links in a
   folder with their own manifest), launches alternating.
3. One epoch in two jobs (`benchmarks/scale_rehearsal_rank.py`): `head` streams to half of each
   rank's share, saves the stream position and exits; `tail` restores it in fresh processes (a job
   restart), checks its first batches are the ones `head` saw next, and finishes the epoch.
   Every conformation must be counted exactly once over ranks and jobs.
4. `scale_stream_5m.json` (+ `.png`, memory over time) in benchmarks/results/. The headline is the
   conformations/s a rank's loader delivers against the conformations/s the training step of the
   ANI-1x architecture consumes per rank on the same machine (`scaling_2proc.json`): the loader
   must keep ahead of the model (goal ≥ 1). The rest is in `checks` and `measured`.
The shards are deleted at the end unless --keep.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

from benchmarks.common import RESULTS, machine, sized, versions
from benchmarks.scale_data import write_scale_shards
from foundation.files import write_text_atomic
from foundation.errors import entry_point
from foundation.data import load_manifest, write_manifest
from foundation.data.shards.reader import iter_shard_records

REPO = Path(__file__).resolve().parents[1]
RANK_SCRIPT = Path(__file__).with_name("scale_rehearsal_rank.py")
NPROC, WARMUP = 2, 0.1  # ranks; the first tenth of each job's time is warm-up for the memory check


@dataclasses.dataclass(frozen=True)
class Settings:
    """The stream's knobs, as `data=shards` names them (per rank)."""

    seed: int = 0
    max_atoms: int = 2048  # data.max_atoms_per_batch (~130 conformations of ~16 atoms)
    shuffle_buffer: int = 1000  # data.shuffle_buffer, per reader
    num_workers: int = 2  # data.num_workers
    check: int = 32  # batches compared after the restart
    every: float = 1.0  # seconds between memory samples

    def argv(self) -> list[str]:
        return [f"--{k.replace('_', '-')}={v}" for k, v in dataclasses.asdict(self).items()]


def torchrun(mode: str, shards: Path, out: Path, settings: Settings, tag: str = "",
             extra: tuple[str, ...] = ()) -> list[dict]:
    """Run `scale_rehearsal_rank.py MODE` on NPROC ranks; returns each rank's result."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={NPROC}",
           str(RANK_SCRIPT), mode, str(shards), str(out), *settings.argv(), f"--launched={time.time()}",
           f"--tag={tag}", *extra]
    done = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-4000:]}")
    return [json.loads((out / f"{mode}{tag}-rank{r}.json").read_text()) for r in range(NPROC)]


def subset(shards: Path, dest: Path, fraction: float) -> Path:
    """A shard set of the first `fraction` of `shards`' shards (symbolic links, own manifest)."""
    manifest = load_manifest(shards)
    keep = manifest.shards()[:max(NPROC * 2, round(fraction * len(manifest.shards())))]
    dest.mkdir(parents=True, exist_ok=True)
    for shard in keep:
        link = dest / shard["name"]
        if not link.exists():
            link.symlink_to(shards / shard["name"])
    write_manifest(dest, keep, manifest.data["levels_of_theory"], command=f"subset of {shards}")
    return dest


def drop_from_page_cache(shards: Path) -> None:
    """Write our shards to disk and evict them from the page cache (only our files: no root, no
    effect on other processes), so the epoch measures reading from storage."""
    for path in shards.glob("*.tar"):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fdatasync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def time_to_first_batch(full: Path, small: Path, out: Path, settings: Settings,
                        repeats: int) -> tuple[dict, dict]:
    """Seconds from launch and from building the stream to the first batch (slowest rank), per
    size, launches alternating so that a change of load hits both; and, after each first batch,
    the seconds of one gloo all-reduce of each model's gradients (slowest rank, median)."""
    runs, allreduce = {"full": [], "tenth": []}, {}
    grads = gradient_sizes()
    for k in range(repeats):
        for size, path in (("tenth", small), ("full", full)):
            ranks = torchrun("first", path, out, settings, f"-{size}{k}",
                             (f"--allreduce={','.join(f'{m}={n}' for m, n in grads.items())}",))
            runs[size].append({"from_launch_s": max(r["times"]["first_batch"] - r["times"]["launched"] for r in ranks),
                               "from_stream_s": max(r["times"]["first_batch"] - r["times"]["built"] for r in ranks)})
            for model in grads:
                allreduce.setdefault(model, []).append(max(r["allreduce_s"][model] for r in ranks))
    ttfb = {size: {key: statistics.median(r[key] for r in rs) for key in rs[0]} | {"runs": rs}
            for size, rs in runs.items()}
    return ttfb, {m: {"parameters": grads[m], "bytes_fp32": 4 * grads[m], "seconds": statistics.median(v)}
                  for m, v in allreduce.items()}


def gradient_sizes() -> dict[str, int]:
    """Trainable parameters of the ANI-1x architecture (both heads) and of PaiNN at its paper
    size (`model=painn_large`): the gradient that DDP all-reduces each step."""
    from foundation.models import ANIConfig, PaiNNConfig

    configs = {"ani_1x": ANIConfig(heads=["wb97x_631gs", "ccsdt_ccpvdz"]),
               "painn_large": PaiNNConfig(hidden=128, num_interactions=5)}
    return {name: sum(p.numel() for p in c.build().parameters() if p.requires_grad) for name, c in configs.items()}


def coverage(out: Path, n: int) -> dict:
    total = np.zeros(n, np.int64)
    for path in sorted(out.glob("*-rank*.npy")):
        total += np.load(path)
    return {"conformations": n, "seen_once": int((total == 1).sum()), "missing": int((total == 0).sum()),
            "seen_twice_or_more": int((total > 1).sum()), "exactly_once": bool((total == 1).all())}


def timeline(jobs: list[list[dict]]) -> dict:
    """Memory samples of every rank and job, in seconds since the first job's launch (kept in
    the figure JSON, so the plot can be redrawn and the check recomputed from it)."""
    t0 = min(r["times"]["launched"] for r in jobs[0])
    out = {"columns": ["s", "epoch0_conformations", "pss_mib"], "ranks": {},
           "restart_s": min(r["times"]["launched"] for r in jobs[1]) - t0, "streaming_s": {}}
    for job in jobs:
        mode = job[0]["mode"]
        out["streaming_s"][mode] = [[r["times"]["first_batch"] - t0, r["times"]["last_batch"] - t0] for r in job]
        for r, rank in enumerate(job):
            before = jobs[0][r]["samples"] if mode == "tail" else 0  # the tail counts from its restart
            out["ranks"].setdefault(str(r), {})[mode] = [
                [round(p[0] - t0, 2), int(p[1]) + before, round(p[3] / 2**20, 2)] for p in rank["memory"]["points"]]
    return out


def memory(line: dict) -> dict:
    """Per rank: PSS of the rank and its workers while streaming, after each job's warm-up (the
    first tenth of its time from first to last batch), and how flat it is. A restored job's
    replay before its first batch is start-up, reported apart."""
    per_rank = {}
    for r, jobs in line["ranks"].items():
        values, restoring = [], []
        for mode, points in jobs.items():
            first, last = line["streaming_s"][mode][int(r)]
            warm = first + WARMUP * (last - first)
            values += [p[2] for p in points if p[0] >= warm]
            restoring += [p[2] for p in points if p[0] < first]
        lo, hi = min(values), max(values)
        per_rank[r] = {"pss_min_mib": lo, "pss_max_mib": hi, "max_over_min": hi / lo, "samples": len(values),
                       "before_first_batch_mib": [min(restoring), max(restoring)] if restoring else None}
    worst = max(v["max_over_min"] for v in per_rank.values())
    return {"after_warmup": per_rank, "worst_max_over_min": worst, "within_10pct": worst <= 1.10,
            "measure": "PSS of each rank's process plus its DataLoader workers (/proc/PID/smaps_rollup)",
            "warmup": f"each job's start-up (to its first batch; for the restored job, the replay to the saved "
                      f"position) and the first {WARMUP:.0%} of its streaming time"}


def throughput(jobs: list[list[dict]]) -> dict:
    """Per rank over the epoch's two jobs: conformations/s, shards/s, CPU per conformation."""
    per_rank = {}
    for r in range(NPROC):
        parts = [job[r] for job in jobs]
        samples = sum(p["samples"] for p in parts)
        wall = sum(p["times"]["last_batch"] - p["times"]["built"] for p in parts)
        cpu = sum(p["cpu_s"]["main"] + p["cpu_s"]["workers"] for p in parts)
        share = parts[0]["epoch_share"]
        per_rank[str(r)] = {"conformations": samples, "stream_s": wall, "conformations_per_s": samples / wall,
                            "shards_per_s": share["shards"] * samples / share["samples"] / wall,
                            "atoms_per_s": sum(p["atoms"] for p in parts) / wall,
                            "cpu_s": cpu, "cpu_us_per_conformation": 1e6 * cpu / samples}
    return per_rank


def buffer_bytes_per_record(shards: Path, count: int = 2000) -> float:
    """Python heap held per record waiting in a shuffle buffer (decoded msgpack dict and its
    name), measured with tracemalloc over `count` records of the first shard."""
    manifest = load_manifest(shards)
    records = iter_shard_records(manifest.url(manifest.shards()[0]["name"]))
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    held = [r for _, r in zip(range(count), records)]
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return used / len(held)


def ddp_step() -> dict | None:
    """The DDP training step of the ANI-1x architecture on this machine (benchmarks/scaling.py's
    measurement, if it has been run): atoms/s per rank and seconds per step."""
    path = RESULTS / "scaling_2proc.json"
    if not path.exists():
        return None
    scaling = json.loads(path.read_text())
    per_rank = scaling["ours"] / NPROC
    atoms = scaling["inputs"]["max_atoms_per_batch_per_process"]
    return {"atoms_per_s_per_rank": per_rank, "max_atoms_per_batch": atoms, "step_s": atoms / per_rank,
            "efficiency_2proc": scaling["ratio"], "source": "benchmarks/results/scaling_2proc.json"}


def jobs_detail(jobs: list[list[dict]]) -> dict:
    keys = ("samples", "batches", "atoms", "cpu_s")
    return {job[0]["mode"]: [{k: r[k] for k in keys} | {
        "first_batch_s": r["times"]["first_batch"] - r["times"]["built"],
        "stream_s": r["times"]["last_batch"] - r["times"]["built"],
        "launch_to_stream_s": r["times"]["built"] - r["times"]["launched"]} for r in job] for job in jobs}


def rehearse(work: Path, n: int, out_dir: Path = RESULTS, name: str = "scale_stream_5m",
             settings: Settings = Settings(), shard_bytes: int = 64 * 2**20, ttfb_repeats: int = 3,
             keep: bool = False, cold: bool = True) -> dict:
    """Run the rehearsal in `work` (deleted afterwards, even after a failure, unless `keep`);
    writes `out_dir/<name>.json` and `.png`; returns the figure."""
    try:
        return _rehearse(work, n, out_dir, name, settings, shard_bytes, ttfb_repeats, cold)
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


def _rehearse(work: Path, n: int, out_dir: Path, name: str, settings: Settings, shard_bytes: int,
              ttfb_repeats: int, cold: bool) -> dict:
    start, load = time.time(), [os.getloadavg()[0]]
    shards, out = work / "shards", work / "out"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    t = time.time()
    infos = write_scale_shards(shards, n, seed=settings.seed, shard_bytes=shard_bytes)
    generate_s = time.time() - t
    if cold:
        drop_from_page_cache(shards)
    manifest = load_manifest(shards)
    atoms_per_conf = manifest.counts("train")["n_atoms"] / n
    ttfb, allreduce = (time_to_first_batch(shards, subset(shards, work / "tenth", 0.1), out, settings, ttfb_repeats)
                       if ttfb_repeats else ({}, {}))
    if cold:
        drop_from_page_cache(shards)
    t = time.time()
    jobs = [torchrun("head", shards, out, settings), torchrun("tail", shards, out, settings)]
    epoch_s = time.time() - t
    load.append(os.getloadavg()[0])
    rates = throughput(jobs)
    per_rank = statistics.median(r["conformations_per_s"] for r in rates.values())
    step = ddp_step()
    peer = step["atoms_per_s_per_rank"] / atoms_per_conf if step else None
    line = timeline(jobs)
    checks = {"coverage": coverage(out, n), "memory": memory(line),
              "resume": {"restored_equal": all(r["resumed_equal"] for r in jobs[1]),
                         "compared_batches_per_rank": [r["resumed_compared_batches"] for r in jobs[1]],
                         "position_matches_count": all(r["position_matches_count"] for r in jobs[0]),
                         "restore_to_first_batch_s": max(r["times"]["first_batch"] - r["times"]["built"]
                                                         for r in jobs[1])}}
    if ttfb:
        checks["time_to_first_batch"] = {**ttfb, "full_over_tenth": ttfb["full"]["from_stream_s"]
                                         / ttfb["tenth"]["from_stream_s"]}
    wall_s = time.time() - start
    checks["wall_minutes"] = wall_s / 60
    figure = {
        "name": name, "unit": "conformations/s per rank", "ours": per_rank, "peer": peer,
        "ratio": per_rank / peer if peer else None, "goal": 1.0,
        "machine": machine(), "threads": 1, "versions": versions(("foundation-mlip", "torch", "numpy", "webdataset",
                                                                   "msgpack")),
        "inputs": {"conformations": n, "shards": len(infos), "shard_bytes_max": shard_bytes,
                   "bytes": sum(s.bytes for s in infos), "atoms_per_conformation": atoms_per_conf,
                   "ranks": NPROC, **dataclasses.asdict(settings), "page_cache": "dropped" if cold else "warm",
                   "ours": "one epoch (two jobs, restart at half) of ShardStream per torchrun rank, no model step",
                   "peer": "conformations/s per rank that the DDP training step of the ANI-1x architecture "
                           "consumes on this machine (scaling_2proc.json: atoms/s ÷ ranks ÷ atoms per conformation)",
                   "load_average_1min": [round(x, 2) for x in load]},
        "repeats": 1, "spread": {"ours": [min(r["conformations_per_s"] for r in rates.values()),
                                          max(r["conformations_per_s"] for r in rates.values())]},
        "checks": checks,
        "measured": {"per_rank": rates, "jobs": jobs_detail(jobs), "generate_s": generate_s, "epoch_s": epoch_s,
                     "buffer_bytes_per_record": buffer_bytes_per_record(shards),
                     "allreduce_gloo_2proc": allreduce, "ddp_step_cpu": step, "memory_timeline": line},
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out_dir / f"{name}.json", json.dumps(figure, indent=1) + "\n")
    plot(figure, out_dir / f"{name}.png")
    return figure


def plot(figure: dict, path: Path) -> None:
    """Memory of each rank (its process + workers, PSS) over the epoch, restart marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    line = figure["measured"]["memory_timeline"]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6), sharex=True, height_ratios=[2, 1])
    for r, jobs in line["ranks"].items():
        for k, points in enumerate(jobs.values()):
            if points:
                p = np.array(points, float)
                top.plot(p[:, 0], p[:, 2], color=f"C{r}", label=None if k else f"rank {r}")
                bottom.plot(p[:, 0], p[:, 1] / 1e6, color=f"C{r}")
    peak = max(p[2] for jobs in line["ranks"].values() for points in jobs.values() for p in points)
    top.set_ylim(0, 1.3 * peak)
    for ax in (top, bottom):
        ax.axvline(line["restart_s"], color="grey", ls="--", lw=1)
    top.text(line["restart_s"], 1.25 * peak, " new job: restore saved position", va="top", fontsize=8, color="grey")
    worst = figure["checks"]["memory"]["worst_max_over_min"]
    top.set_ylabel("PSS, rank + workers (MiB)")
    top.set_title(f"{figure['inputs']['conformations']:,} conformations, {NPROC} ranks × "
                  f"{figure['inputs']['num_workers']} workers: max/min after warm-up {worst:.3f}", fontsize=10)
    top.legend(loc="lower right")
    bottom.set_ylabel("epoch-0 conformations\nper rank (M)")
    bottom.set_xlabel("seconds since the first job's launch")
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


@entry_point
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=sized(5_000_000, 600), help="conformations")
    parser.add_argument("--work", type=Path, help="scratch (shards)",
                        default=sized(Path("/tmp/scale_rehearsal"), RESULTS / "scale_rehearsal_work"))
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--name", default="scale_stream_5m")
    parser.add_argument("--shard-mib", type=float, default=sized(64, 1 / 16))
    parser.add_argument("--num-workers", type=int, default=sized(Settings.num_workers, 1))
    parser.add_argument("--max-atoms", type=int, default=sized(Settings.max_atoms, 256))
    parser.add_argument("--ttfb-repeats", type=int, default=sized(3, 1))
    parser.add_argument("--keep", action="store_true", help="keep the shards")
    parser.add_argument("--replot", action="store_true", help="only redraw the PNG from the JSON")
    args = parser.parse_args()
    if args.replot:
        plot(json.loads((args.out / f"{args.name}.json").read_text()), args.out / f"{args.name}.png")
        return
    settings = Settings(num_workers=args.num_workers, max_atoms=args.max_atoms,
                        **sized({}, {"shuffle_buffer": 50, "check": 4, "every": 0.2}))
    fig = rehearse(args.work, args.n, args.out, args.name, settings, int(args.shard_mib * 2**20),
                   args.ttfb_repeats, args.keep)
    c = fig["checks"]
    peer = fig["peer"] or float("nan")
    print(f"{fig['name']}: {fig['ours']:.0f} conformations/s per rank (step consumes {peer:.0f}), "
          f"coverage exactly once {c['coverage']['exactly_once']}, resume {c['resume']['restored_equal']}, "
          f"memory max/min {c['memory']['worst_max_over_min']:.3f}, "
          f"first batch full/tenth {c.get('time_to_first_batch', {}).get('full_over_tenth', float('nan')):.2f}, "
          f"{c['wall_minutes']:.1f} min")


if __name__ == "__main__":
    main()
