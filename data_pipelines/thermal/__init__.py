"""Training labels on thermal conformers: what MD visits, where the CC set and the MP2 rung have
only random displacements. Their structures are 0.06 Å random displacements of each atom, whose
energies spread over 45-70 kcal/mol within a molecule (median); the conformers users run (and the
frontier evaluates) are 1 ps MMFF Langevin snapshots at 300-600 K, spread over 5-22 kcal/mol. A
transfer fitted on the first regime is asked about the second (docs/frontier.md). Two sets, on
the frontier's sampler:

- `cc`: the CC set's training molecules at CCSD(T)/cc-pVDZ with an RI-MP2 partner (a second of
  CPU each), small molecules first;
- `mp2`: the MP2 rung's molecules (4-8 heavy atoms) at RI-MP2/cc-pVDZ (seconds each).

    python -m foundation.pipelines.thermal.build --set cc                       # -> cc/labels/structures.jsonl
    foundation data label --out data_pipelines/thermal/cc/labels --workers 2    # hours; resumable
    python -m foundation.pipelines.thermal.build --set mp2 --conformers 3
    foundation data label --out data_pipelines/thermal/mp2/labels --workers 2
"""
