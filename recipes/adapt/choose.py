"""What to label: the held-out conformers, then the candidates the ensemble disagrees on most,
spread over molecules, over each molecule's energy range and over levels of theory, within a
CPU budget.

Disagreement (query by committee): per structure, the members' energy spread per √atom (ANI-1x's
criterion); per atom, the largest spread of one atom's energy over the members (TorchANI's
atomic QBC: a spread that a structure total averages away still shows on the atom it sits on).
A candidate's score is their sum (eV).

Held out: `per_molecule` frames of each molecule drawn at random (seeded) across its
trajectories, labelled at CCSD(T) and never trained on; training picks keep `HOLDOUT_GAP` MD
steps away from them on the same trajectory, so no near-copy of a test frame is trained on.

Picks: each molecule's candidates are binned by the start's energy (quantiles) and ranked by
score within a bin; the bins take turns, so the picks cover the energy range instead of piling
on its highest tail. Molecules take turns too, and each level takes the next candidate of the
molecule's ranking while its share of the budget lasts (the costliest level first, so CCSD(T)
gets the candidates ranked highest). Picks on one trajectory keep `PICK_GAP` steps apart.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from foundation.recipes.adapt.costs import CostModel, basis_functions

HOLDOUT_GAP = 100  # MD steps (50 fs at 0.5 fs) between a held-out frame and any training pick
PICK_GAP = 40  # MD steps between two picks of one trajectory
ENERGY_BINS = 4


@dataclasses.dataclass
class Scores:
    energy: np.ndarray  # eV, the members' mean
    spread: np.ndarray  # eV, the members' energy standard deviation
    atom_spread: np.ndarray  # eV, the largest per-atom energy spread

    def score(self, n_atoms: np.ndarray) -> np.ndarray:
        return self.spread / np.sqrt(n_atoms) + self.atom_spread


@dataclasses.dataclass(frozen=True)
class Task:
    candidate: object  # sampling.Candidate
    fidelity: str
    split: str  # holdout | train
    estimate: float  # CPU seconds by the cost model when it was planned


def score(model, candidates: Sequence, head: str | None = None, batch_atoms: int = 2048) -> Scores:
    """The ensemble's disagreement on each candidate."""
    from foundation.data.batch import collate
    from foundation.data.batching import group_by_atoms
    from foundation.data.sample import Sample

    samples = [Sample(c.numbers, c.positions, source=c.id) for c in candidates]
    index = {id(s): k for k, s in enumerate(samples)}
    energy, spread, atom = (np.zeros(len(samples)) for _ in range(3))
    model.eval()
    for group in group_by_atoms(samples, batch_atoms):
        batch = collate(group, fidelities=[], dtype=model.dtype)
        with torch.no_grad():
            out = model(batch, head=head, forces=False)
            per_atom = out.get("atomic_energy_std")
            if per_atom is None:  # an ensemble without the per-atom spread: from its members
                per_atom = model.member_atomic_energies(batch, head).std(0, correction=1)
        largest = torch.zeros(batch.n_structures, dtype=torch.float64).scatter_reduce(
            0, batch.batch, per_atom.detach().to(torch.float64), "amax", include_self=False)
        rows = [index[id(s)] for s in group]
        energy[rows] = out["energy"].detach().double().numpy()
        spread[rows] = out["energy_std"].detach().double().numpy()
        atom[rows] = largest.numpy()
    return Scores(energy, spread, atom)


def choose_holdout(candidates: Sequence, per_molecule: int, seed: int) -> list:
    """`per_molecule` random frames of each molecule, taking the trajectories in turn."""
    rng = np.random.default_rng(seed)
    out = []
    for molecule in _molecules(candidates):
        by_trajectory: dict[int, list] = {}
        for c in candidates:
            if c.molecule == molecule:
                by_trajectory.setdefault(c.trajectory, []).append(c)
        pools = [list(rng.permutation(len(v))) for v in by_trajectory.values()]
        frames = list(by_trajectory.values())
        chosen = []
        while len(chosen) < per_molecule and any(pools):
            for t, pool in enumerate(pools):
                if pool and len(chosen) < per_molecule:
                    chosen.append(frames[t][pool.pop()])
        out += chosen
    return out


