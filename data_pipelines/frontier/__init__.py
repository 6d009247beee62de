"""The size frontier: validation and test molecules of 5-7 heavy atoms that no training split
holds (by canonical SMILES), labelled at CCSD(T)/cc-pVDZ, MP2/cc-pVDZ and ωB97X/6-31G* on thermal
conformers. Its splits are `frontier_val` and `frontier_test`, beside (not merged into) the embedded
set's `val` and `test`, so earlier numbers stay comparable. Every recipe choice is made on the
validation molecules; the test molecules are reported by heavy-atom count.

    python -m foundation.pipelines.frontier.build              # -> labels/structures.jsonl
    foundation data label --out data_pipelines/frontier/labels --workers 2   # hours; resumable
"""
