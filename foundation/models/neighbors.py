"""Neighbour pairs over a flat `AtomsBatch` (vesin), and the triplets built from them.

The list is found on detached float64 copies of the positions; the pair *vectors* are formed again
in torch by the model (`positions[j] - positions[i] + shifts`), so energies stay differentiable
with respect to positions and, through `shifts = cell_shift @ cell`, to the cell (stress by strain).
"""

from __future__ import annotations

import threading

import numpy as np
import torch
import vesin

from foundation.data.batch import AtomsBatch
from foundation.data.geometry import MAX_DISTANCE, check_geometry, periodic_heights
from foundation.errors import UserError

# Space between molecules laid side by side (beyond the cutoff), Å.
_MOLECULE_GAP = 1.0
_local = threading.local()


def neighbor_pairs(batch: AtomsBatch, cutoff: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """All ordered pairs (i, j), i != j or a periodic image, with |r_j - r_i + shift| < `cutoff` Å.

    Returns `i`, `j` (P,) int64 indices into the flat atoms (never across structures), both
    directions of every pair, and `shifts` (P, 3) Cartesian image shifts in Å, in the cell's dtype
    and differentiable with respect to `batch.cell`. All on the batch's device. Atoms of one
    structure must be contiguous in the flat batch (as `collate` makes them).
    """
    device = batch.positions.device
    positions = batch.positions.detach().to("cpu", torch.float64).numpy()
    owner = batch.batch.detach().cpu().numpy()
    periodic = batch.pbc.detach().cpu().numpy().any(axis=1)
    if len(owner) and np.any(np.diff(owner) < 0):
        raise ValueError("neighbor_pairs: atoms of a structure must be contiguous (batch index sorted)")
    starts = np.searchsorted(owner, np.arange(batch.n_structures + 1))
    cell = batch.cell.detach().to("cpu", torch.float64).numpy()
    pbc = batch.pbc.detach().cpu().numpy()
    # Batches built by hand skip the check at the doors: vesin must still never see NaN or 1e300 Å
    # (SIGFPE), nor a periodic cell it cannot grid. NaN fails the comparison too.
    if len(positions) and not np.abs(positions).max() <= MAX_DISTANCE:
        for b in range(batch.n_structures):
            _check(batch, b, positions[starts[b]:starts[b + 1]], cell[b], pbc[b])

    parts = [_molecule_pairs(positions, owner, periodic, cutoff)]
    for b in np.flatnonzero(periodic):
        _check(batch, b, positions[starts[b]:starts[b + 1]], cell[b], pbc[b])
        parts.append(_periodic_pairs(positions, starts[b], starts[b + 1], cell[b], pbc[b], cutoff,
                                     _where(batch, b)))
    i = np.concatenate([p[0] for p in parts])
    j = np.concatenate([p[1] for p in parts])
    cell_shift = np.concatenate([p[2] for p in parts])

    i_t = torch.from_numpy(i).to(device)
    j_t = torch.from_numpy(j).to(device)
    shifts = torch.zeros((len(i), 3), dtype=batch.cell.dtype, device=device)
    n_molecular = len(parts[0][0])
    if len(i) > n_molecular:
        # Only periodic pairs can have a shift; keep them differentiable in the cell.
        s = torch.from_numpy(cell_shift[n_molecular:]).to(device=device, dtype=batch.cell.dtype)
        cells = batch.cell[batch.batch[i_t[n_molecular:]]]  # (P_per, 3, 3)
        shifts = torch.cat([shifts[:n_molecular], torch.einsum("pk,pkx->px", s, cells)])
    return i_t, j_t, shifts


def _molecule_pairs(positions: np.ndarray, owner: np.ndarray, periodic: np.ndarray, cutoff: float):
    """Pairs of all non-periodic structures in one vesin call: the molecules are laid side by side
    along x, more than `cutoff` apart, so no pair crosses two of them. One call instead of one per
    molecule is ~3x faster for batches of small molecules (the per-call overhead dominates)."""
    atoms = np.flatnonzero(~periodic[owner])
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 3), np.int64))
    if len(atoms) < 2:
        return empty
    pos = positions[atoms]
    local_owner = owner[atoms]
    if local_owner[0] == local_owner[-1]:  # one molecule (MD, calculators): nothing to lay out
        i, j, _ = _vesin_pairs(pos, np.zeros((3, 3)), np.zeros(3, bool), cutoff)
        return atoms[i], atoms[j], np.zeros((len(i), 3), np.int64)
    first = np.flatnonzero(np.r_[True, local_owner[1:] != local_owner[:-1]])
    low = np.minimum.reduceat(pos, first, axis=0)
    high = np.maximum.reduceat(pos, first, axis=0)
    width = high[:, 0] - low[:, 0] + cutoff + _MOLECULE_GAP
    start_x = np.cumsum(width) - width
    group = np.repeat(np.arange(len(first)), np.diff(np.r_[first, len(atoms)]))
    laid_out = pos - low[group]
    laid_out[:, 0] += start_x[group]
    i, j, _ = _vesin_pairs(laid_out, np.zeros((3, 3)), np.zeros(3, bool), cutoff)
    return atoms[i], atoms[j], np.zeros((len(i), 3), np.int64)


