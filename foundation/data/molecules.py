"""Which molecule a structure is: Hill formula plus a hash of its bond graph.

Conformers of one molecule share a key; isomers (same formula, different bonds) get different
ones. The key is what `foundation.data.split` keeps together, so that no conformer of a test
molecule is trained on.

The bond graph (`foundation.data.bond_graph`) is read with tolerance for what conformer sampling
does (~1000 K normal-mode sampling, bonds stretched by 0.3 Å). `molecule_key` names one
structure; `molecule_keys` names the structures of a file together and settles the rare
ambiguous pair (a stretched 3-membered ring bond) by the molecule's other conformers.
The graph is summarised by Weisfeiler–Lehman refinement of element labels, a canonical invariant:
isomorphic graphs always hash equal, and the graphs it cannot tell apart (some regular graphs)
do not occur as distinct molecules of the same formula in practice.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable

import numpy as np
from ase.data import covalent_radii
from scipy.spatial import cKDTree

from foundation.data.bond_graph import bond_graph
from foundation.data.elements import symbol

BOND_FACTOR = 1.2  # × (r_cov,i + r_cov,j): the plain rule of `bonds` (the conformer sampler's filter)
_HASH_CHARS = 12


def hill_formula(numbers: np.ndarray) -> str:
    """Hill order: C, then H, then the rest alphabetically; without carbon, all alphabetically."""
    counts = Counter(symbol(z) for z in np.asarray(numbers).reshape(-1))
    if "C" in counts:
        order = ["C"] + (["H"] if "H" in counts else []) + sorted(s for s in counts if s not in ("C", "H"))
    else:
        order = sorted(counts)
    return "".join(s if counts[s] == 1 else f"{s}{counts[s]}" for s in order)


def bonds(numbers: np.ndarray, positions: np.ndarray, factor: float = BOND_FACTOR) -> np.ndarray:
    """(n_bonds, 2) int atom pairs i < j bonded by the covalent-radius rule. Positions in Å;
    periodic images are ignored (the key is meant for molecules)."""
    numbers = np.asarray(numbers, dtype=np.int64).reshape(-1)
    positions = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    if len(numbers) < 2:
        return np.zeros((0, 2), dtype=np.int64)
    radii = covalent_radii[numbers]
    pairs = cKDTree(positions).query_pairs(factor * 2 * radii.max(), output_type="ndarray")
    if len(pairs) == 0:
        return np.zeros((0, 2), dtype=np.int64)
    d = np.linalg.norm(positions[pairs[:, 0]] - positions[pairs[:, 1]], axis=1)
    return pairs[d < factor * (radii[pairs[:, 0]] + radii[pairs[:, 1]])].astype(np.int64)


def connectivity_hash(numbers: np.ndarray, bond_pairs: np.ndarray) -> str:
    """Weisfeiler–Lehman hash of the element-labelled graph; independent of atom order."""
    numbers = np.asarray(numbers).reshape(-1)
    neighbours: list[list[int]] = [[] for _ in numbers]
    for i, j in bond_pairs:
        neighbours[i].append(int(j))
        neighbours[j].append(int(i))
    labels = [symbol(z) for z in numbers]
    history = [sorted(labels)]
    n_classes = len(set(labels))
    # Refinement stops when a round splits no class: isomorphic graphs stop at the same round.
    for _ in range(len(numbers)):
        labels = [_digest(labels[i] + "(" + ",".join(sorted(labels[j] for j in nb)) + ")")
                  for i, nb in enumerate(neighbours)]
        history.append(sorted(labels))
        if len(set(labels)) == n_classes:
            break
        n_classes = len(set(labels))
    return _digest("|".join(",".join(h) for h in history))[:_HASH_CHARS]


def molecule_key(numbers: np.ndarray, positions: np.ndarray) -> str:
    """`"<Hill formula>-<connectivity hash>"`, e.g. `"C2H6O-1a2b3c4d5e6f"`; positions in Å."""
    return f"{hill_formula(numbers)}-{connectivity_hash(numbers, bond_graph(numbers, positions).pairs)}"


def molecule_keys(structures: Iterable[tuple[np.ndarray, np.ndarray]]) -> list[str]:
    """`molecule_key` of each (numbers, positions), read together: a structure whose graph
    becomes a more common graph of the same formula when one of its ambiguous pairs
    (`BondGraph.ambiguous`) is read the other way takes that graph's key. Two isomers never
    differ by one such pair (an edit of one bond would leave an atom off its valence, or needs a
    pair at bonding distance in one and far apart in the other), so this merges conformers only."""
    graphs, keys = [], []
    for numbers, positions in structures:
        graph = bond_graph(numbers, positions)
        graphs.append((numbers, graph))
        keys.append(f"{hill_formula(numbers)}-{connectivity_hash(numbers, graph.pairs)}")
    counts = Counter(keys)
    most: dict[str, int] = {}  # per formula, the count of its most common key
    for key, n in counts.items():
        formula = key.rsplit("-", 1)[0]
        most[formula] = max(most.get(formula, 0), n)
    out = list(keys)
    for k, (numbers, graph) in enumerate(graphs):
        formula = keys[k].rsplit("-", 1)[0]
        if counts[keys[k]] == most[formula]:
            continue  # nothing more common to join
        bonded = {tuple(p) for p in graph.pairs.tolist()}
        better = sorted((-counts[alt], alt) for alt in _flipped(numbers, bonded, graph.ambiguous, formula)
                        if counts[alt] > counts[keys[k]])
        if better:
            out[k] = better[0][1]
    return out


def _flipped(numbers: np.ndarray, bonded: set, ambiguous: np.ndarray, formula: str) -> set[str]:
    """The keys of the graph with one ambiguous pair read the other way."""
    out = set()
    for pair in map(tuple, ambiguous.tolist()):
        other = bonded ^ {pair}
        pairs = np.array(sorted(other), dtype=np.int64).reshape(-1, 2)
        out.add(f"{formula}-{connectivity_hash(numbers, pairs)}")
    return out


def _digest(text: str) -> str:
    # A stable hash (Python's hash() is salted per process), so keys agree across runs.
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()
