"""Train/validation/test splits.

`split_by_molecule` is the default (DESIGN.md, Contracts): every conformer of a molecule goes to
the same split, so a test score measures new molecules, not new geometries of trained ones.
`split_by_conformer` is for data that are conformers of one or a few molecules, where a split by
molecule cannot be made. Both are deterministic in `seed` and preserve input order within a split.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from foundation.data.molecules import molecule_key
from foundation.data.sample import Sample
from foundation.errors import DataError


def split_by_molecule(samples: Sequence[Sample], fractions: Mapping[str, float],
                      seed: int = 0) -> dict[str, list[Sample]]:
    """Assign whole molecules (`Sample.molecule`, computed from the structure when empty) to
    splits so that each split's structure count is close to `fractions[name] × len(samples)`.
    Every split with a positive fraction gets at least one molecule; raises `DataError` when
    there are fewer molecules than such splits."""
    targets = _targets(fractions, len(samples))
    groups: dict[str, list[int]] = {}
    for i, s in enumerate(samples):
        groups.setdefault(s.molecule or molecule_key(s.numbers, s.positions), []).append(i)
    wanted = [name for name in targets if targets[name] > 0]
    if len(groups) < len(wanted):
        raise DataError(f"{len(groups)} distinct molecule(s) cannot fill {len(wanted)} splits "
                        f"({', '.join(wanted)}) by molecule; add molecules, drop a split, or split "
                        "by conformer")
    keys = sorted(groups)  # sorted first: the order must not depend on the input order
    order = [keys[i] for i in np.random.default_rng(seed).permutation(len(keys))]
    counts = dict.fromkeys(targets, 0)
    chosen: dict[str, list[str]] = {name: [] for name in targets}
    # Seed the smallest splits first, so a small test split does not take the largest molecule
    # merely because it came first.
    for name in sorted(wanted, key=lambda n: (targets[n], n)):
        key = order.pop(0)
        chosen[name].append(key)
        counts[name] += len(groups[key])
    for key in order:  # then greedily to the split furthest below its target
        name = max(wanted, key=lambda n: (targets[n] - counts[n], -wanted.index(n)))
        chosen[name].append(key)
        counts[name] += len(groups[key])
    return {name: [samples[i] for i in sorted(i for key in molecules for i in groups[key])]
            for name, molecules in chosen.items()}


def split_by_conformer(samples: Sequence[Sample], fractions: Mapping[str, float],
                       seed: int = 0) -> dict[str, list[Sample]]:
    """Assign structures independently (conformers of one molecule may land in several splits);
    every split with a positive fraction gets at least one structure."""
    targets = _targets(fractions, len(samples))
    wanted = [name for name in targets if targets[name] > 0]
    if len(samples) < len(wanted):
        raise DataError(f"{len(samples)} structure(s) cannot fill {len(wanted)} splits ({', '.join(wanted)})")
    sizes = {name: max(1, round(targets[name])) if name in wanted else 0 for name in targets}
    # Rounding may over- or under-shoot; the largest split absorbs the difference.
    largest = max(wanted, key=lambda n: targets[n])
    sizes[largest] += len(samples) - sum(sizes.values())
    if sizes[largest] < 1:
        raise DataError(f"{len(samples)} structure(s) cannot fill {len(wanted)} splits ({', '.join(wanted)})")
    order = np.random.default_rng(seed).permutation(len(samples))
    out, start = {}, 0
    for name in targets:
        out[name] = [samples[i] for i in sorted(order[start:start + sizes[name]])]
        start += sizes[name]
    return out


def _targets(fractions: Mapping[str, float], n: int) -> dict[str, float]:
    """Structure counts per split; fractions must be ≥ 0 and sum to 1."""
    if not fractions:
        raise ValueError("fractions must name at least one split")
    bad = {k: v for k, v in fractions.items() if not (v >= 0 and math.isfinite(v))}
    if bad or not math.isclose(sum(fractions.values()), 1.0, abs_tol=1e-6):
        raise DataError(f"split fractions must be ≥ 0 and sum to 1, got {dict(fractions)}")
    if n == 0:
        raise DataError("no structures to split")
    return {name: f * n for name, f in fractions.items()}
