"""The chemistry-covering CCSD(T) set: molecules chosen by program to cover every functional-group
family at least twice, conformers chosen by the ANI-1x ensemble's disagreement (query by
committee) beside an equal number chosen at random, both labelled, so that active and random
selection can be compared on the same test molecules.

    python -m foundation.pipelines.cc_set.molecules            # -> molecules.json (families, splits)
    python -m foundation.pipelines.cc_set.select --model ani-1x  # -> labels/structures.jsonl, selection.json
    foundation data label --out data_pipelines/cc_set/labels --workers 2   # hours; resumable
"""
