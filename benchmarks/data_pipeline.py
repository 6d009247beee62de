"""Data pipeline benchmarks (not run in tests; `python -m benchmarks.data_pipeline`, ~1 minute).

1. `streaming_vs_hdf5.json`: training samples/s, one thread, same machine, same conformations:
   ours  = `ShardStream` over shards made by `foundation data convert` (shard shuffle, shuffle
           buffer, batching by atom count, collate);
   peer  = the same conformations read from the ANI-layout HDF5 file with h5py sample by sample in
           a shuffled order, as a map-style training loader does, then the same batching.
2. `streaming_rss_flat.json`: peak RSS of a process streaming 10× more synthetic shards than
   another (ratio = rss_small / rss_large: 1.0 means memory does not grow with the data).
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks import common  # noqa: E402
from foundation.errors import entry_point  # noqa: E402
from foundation.data.batching import batches_by_atoms  # noqa: E402
from foundation.data import Sample, ShardStream, write_manifest, write_shards  # noqa: E402
from foundation.pipelines.convert.ani_h5 import convert_ani_h5  # noqa: E402
from foundation.pipelines.synthetic import synthetic_samples  # noqa: E402
from foundation.units import HARTREE_TO_EV  # noqa: E402

N_GROUPS, CONFORMERS = common.sized((120, 100), (6, 10))  # 12,000 conformations of 8-20 atoms
MAX_ATOMS, REPEATS = 512, common.sized(3, 1)
KEY_MAP = {"wb97x_dz.energy": "wb97x_631gs", "wb97x_dz.forces": "wb97x_631gs", "ccsd(t)_cbs.energy": "ccsdt_ccpvdz"}
FIDELITIES = ["ccsdt_ccpvdz", "wb97x_631gs"]
RSS_SMALL, RSS_FACTOR = common.sized(3_000, 200), 10
VERSIONED = ("foundation-mlip", "torch", "numpy", "h5py", "webdataset", "msgpack")


def make_ani_h5(path: Path, seed: int = 0) -> int:
    """Synthetic chains in the released ANI layout (Hartree labels, CC on 10% of conformers)."""
    rng = np.random.default_rng(seed)
    with h5py.File(path, "w") as f:
        for g in range(N_GROUPS):
            n = int(rng.integers(8, 21))
            group = f.create_group(f"G{g:04d}")
            group["atomic_numbers"] = rng.choice([1, 6, 7, 8], n).astype(np.uint8)
            base = np.arange(n)[:, None] * np.array([1.2, 0.0, 0.0])
            group["coordinates"] = (base + rng.normal(0, 0.05, (CONFORMERS, n, 3))).astype(np.float32)
            group["wb97x_dz.energy"] = -40.0 * n + rng.normal(0, 0.01, CONFORMERS)
            group["wb97x_dz.forces"] = rng.normal(0, 0.02, (CONFORMERS, n, 3)).astype(np.float32)
            cc = -40.0 * n + rng.normal(0, 0.01, CONFORMERS)
            cc[rng.random(CONFORMERS) > 0.1] = np.nan
            group["ccsd(t)_cbs.energy"] = cc
    return N_GROUPS * CONFORMERS


def stream_shards(shard_dir: Path, n: int) -> float:
    """Seconds to stream one epoch (n samples) of training batches from shards."""
    stream = ShardStream(shard_dir, seed=0, max_atoms=MAX_ATOMS, fidelities=FIDELITIES, shuffle_buffer=1000)
    seen, start = 0, time.perf_counter()
    for batch in stream:
        seen += batch.n_structures
        if seen >= n:
            break
    return time.perf_counter() - start


def read_h5_samples(path: Path, seed: int = 0):
    """A map-style loader's reads: one (group, conformer) index at a time, in shuffled order."""
    with h5py.File(path, "r") as f:
        index = [(name, i) for name in sorted(f) for i in range(f[name]["coordinates"].shape[0])]
        for k in np.random.default_rng(seed).permutation(len(index)):
            name, i = index[k]
            g = f[name]
            energies = {KEY_MAP[key]: float(g[key][i]) * HARTREE_TO_EV
                        for key in ("wb97x_dz.energy", "ccsd(t)_cbs.energy")}
            energies = {fid: e for fid, e in energies.items() if np.isfinite(e)}
            yield Sample(numbers=g["atomic_numbers"][()], positions=g["coordinates"][i], energies=energies,
                         forces={"wb97x_631gs": g["wb97x_dz.forces"][i] * HARTREE_TO_EV}, molecule=name)


