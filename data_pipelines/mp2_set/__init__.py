"""The MP2 rung's training set: MP2/cc-pVDZ energies and forces (mp2_ccpvdz) of >= 3,000 thermal
conformers of >= 300 molecules with 4-8 heavy atoms, the conformers chosen where ANI-1x's members
disagree most. MP2 is 4-5x cheaper than CCSD(T) with forces at 5 heavy atoms (measured on the
frontier set: 32 vs 140 s) and far closer to it than DFT, so it carries CC-like chemistry to
molecules too large for many CC labels.

    python -m foundation.pipelines.mp2_set.molecules              # -> molecules.json (families, sizes)
    python -m foundation.pipelines.mp2_set.select --model ani-1x  # -> labels/structures.jsonl, selection.json
    foundation data label --out data_pipelines/mp2_set/labels --workers 2   # tens of CPU-hours; resumable
"""
