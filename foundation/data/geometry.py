"""The one check of positions and cells that every structure passes where it enters the library
(`Sample.validate`, so every reader and the shard stream; the ASE calculator; `foundation md`).

What it refuses, and why these bounds:
- a non-finite coordinate or cell component: it would reach the neighbour list and the molecule
  key (scipy's k-d tree raises on it) and poison every gradient of a batch;
- an atom more than `MAX_DISTANCE` = 1e4 Å (1 µm) from the origin, or a cell vector longer than
  that: no chemistry is that large, and float32, the models' default precision, still resolves
  1e-3 Å there (its spacing at 1e4 is 9.8e-4) but only 0.06 Å at 1e6 Å. vesin's own limit is no
  single number: its cell list divides by zero (SIGFPE, the process dies) when the bounding box
  is far from cubic and large, from about 1e5 cutoffs along a line (5.1e5 Å at a 5.2 Å cutoff)
  and from about 330 cutoffs across a plane (1.7e3 Å). Inside this bound that can still happen,
  so `foundation.models.neighbors` keeps vesin's grid small itself; the bound keeps what it must
  handle finite and chemical (measured with vesin 0.6.2 in subprocesses; those shapes are run in
  tests/models/test_neighbors.py);
- a cell marked periodic that is singular or nearly so: the height of the cell along a periodic
  direction (the distance of that cell vector from the span of the other periodic ones) below
  `MIN_CELL_HEIGHT` = 0.5 Å. Images that close are never a crystal, and the number of periodic
  images within the cutoff grows without bound as the height goes to zero.

Messages name the structure (`where`: file and item), the atom (0-based index and element) and the
value, e.g. `f.extxyz:0: atom 1 (H) has a non-finite coordinate (nan)`.
"""

from __future__ import annotations

import numpy as np

from foundation.errors import BadStructureError

MAX_DISTANCE = 1e4  # Å, from the origin (atoms) and for cell vector lengths
MIN_CELL_HEIGHT = 0.5  # Å, of a periodic cell along each periodic direction
_LIMIT = "1e4"  # MAX_DISTANCE as messages write it
_SAFE_COMPONENT = MAX_DISTANCE / np.sqrt(3)


def check_geometry(numbers, positions, cell=None, pbc=None, where: str = "structure") -> None:
    """Raise `BadStructureError` naming `where` and the atom (or cell vector) at fault; return
    None when positions (n, 3) and the cell (3, 3) with its `pbc` (3,) can be given to a model."""
    positions = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    cell = np.zeros((3, 3)) if cell is None else np.asarray(cell, dtype=np.float64).reshape(3, 3)
    pbc = np.zeros(3, bool) if pbc is None else np.asarray(pbc, bool).reshape(3)
    # The common case in one comparison (every sample of a stream passes here): no coordinate
    # above MAX_DISTANCE / sqrt(3) puts no atom and no cell vector beyond MAX_DISTANCE; NaN
    # compares false and takes the long way, which names it.
    largest = max(np.abs(positions).max(initial=0.0), np.abs(cell).max())
    if largest <= _SAFE_COMPONENT and not pbc.any():
        return
    _check_positions(np.asarray(numbers).reshape(-1), positions, where)
    _check_cell(cell, pbc, where)


def _check_positions(numbers: np.ndarray, positions: np.ndarray, where: str) -> None:
    finite = np.isfinite(positions)
    if not finite.all():
        k = int(np.flatnonzero(~finite.all(axis=1))[0])
        value = positions[k][~finite[k]][0]
        raise BadStructureError(f"{where}: atom {k} ({_element(numbers, k)}) has a non-finite coordinate ({value})")
    distance = _norms(positions)
    if len(distance) and distance.max() > MAX_DISTANCE:
        k = int(np.argmax(distance > MAX_DISTANCE))
        raise BadStructureError(f"{where}: atom {k} ({_element(numbers, k)}) is {distance[k]:.3g} Å from the "
                                f"origin (limit {_LIMIT} Å)")


def _check_cell(cell: np.ndarray, pbc: np.ndarray, where: str) -> None:
    finite = np.isfinite(cell)
    if not finite.all():
        k = int(np.flatnonzero(~finite.all(axis=1))[0])
        raise BadStructureError(f"{where}: cell vector {k} has a non-finite component ({cell[k][~finite[k]][0]})")
    lengths = _norms(cell)
    if lengths.max() > MAX_DISTANCE:
        k = int(np.argmax(lengths > MAX_DISTANCE))
        raise BadStructureError(f"{where}: cell vector {k} is {lengths[k]:.3g} Å long (limit {_LIMIT} Å)")
    heights = periodic_heights(cell, pbc)
    for k in np.flatnonzero(pbc):
        h = heights[k]
        if h < MIN_CELL_HEIGHT * (1 - 1e-9):  # (rounding: a height of exactly 0.5 Å passes)
            raise BadStructureError(
                f"{where}: the cell is singular along periodic direction {k} (height {h:.3g} Å, at least "
                f"{MIN_CELL_HEIGHT} Å needed); give the cell vectors, or set pbc false along {k}")


def periodic_heights(cell: np.ndarray, pbc) -> np.ndarray:
    """(3,) the cell's height along each periodic direction (Å), inf along the others: the
    distance of that cell vector from the span of the other periodic ones, which is the spacing
    of the layers of periodic images (vesin grids by it; 0 for a singular cell)."""
    cell = np.asarray(cell, dtype=np.float64).reshape(3, 3)
    periodic = np.flatnonzero(np.asarray(pbc, bool).reshape(3))
    heights = np.full(3, np.inf)
    if len(periodic) == 3:  # 1 / |reciprocal vector|: one inversion for the usual case
        try:
            with np.errstate(all="ignore"):
                heights = 1.0 / np.linalg.norm(np.linalg.inv(cell), axis=0)
            if np.isfinite(heights).all():
                return heights
        except np.linalg.LinAlgError:
            pass  # singular: the general way below says how much
    for k in periodic:
        others = cell[[m for m in periodic if m != k]]
        if len(others) == 0:
            heights[k] = np.linalg.norm(cell[k])
            continue
        coefficients = np.linalg.lstsq(others.T, cell[k], rcond=None)[0]  # degenerate others: minimum norm
        heights[k] = np.linalg.norm(cell[k] - coefficients @ others)
    return heights


def _norms(vectors: np.ndarray) -> np.ndarray:
    # hypot, not sqrt(sum of squares): 1e200 Å must read as 1e200, not overflow to inf
    return np.hypot(np.hypot(vectors[:, 0], vectors[:, 1]), vectors[:, 2])


def _element(numbers: np.ndarray, k: int) -> str:
    from ase.data import chemical_symbols

    z = int(numbers[k]) if k < len(numbers) else -1
    return chemical_symbols[z] if 0 < z < len(chemical_symbols) else f"Z={z}"
