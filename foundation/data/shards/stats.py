"""Per-fidelity label statistics of a shard set, in one streaming pass (`foundation data inspect`).

Sums give exact means and spreads whatever the size; the histograms are drawn from a seeded
reservoir sample of at most `RESERVOIR` values per quantity, so memory stays flat.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Sequence

import numpy as np

from foundation.data.shards.manifest import Manifest
from foundation.data.shards.reader import iter_samples

RESERVOIR = 100_000


@dataclasses.dataclass
class Running:
    """Count, mean, spread and range of a stream of numbers, plus a reservoir sample of them."""

    n: int = 0
    total: float = 0.0
    total_sq: float = 0.0
    lo: float = math.inf
    hi: float = -math.inf
    sample: list = dataclasses.field(default_factory=list)

    def add(self, values: np.ndarray, rng: np.random.Generator) -> None:
        values = np.asarray(values, np.float64).reshape(-1)
        if not values.size:
            return
        self.total += float(values.sum())
        self.total_sq += float((values**2).sum())
        self.lo, self.hi = min(self.lo, float(values.min())), max(self.hi, float(values.max()))
        room = max(RESERVOIR - len(self.sample), 0)
        self.sample.extend(values[:room].tolist())
        rest = values[room:]
        if rest.size:  # reservoir sampling (Algorithm R), vectorised over this call's values
            seen = self.n + room + np.arange(1, rest.size + 1)
            slots = (rng.random(rest.size) * seen).astype(np.int64)
            for slot, v in zip(slots[slots < RESERVOIR].tolist(), rest[slots < RESERVOIR].tolist()):
                self.sample[slot] = v
        self.n += values.size

    def summary(self) -> dict:
        if not self.n:
            return {"n": 0}
        mean = self.total / self.n
        std = math.sqrt(max(self.total_sq / self.n - mean**2, 0.0))
        return {"n": self.n, "mean": mean, "std": std, "min": self.lo, "max": self.hi}


def label_statistics(manifest: Manifest, splits: Sequence[str] | None = None,
                     on_error: str = "raise") -> dict[str, dict[str, Running]]:
    """{fidelity: {"energy": eV per structure, "energy_per_atom": eV, "force": |F| per atom eV/Å,
    "force_component": eV/Å}} over the given splits (all by default)."""
    rng = np.random.default_rng(0)
    stats: dict[str, dict[str, Running]] = {}
    for split in splits or manifest.splits:
        for sample in iter_samples(manifest, split, on_error):
            for fid, energy in sample.energies.items():
                mine = _for(stats, fid)
                mine["energy"].add(np.array([energy]), rng)
                mine["energy_per_atom"].add(np.array([energy / sample.n_atoms]), rng)
            for fid, forces in sample.forces.items():
                mine = _for(stats, fid)
                mine["force"].add(np.linalg.norm(forces, axis=1), rng)
                mine["force_component"].add(forces, rng)
    return stats


def plot_histograms(stats: dict[str, dict[str, Running]], out_png: str | os.PathLike) -> None:
    """Energy per atom and force magnitude histograms, one row per fidelity, written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fids = sorted(stats) or ["(no labels)"]
    fig, axes = plt.subplots(len(fids), 2, figsize=(9, 2.8 * len(fids)), squeeze=False)
    for row, fid in zip(axes, fids):
        panels = (("energy_per_atom", "energy per atom (eV)"), ("force", "|F| per atom (eV/Å)"))
        for ax, (key, label) in zip(row, panels):
            values = stats.get(fid, {}).get(key)
            if values is not None and values.sample:
                ax.hist(values.sample, bins=60, color="tab:blue")
            ax.set_xlabel(label)
            ax.set_title(f"{fid}  (n={values.n if values else 0})", fontsize=9)
            ax.set_ylabel("count")
    fig.tight_layout()
    out = os.fspath(out_png)
    tmp = os.path.join(os.path.dirname(out) or ".", f".{os.path.basename(out)}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, out)


def _for(stats: dict, fid: str) -> dict[str, Running]:
    if fid not in stats:
        stats[fid] = {k: Running() for k in ("energy", "energy_per_atom", "force", "force_component")}
    return stats[fid]
