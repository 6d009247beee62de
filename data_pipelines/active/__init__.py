"""Active learning (query by committee, Smith et al., J. Chem. Phys. 148, 241733, 2018): an
ensemble's disagreement picks which candidate structures are worth an expensive label.

    pool.py      candidate structures: a file, shards, a labeller folder, conformers, MD
    scores.py    the ensemble's spread on each candidate (energy per atom, forces)
    features.py  a fixed-length AEV descriptor per structure, for diversity
    select.py    the greedy pick: spread, optionally pushed apart in descriptor space; or random
    oracle.py    labels for the picks: PySCF at a fidelity, or a lookup of labels already known
    ledger.py    the loop's rounds on disk, so a killed loop resumes without relabelling

`recipes/active_learning.py` strings them into the sample → select → label → fine-tune loop;
`foundation data select` is the one-shot selection.
"""