def _periodic_pairs(positions, start, stop, cell, pbc, cutoff, where):
    try:
        i, j, s = _vesin_pairs(positions[start:stop], cell, pbc, cutoff)
    except RuntimeError as err:
        raise UserError(f"{where}: cannot build a neighbour list for this periodic cell ({err})") from None
    return i + start, j + start, s


def _vesin_pairs(points: np.ndarray, cell: np.ndarray, pbc: np.ndarray, cutoff: float):
    """vesin's pairs within `cutoff`: int64 `i`, `j` and integer cell shifts (zero without pbc).

    vesin's CPU cell list (0.6) has two ways to fail on coordinates that are finite and allowed:
    - a grid of more than `_VESIN_MAX_CELLS` cells is shrunk, and for a large box far from cubic
      the shrinking rounds a side to zero cells and divides by zero: SIGFPE, the process dies (a
      flat molecule 1.7e3 Å across at a 5.2 Å cutoff, a line of atoms 5.1e5 Å long, molecules
      laid side by side into such a box, a 1e4 x 1e4 x 3 Å periodic slab);
    - each cell visits (2 n + 1)^3 others, n = cutoff / (cell width), so a box whose points are
      nearly flat (0.001 Å thick) or sparse (a few atoms 1e4 Å apart) takes seconds to minutes.
    Ordinary batches and cells are searched as they always were. Other molecules are searched in
    a periodic box with room for the cutoff around them (no image is ever in reach), and both
    these and periodic cells with a radius grown until the grid is at most `_grid_limit` cells;
    the pairs beyond the cutoff are dropped here."""
    limit = _grid_limit(len(points))
    if pbc.any():
        box, box_pbc = cell, pbc
        radius = _radius(lambda r: _cells(_box_sides(points, cell, pbc), r), cutoff, limit)
    elif _plain_search_is_cheap(np.ptp(points, axis=0) if len(points) else np.zeros(3), cutoff, limit):
        box, box_pbc, radius = np.zeros((3, 3)), False, cutoff
    else:
        points = points - points.min(axis=0)
        extent = points.max(axis=0)
        radius = _radius(lambda r: _cells(extent + r + 1.0, r), cutoff, limit)
        box, box_pbc = np.diag(extent + radius + 1.0), np.ones(3, bool)
    found = _vesin(radius).compute(points, box, box_pbc, "ijS" if pbc.any() else "ij")
    i, j = found[0].astype(np.int64), found[1].astype(np.int64)
    s = found[2].astype(np.int64) if pbc.any() else np.zeros((len(i), 3), np.int64)
    if radius > cutoff:
        vectors = points[j] - points[i] + s @ cell
        keep = (vectors * vectors).sum(axis=1) < cutoff * cutoff
        i, j, s = i[keep], j[keep], s[keep]
    return i, j, s