def stream_h5(path: Path, n: int) -> float:
    seen, start = 0, time.perf_counter()
    for batch in batches_by_atoms(read_h5_samples(path), MAX_ATOMS, FIDELITIES):
        seen += batch.n_structures
    assert seen == n
    return time.perf_counter() - start


def throughput_figure(work: Path) -> dict:
    h5 = work / "ani.h5"
    n = make_ani_h5(h5)
    shard_dir = work / "shards"
    convert_ani_h5(h5, shard_dir, KEY_MAP, fractions={"train": 1.0}, command="benchmarks/data_pipeline.py")
    ours = [n / stream_shards(shard_dir, n) for _ in range(REPEATS)]
    peer = [n / stream_h5(h5, n) for _ in range(REPEATS)]
    return common.figure("streaming_vs_hdf5", "samples/s", ours, peer, goal=3.0, versioned=VERSIONED, inputs={
        "conformations": n, "groups": N_GROUPS, "atoms_per_conformation": "8-20",
        "max_atoms_per_batch": MAX_ATOMS, "shuffle_buffer": 1000, "num_workers": 0,
        "peer": "h5py, one conformation per read in shuffled order, then the same batching",
        "h5_bytes": h5.stat().st_size})


def rss_child(shard_dir: str, n: int) -> None:
    """In a fresh process: stream n samples and print the peak RSS in bytes."""
    seen = 0
    for batch in ShardStream(shard_dir, seed=0, max_atoms=MAX_ATOMS, shuffle_buffer=1000):
        seen += batch.n_structures
        if seen >= n:
            break
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)


def rss_figure(work: Path) -> dict:
    peaks = {}
    for label, n in (("small", RSS_SMALL), ("large", RSS_SMALL * RSS_FACTOR)):
        out = work / f"rss_{label}"
        write_manifest(out, write_shards(synthetic_samples(n, atoms=(8, 20)), out, "train",
                                         max_shard_bytes=2 * 2**20), command="benchmarks/data_pipeline.py")
        peaks[label] = []
        for _ in range(REPEATS):
            child = subprocess.run([sys.executable, "-c", "import sys; from benchmarks.data_pipeline import "
                                    f"rss_child; rss_child({str(out)!r}, {n})"], capture_output=True,
                                   text=True, check=True, cwd=Path(__file__).parents[1])
            peaks[label].append(int(child.stdout.split()[-1]) / 2**20)
    # ours = the large run, peer = the small one; ratio = small / large (1.0 = flat)
    return common.figure("streaming_rss_flat", "MiB peak RSS", peaks["large"], peaks["small"], goal=0.9,
                         ratio=statistics.median(peaks["small"]) / statistics.median(peaks["large"]),
                         versioned=VERSIONED,
                         inputs={"samples_small": RSS_SMALL, "samples_large": RSS_SMALL * RSS_FACTOR,
                                 "shard_bytes": 2 * 2**20, "shuffle_buffer": 1000, "atoms_per_sample": "8-20",
                                 "ours": "streaming the large set", "peer": "streaming the small set"})


def run() -> list[dict]:
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as work:
        return [make(Path(work)) for make in (throughput_figure, rss_figure)]


@entry_point
def main() -> None:
    common.run_and_report(run)


if __name__ == "__main__":
    main()
