"""Choose molecules that cover every family at least `min_per_family` times, cheaply.

Greedy set cover weighted by cost: while a family is short, take the molecule that fills the most
missing family slots per unit of CCSD(T) cost; then, up to `n` molecules, take the one that adds
most to the thinnest families per unit cost. The cost model is the scaling CCSD(T)/cc-pVDZ showed
on the embedded set (wall time ~ N_basis^5, with 14 basis functions per C/N/O and 5 per H), so the
set prefers small molecules that still carry the chemistry. Deterministic: ties go to the SMILES.
"""

from __future__ import annotations

import collections
import dataclasses

from .families import FAMILIES, families_of

BASIS_PER_HEAVY, BASIS_PER_H = 14, 5


@dataclasses.dataclass(frozen=True)
class Candidate:
    smiles: str
    families: tuple[str, ...]
    heavy: int
    hydrogens: int

    @property
    def cost(self) -> float:
        """Relative CCSD(T)/cc-pVDZ cost (butane = 1)."""
        return ((BASIS_PER_HEAVY * self.heavy + BASIS_PER_H * self.hydrogens) / 106.0) ** 5


def candidate(smiles: str) -> Candidate:
    from rdkit import Chem

    mol = Chem.MolFromSmiles(smiles)
    hydrogens = sum(a.GetTotalNumHs() for a in mol.GetAtoms())
    return Candidate(smiles, tuple(families_of(mol)), mol.GetNumHeavyAtoms(), hydrogens)


def choose(candidates: list[Candidate], n: int, min_per_family: int = 2) -> list[Candidate]:
    """`n` candidates (fewer only if the pool runs out) covering every family that any candidate
    has at least `min_per_family` times, in the order they were chosen."""
    count: collections.Counter = collections.Counter()
    chosen: list[Candidate] = []
    pool = sorted((c for c in candidates if c.families), key=lambda c: c.smiles)
    coverable = {f for c in pool for f in c.families}

    def missing(c: Candidate) -> int:
        return sum(count[f] < min_per_family for f in c.families)

    def thinness(c: Candidate) -> float:
        return sum(1.0 / (1 + count[f]) for f in c.families)

    while pool and len(chosen) < n:
        short = any(count[f] < min_per_family for f in coverable)
        score = (lambda c: missing(c) / c.cost) if short else (lambda c: thinness(c) / c.cost)
        best = max(pool, key=score)  # max keeps the first of equals: SMILES order
        if short and missing(best) == 0:
            break  # nothing left can fill a short family
        pool.remove(best)
        chosen.append(best)
        count.update(best.families)
    return chosen


def coverage(chosen: list[Candidate]) -> dict[str, int]:
    """Molecules per family, every family of FAMILIES listed (0 where none)."""
    count = collections.Counter(f for c in chosen for f in c.families)
    return {f: count[f] for f in FAMILIES}