_VESIN_MAX_CELLS = 1e5  # vesin's MAX_NUMBER_OF_CELLS (vesin/src/cpu_cell_list.cpp)


def _grid_limit(n_points: int) -> float:
    # A few cells per atom, never more than vesin grids without shrinking: visiting a cell costs
    # ~0.3 us per neighbour cell, 0.9 s for a grid of 1e5 cells, wasted on a handful of atoms.
    return min(_VESIN_MAX_CELLS, max(1000.0, 4.0 * n_points))


def _cells(sides: np.ndarray, radius: float) -> np.ndarray:
    """An upper bound of the cells vesin's grid has along each side (Å) at this radius."""
    return np.floor(1.02 * np.maximum(sides, 1.0) / radius) + 1


def _radius(cells, cutoff: float, limit: float) -> float:
    """The smallest of cutoff × 1.1^k (Å) whose grid, `cells(radius)`, is at most `limit` cells."""
    radius = cutoff
    while np.prod(cells(radius)) > limit:
        radius *= 1.1
    return radius


def _plain_search_is_cheap(extent: np.ndarray, cutoff: float, limit: float) -> bool:
    """Whether vesin's own bounding box around points of this `extent` (Å) is a safe grid that
    visits few cells: it pads a flat side to 1 Å only below 1e-6 Å (then widens all by 1%)."""
    cells = _cells(extent, cutoff)
    widths = 1.01 * np.where(extent < 1e-6, 1.0, extent)
    visits = np.prod(cells * (2 * np.ceil(cutoff * cells / widths) + 1))
    return bool(np.prod(cells) <= limit and visits <= 100 * limit)


def _box_sides(points: np.ndarray, cell: np.ndarray, pbc: np.ndarray) -> np.ndarray:
    """The widths of the box vesin grids (Å): the cell's heights along periodic directions, the
    extent of the points along the others."""
    sides = np.ptp(points, axis=0) if len(points) else np.zeros(3)
    return np.where(pbc, periodic_heights(cell, pbc), sides)


def _vesin(cutoff: float) -> vesin.NeighborList:
    # One thread: for a single small structure, starting threads costs more than the search
    # (measured ~190 us vs ~19 us per call for 20 atoms).
    # One object per cutoff and thread, reused: it keeps its buffers between calls (not safe to
    # share across threads), and making one costs as much as a small molecule's search.
    cache = _local.__dict__.setdefault("lists", {})
    if cutoff not in cache:
        cache[cutoff] = vesin.NeighborList(cutoff=float(cutoff), full_list=True, sorted=True, n_threads=1)
    return cache[cutoff]


def _check(batch: AtomsBatch, b: int, positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray) -> None:
    start = int(torch.searchsorted(batch.batch, torch.tensor(b)))
    numbers = batch.numbers[start:start + len(positions)].cpu().numpy()
    check_geometry(numbers, positions, cell, pbc, _where(batch, b))


def _where(batch: AtomsBatch, b: int) -> str:
    return batch.source[b] if b < len(batch.source) and batch.source[b] else f"structure {b} of the batch"


def triplets_from_pairs(center: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Every unordered couple of pairs sharing a central atom, vectorised.

    `center` (P,) int64 is the central atom of each pair and must be sorted. Returns `first`,
    `second` (T,) indices into the pairs with `first < second` and `center[first] ==
    center[second]`; T = sum over atoms of n(n-1)/2. One host sync (the size of T).
    """
    n_pairs = center.shape[0]
    arange = torch.arange(n_pairs, device=center.device)
    group_start = torch.searchsorted(center, center)  # first pair of each pair's group
    rank = arange - group_start  # earlier pairs in the group: the partners of this one
    second = torch.repeat_interleave(arange, rank)
    offset = torch.cumsum(rank, 0) - rank
    first = (group_start - offset).index_select(0, second) + torch.arange(second.shape[0], device=center.device)
    return first, second
