"""CCSD(T) training labels on thermal conformers: what MD visits, where the CC set has only random
displacements. The CC set's structures are 0.06 Å random displacements of each atom, whose
CCSD(T) energies spread over 45-70 kcal/mol within a molecule (median); the conformers users run
(and the frontier evaluates) are 1 ps MMFF Langevin snapshots at 300-600 K, spread over 5-22
kcal/mol. A transfer fitted on the first regime is asked about the second (docs/frontier.md).
This set labels thermal conformers of the CC set's training molecules, the frontier's sampler,
at CCSD(T)/cc-pVDZ with an RI-MP2 partner (a second of CPU each), small molecules first.

    python -m foundation.pipelines.cc_thermal.build                           # -> labels/structures.jsonl
    foundation data label --out data_pipelines/cc_thermal/labels --workers 2   # hours; resumable
"""