def rank(candidates: Sequence, scores: Scores) -> dict[str, list[int]]:
    """Per molecule, candidate indices in pick order: energy bins in turn, best score first."""
    n_atoms = np.array([len(c.numbers) for c in candidates], float)
    value = scores.score(n_atoms)
    out = {}
    for molecule in _molecules(candidates):
        mine = [k for k, c in enumerate(candidates) if c.molecule == molecule]
        energies = scores.energy[mine]
        edges = np.quantile(energies, np.linspace(0, 1, ENERGY_BINS + 1)[1:-1]) if len(mine) > 1 else []
        bins: dict[int, list[int]] = {}
        for k, e in zip(mine, energies):
            bins.setdefault(int(np.searchsorted(edges, e)), []).append(k)
        queues = sorted((sorted(v, key=lambda k: -value[k]) for v in bins.values()), key=lambda q: -value[q[0]])
        order = []
        while any(queues):
            for q in queues:
                if q:
                    order.append(q.pop(0))
        out[molecule] = order
    return out


def allocate(candidates: Sequence, rankings: Mapping[str, list[int]], mix: Mapping[str, float], budget: float,
             costs: CostModel, holdout: Sequence = (), labelled: Sequence = ()) -> list[Task]:
    """Training tasks in priority order (molecules and levels in turn) whose estimated CPU
    seconds fit each level's share (`mix`) of `budget`, clear of the held-out frames and of
    those labelled before."""
    share = {fid: budget * w for fid, w in mix.items()}
    spent = dict.fromkeys(mix, 0.0)
    sizes = [basis_functions(candidates[q[0]].numbers) for q in rankings.values() if q]
    median = int(np.median(sizes)) if sizes else 1
    levels = sorted(mix, key=lambda fid: -costs.seconds(fid, median))
    keep_clear = _Clearance()
    for c in holdout:
        keep_clear.add(c, HOLDOUT_GAP)
    for c in labelled:
        keep_clear.add(c, PICK_GAP)
    position = dict.fromkeys(rankings, 0)
    open_ = {(m, fid) for m in rankings for fid in levels}
    tasks = []
    while open_:
        for molecule, order in rankings.items():
            for fid in levels:
                if (molecule, fid) not in open_:
                    continue
                k = _next(order, position, molecule, candidates, keep_clear)
                if k is None:
                    open_ -= {(molecule, f) for f in levels}
                    continue
                estimate = costs.seconds(fid, basis_functions(candidates[k].numbers))
                if spent[fid] + estimate > share[fid]:
                    open_.discard((molecule, fid))
                    continue
                tasks.append(Task(candidates[k], fid, "train", estimate))
                spent[fid] += estimate
                keep_clear.add(candidates[k], PICK_GAP)
                position[molecule] += 1
    return tasks


class _Clearance:
    """Frames (molecule, trajectory, step) that picks keep a distance from."""

    def __init__(self):
        self.windows: dict[tuple[str, int], list[tuple[int, int]]] = {}
        self.ids: set[str] = set()

    def add(self, c, gap: int) -> None:
        self.ids.add(c.id)
        self.windows.setdefault((c.molecule, c.trajectory), []).append((c.step, gap))

    def clear(self, c) -> bool:
        if c.id in self.ids:
            return False
        return all(abs(c.step - step) > gap for step, gap in self.windows.get((c.molecule, c.trajectory), []))


def _next(order: list[int], position: dict, molecule: str, candidates: Sequence, keep_clear: _Clearance) -> int | None:
    """The molecule's next candidate that is clear of every pick and held-out frame (skipping the rest)."""
    while position[molecule] < len(order):
        k = order[position[molecule]]
        if keep_clear.clear(candidates[k]):
            return k
        position[molecule] += 1
    return None


def _molecules(candidates: Sequence) -> list[str]:
    return list(dict.fromkeys(c.molecule for c in candidates))


def sizes(candidates: Sequence) -> dict[str, int]:
    """Basis functions of each molecule (cc-pVDZ), for the cost lines."""
    return {c.molecule: basis_functions(c.numbers) for c in candidates}


def mean_spread(candidates: Sequence, scores: Scores) -> dict[str, float]:
    """Per molecule, the ensemble's mean energy spread over its candidates (kcal/mol)."""
    from foundation.units import EV_TO_KCAL_MOL

    out = {}
    for molecule in _molecules(candidates):
        rows = [k for k, c in enumerate(candidates) if c.molecule == molecule]
        out[molecule] = float(np.mean(scores.spread[rows])) * EV_TO_KCAL_MOL if rows else math.nan
    return out
