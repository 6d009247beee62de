"""What a calculation costs: CPU seconds per level of theory and molecule size, from a prior
measured here and calibrated on the run's own first calculations.

Labelling is priced by CPU time, not by structure count: a CCSD(T)/cc-pVDZ energy costs a
fraction of a second for water and minutes for 6 heavy atoms (its cost grows like the 6th-7th
power of the basis size), MP2 energy + forces tens of seconds, ωB97X a few. The size is the
number of cc-pVDZ basis functions (H 5, C N O F 14, second row 18): one number that orders every
level's cost. Each level's cost is `scale × (nbf / 72) ** exponent` CPU seconds (72: ethanol).

The prior is what one thread of this project's development machine took (Intel Xeon, shared
with another PySCF job; water, methanol, ethanol; CPU time, `time.process_time`); it predicted
propan-1-ol (nbf 96) at 37.4 s for CCSD(T) and 11.3 s for MP2 + forces, measured 37.0 and 12.4. A run
recalibrates from its own records (`cpu_seconds` of each finished calculation): with sizes
spread by 25 % or more the exponent is fitted too (log-log least squares, kept within 1-8),
otherwise only the scale, at the prior's exponent.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence

import numpy as np

REFERENCE_NBF = 72  # ethanol, cc-pVDZ
# level: (CPU seconds at REFERENCE_NBF, exponent), measured on ethanol/methanol/water (module doc)
PRIOR = {"ccsdt_ccpvdz": (6.65, 6.0), "mp2_ccpvdz": (3.58, 4.0), "wb97x_631gs": (4.15, 2.0),
         # RI-MP2 energies: fitted to the MP2 set's first 1,376 calculations (nbf 61-163, CPU seconds)
         "mp2_ccpvdz_ri": (0.27, 3.3)}
UNKNOWN_LEVEL = (5.0, 4.0)  # a level of a plugin: a guess until the run's own calculations correct it
EXPONENT_RANGE = (1.0, 8.0)
SPREAD_TO_FIT_EXPONENT = 1.25
_NBF = {1: 5, 2: 5}


def basis_functions(numbers: Iterable[int]) -> int:
    """cc-pVDZ basis functions (spherical): 5 for H/He, 14 for Li-Ne, 18 for Na-Ar."""
    return sum(_NBF.get(int(z), 14 if int(z) <= 10 else 18) for z in numbers)


@dataclasses.dataclass(frozen=True)
class LevelCost:
    scale: float  # CPU seconds at REFERENCE_NBF
    exponent: float
    calibrated_on: int = 0  # the run's calculations it was fitted to (0: the prior)

    def seconds(self, nbf: int) -> float:
        return self.scale * (nbf / REFERENCE_NBF) ** self.exponent


@dataclasses.dataclass
class CostModel:
    levels: dict[str, LevelCost]

    @classmethod
    def prior(cls, levels: Sequence[str]) -> "CostModel":
        return cls({fid: LevelCost(*PRIOR.get(fid, UNKNOWN_LEVEL)) for fid in levels})

    def calibrated(self, measured: Iterable[tuple[str, int, float]]) -> "CostModel":
        """This model refit to (level, nbf, CPU seconds) of finished calculations."""
        points: dict[str, list[tuple[int, float]]] = {}
        for fid, nbf, seconds in measured:
            if seconds > 0:
                points.setdefault(fid, []).append((nbf, seconds))
        levels = dict(self.levels)
        for fid, found in points.items():
            prior = self.levels.get(fid, LevelCost(*PRIOR.get(fid, UNKNOWN_LEVEL)))
            levels[fid] = _fit(found, prior.exponent)
        return CostModel(levels)

    def seconds(self, fid: str, nbf: int) -> float:
        return self.levels.get(fid, LevelCost(*UNKNOWN_LEVEL)).seconds(nbf)

    def describe(self, sizes: dict[str, int]) -> list[str]:
        """One line per level: its cost at each molecule's size and where the numbers come from."""
        lines = []
        for fid, cost in self.levels.items():
            each = ", ".join(f"{name} {_seconds(cost.seconds(nbf))}" for name, nbf in sizes.items())
            source = (f"calibrated on {cost.calibrated_on} of this run's calculations" if cost.calibrated_on
                      else "prior, not yet calibrated")
            lines.append(f"{fid}: {each} (∝ nbf^{cost.exponent:.1f}, {source})")
        return lines

    def as_dict(self) -> dict:
        return {fid: dataclasses.asdict(c) for fid, c in self.levels.items()}


def _fit(points: list[tuple[int, float]], exponent: float) -> LevelCost:
    x = np.log(np.array([p[0] for p in points], float) / REFERENCE_NBF)
    y = np.log(np.array([p[1] for p in points], float))
    if max(p[0] for p in points) >= SPREAD_TO_FIT_EXPONENT * min(p[0] for p in points):
        slope, intercept = np.polyfit(x, y, 1)
        exponent = float(np.clip(slope, *EXPONENT_RANGE))
    scale = math.exp(float(np.mean(y - exponent * x)))
    return LevelCost(scale, exponent, len(points))


def _seconds(value: float) -> str:
    return f"{value:.2g} s" if value < 60 else f"{value / 60:.2g} min"
