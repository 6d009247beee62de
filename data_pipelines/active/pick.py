"""One selection, start to end: score the pool with the committee, describe it for diversity,
pick, and keep every candidate's numbers for the report. `foundation data select` and the
active-learning loop both call `pick`."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from foundation.data import Sample
from foundation.pipelines.active.features import elements_of, structure_features
from foundation.pipelines.active.scores import Scores, ensemble_scores
from foundation.pipelines.active.select import SelectConfig, Selection, select


@dataclasses.dataclass
class Picked:
    """`samples` the picks in pick order; `rows` one dict per pool candidate (source, molecule,
    n_atoms, spreads, the pick rank or None)."""

    samples: list[Sample]
    selection: Selection
    scores: Scores | None
    rows: list[dict]

    def pick_info(self) -> list[dict]:
        """Per pick: the values written next to it (rank, pool index, spreads, pick value)."""
        return [{"al_rank": k, "pool_index": i, **{key: v for key, v in self.rows[i].items()
                                                    if key not in ("source", "molecule", "picked")},
                 "pick_value": None if np.isnan(v) else v}
                for k, (i, v) in enumerate(zip(self.selection.indices, self.selection.values))]


def pick(pool: Sequence[Sample], config: SelectConfig, model=None, head: str | None = None,
         reference: Sequence[Sample] = (), forces: bool = True) -> Picked:
    """Pick `config.n` of `pool`. `model`: the committee (needed for strategy "spread");
    `reference`: structures already labelled, which picks should be unlike (diversity > 0);
    `forces`: also compute the force spread (costs a backward pass per member)."""
    pool = list(pool)
    scores = None
    if config.needs_model:
        scores = ensemble_scores(model, pool, head=head, forces=forces or config.force_weight > 0)
    features = reference_features = None
    if config.needs_features:
        elements = elements_of(pool, reference)
        features = structure_features(pool, elements)
        reference_features = structure_features(list(reference), elements) if reference else None
    spread = scores.combined(config.force_weight) if scores is not None else None
    selection = select(config, len(pool), spread, features, reference_features)
    rank = {i: k for k, i in enumerate(selection.indices)}
    score_rows = scores.rows() if scores is not None else [{} for _ in pool]
    rows = [{"source": s.source, "molecule": s.molecule, "n_atoms": s.n_atoms, **score_rows[k],
             "score": None if spread is None else float(spread[k]), "picked": rank.get(k)}
            for k, s in enumerate(pool)]
    return Picked([pool[i] for i in selection.indices], selection, scores, rows)
