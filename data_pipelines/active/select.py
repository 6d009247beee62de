"""Which candidates to label: the greedy query-by-committee pick, or a random one to compare with.

`strategy="spread"` picks, one at a time, the candidate with the highest

    value = (1 - diversity) * spread / max(spread) + diversity * distance / max(distance)

where `distance` is the candidate's descriptor distance to the nearest structure already chosen
or already labelled (`reference`). With `diversity=0` it is the top-n by spread; with some
diversity, a batch is not spent on n near-copies of the one structure the ensemble is unsure of
(the batch-mode problem of query by committee); `diversity=1` is farthest-point sampling.
`strategy="random"` draws n uniformly, without replacement. Both are deterministic for a seed:
ties are broken by a seeded permutation, never by dict or set order.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from foundation.errors import UserError

STRATEGIES = ("spread", "random")


@dataclasses.dataclass
class SelectConfig:
    """`n` picks by `strategy`; `diversity` in [0, 1] (spread only); `force_weight` (eV/atom per
    eV/Å) adds the force spread to the energy spread per atom; `seed` fixes ties and draws."""

    n: int
    strategy: str = "spread"
    diversity: float = 0.0
    force_weight: float = 0.0
    seed: int = 0

    def __post_init__(self):
        if int(self.n) < 1:
            raise UserError(f"select: n must be at least 1, got {self.n}")
        if self.strategy not in STRATEGIES:
            raise UserError(f"select: strategy {self.strategy!r} is not one of {', '.join(STRATEGIES)}")
        if not 0.0 <= float(self.diversity) <= 1.0:
            raise UserError(f"select: diversity must be in [0, 1], got {self.diversity}")
        if float(self.force_weight) < 0:
            raise UserError(f"select: force_weight must be >= 0, got {self.force_weight}")
        self.n, self.diversity, self.force_weight = int(self.n), float(self.diversity), float(self.force_weight)

    @property
    def needs_model(self) -> bool:
        return self.strategy == "spread"

    @property
    def needs_features(self) -> bool:
        return self.strategy == "spread" and self.diversity > 0


@dataclasses.dataclass
class Selection:
    """`indices` into the pool in pick order; `values` the value each had when picked (NaN for
    random picks)."""

    indices: list[int]
    values: list[float]


def select(config: SelectConfig, n_pool: int, spread: np.ndarray | None = None,
           features: np.ndarray | None = None, reference: np.ndarray | None = None) -> Selection:
    """Pick `min(config.n, n_pool)` of `n_pool` candidates. `spread` (B,) is the ranking score
    (`Scores.combined`); `features` (B, F) and `reference` (R, F) descriptors when
    `config.diversity > 0`."""
    if n_pool < 1:
        raise UserError("select: the candidate pool is empty")
    n = min(config.n, n_pool)
    rng = np.random.default_rng(config.seed)
    if config.strategy == "random":
        return Selection(rng.choice(n_pool, size=n, replace=False).tolist(), [float("nan")] * n)
    if spread is None or len(spread) != n_pool:
        raise UserError("select: strategy 'spread' needs one spread per candidate (an ensemble model)")
    if config.diversity > 0 and (features is None or len(features) != n_pool):
        raise UserError("select: diversity > 0 needs one descriptor per candidate")
    return _greedy(np.asarray(spread, np.float64), n, config.diversity, features, reference, rng.permutation(n_pool))


def _greedy(spread: np.ndarray, n: int, diversity: float, features, reference, order: np.ndarray) -> Selection:
    top = spread.max()
    u = spread / top if top > 0 else np.zeros_like(spread)
    nearest = np.full(len(spread), np.inf)
    if diversity > 0 and reference is not None and len(reference):
        nearest = _min_distance(features, np.asarray(reference, np.float64))
    free = np.ones(len(spread), bool)
    picks, values = [], []
    for _ in range(n):
        value = (1 - diversity) * u
        if diversity > 0:
            finite = np.isfinite(nearest) & free
            scale = nearest[finite].max() if finite.any() else 0.0
            # Before anything is chosen or labelled every distance is infinite: spread decides.
            value = value + diversity * (np.where(np.isfinite(nearest), nearest, scale) / scale if scale > 0 else 0.0)
        value = np.where(free, value, -np.inf)
        pick = int(order[np.argmax(value[order])])  # the first maximum in the seeded order
        picks.append(pick)
        values.append(float(value[pick]))
        free[pick] = False
        if diversity > 0:
            nearest = np.minimum(nearest, _min_distance(features, features[pick:pick + 1]))
    return Selection(picks, values)


def _min_distance(features: np.ndarray, others: np.ndarray, chunk: int = 512) -> np.ndarray:
    """(B,) Euclidean distance of each row of `features` to its nearest row of `others`."""
    out = np.empty(len(features))
    sq_others = (others**2).sum(1)
    for start in range(0, len(features), chunk):
        block = features[start:start + chunk]
        d2 = (block**2).sum(1)[:, None] + sq_others[None, :] - 2 * block @ others.T
        out[start:start + chunk] = np.sqrt(np.clip(d2, 0, None)).min(1)
    return out
