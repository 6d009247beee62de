"""The bond graph that names a molecule (`foundation.data.molecules`), made to survive what
conformer sampling does to a molecule: normal-mode sampling at ~1000 K and bonds stretched by
0.3 Å. A plain cutoff cannot: at 1.2 × the sum of covalent radii it loses stretched bonds (an
X–H bond stretched 0.3 Å sits at 1.3-1.8 ×), and any cutoff above ~1.28 × gains compressed 1,3
contacts. So the cutoff is generous and two rules break the ties. In units of
r = distance / (sum of the two covalent radii, ASE's table):

- a hydrogen is bonded to its nearest atom when r < `H_REACH`: its partner stays the nearest
  even when the bond is stretched, and it has only one;
- two heavier atoms are bonded when r < `TIGHT`, or when r < `REACH` and they have no bonded
  neighbour in common (pairs taken by increasing r): what comes that close without sharing a
  neighbour is a stretched bond, while a 1,3 contact closes a triangle with two shorter bonds.

The thresholds come from MMFF normal-mode samples (1000 K, up to 100 kcal/mol above the minimum,
half of them with one bond stretched by a further 0.3 Å) of 28 small molecules with rings of 3
to 6 atoms: stretched heavy-atom bonds reached r = 1.44, compressed 1,3 contacts came down to
1.28, no 1,4 contact came below 1.6, and every hydrogen's nearest atom was its partner (r up to
1.8). What stays ambiguous, a 3-membered ring bond stretched past `TIGHT`, is the pairs listed in
`BondGraph.ambiguous`, for `molecule_keys` to settle against the other conformers of a file.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from ase.data import covalent_radii
from scipy.spatial import cKDTree

TIGHT = 1.25  # below: bonded whatever else (the bonds of a 3-membered ring share neighbours)
REACH = 1.5  # up to: bonded when no common neighbour
H_REACH = 2.0  # a hydrogen's nearest atom closer than this is its partner
AMBIGUOUS = (1.15, 1.6)  # heavy-atom pairs in this range could be read either way


@dataclasses.dataclass
class BondGraph:
    pairs: np.ndarray  # (n_bonds, 2) int, i < j
    ambiguous: np.ndarray  # (n, 2) int, i < j: heavy-atom pairs in `AMBIGUOUS`, bonded or not


def bond_graph(numbers: np.ndarray, positions: np.ndarray) -> BondGraph:
    """The bonds of one structure by the rules above. Positions in Å; periodic images are
    ignored (the graph is meant for molecules)."""
    numbers = np.asarray(numbers, dtype=np.int64).reshape(-1)
    positions = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    empty = np.zeros((0, 2), dtype=np.int64)
    if len(numbers) < 2:
        return BondGraph(empty, empty)
    radii = covalent_radii[numbers]
    reach = max(REACH, H_REACH, AMBIGUOUS[1]) * 2 * radii.max()
    pairs = cKDTree(positions).query_pairs(reach, output_type="ndarray").reshape(-1, 2).astype(np.int64)
    ratio = np.linalg.norm(positions[pairs[:, 0]] - positions[pairs[:, 1]], axis=1) / radii[pairs].sum(1)
    found = set(_hydrogen_bonds(numbers, pairs, ratio))
    heavy = (numbers[pairs] != 1).all(1)
    found |= _heavy_bonds(len(numbers), pairs[heavy], ratio[heavy])
    unsure = heavy & (ratio >= AMBIGUOUS[0]) & (ratio < AMBIGUOUS[1])
    bonded = np.array(sorted(found), dtype=np.int64).reshape(-1, 2)
    return BondGraph(bonded, np.sort(pairs[unsure], axis=1))


def _hydrogen_bonds(numbers: np.ndarray, pairs: np.ndarray, ratio: np.ndarray) -> list[tuple[int, int]]:
    """Each hydrogen to its nearest atom within `H_REACH` (an H–H pair counts once)."""
    h, other = np.concatenate([pairs, pairs[:, ::-1]]).T
    r = np.concatenate([ratio, ratio])
    keep = (numbers[h] == 1) & (r < H_REACH)
    h, other, r = h[keep], other[keep], r[keep]
    order = np.lexsort((r, h))  # by hydrogen, nearest first
    first = np.ones(len(order), dtype=bool)
    first[1:] = h[order][1:] != h[order][:-1]
    chosen = order[first]
    return sorted({(int(min(a, b)), int(max(a, b))) for a, b in zip(h[chosen], other[chosen])})


def _heavy_bonds(n_atoms: int, pairs: np.ndarray, ratio: np.ndarray) -> set[tuple[int, int]]:
    """Heavy-atom pairs below `TIGHT`, then those below `REACH` that close no triangle."""
    neighbours: list[set[int]] = [set() for _ in range(n_atoms)]
    found = set()
    close = ratio < REACH
    for k in np.flatnonzero(close)[np.argsort(ratio[close], kind="stable")]:
        i, j = int(pairs[k, 0]), int(pairs[k, 1])
        if ratio[k] < TIGHT or not neighbours[i] & neighbours[j]:
            neighbours[i].add(j)
            neighbours[j].add(i)
            found.add((min(i, j), max(i, j)))
    return found
