"""Write `small_val/molecules.json` and `labels/structures.jsonl`: more small validation molecules.

A transfer ships only if it does not lose on the small validation molecules: the embedded set's 3
and the CC set's 8. Eleven molecules are as few as the frontier's 8; one of them (oxazole) carries
a third of their squared error, and the installed model's early stopping was chosen on them, so
its number there is biased low. This set adds molecules of 2-5 heavy atoms that no other set holds
(canonical SMILES), chosen by the CC set's cost-aware family cover from the enumerator's products
and `candidates.smi` (common small molecules; the enumerator's small ones are nearly all taken),
split `val`, each with the CC set's validation sampling (random candidates of 12: MMFF minima,
normal-mode samples at 300-1000 K, small random displacements), labelled at CCSD(T)/cc-pVDZ:

    python -m foundation.pipelines.small_val.build
    foundation data label --out data_pipelines/small_val/labels --workers 2
    python -m foundation.pipelines.embedded.build
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from foundation.errors import entry_point
from foundation.files import write_text_atomic

from ..cc_set.select import candidates, picks, round_robin
from ..chemistry.cover import candidate, choose
from ..chemistry.enumerate import canonical, enumerate_molecules, smiles_of
from ..label.structures import Structure, refuse_if_labelled, write_structures

HERE = Path(__file__).parent
N_MOLECULES = 16
MAX_HEAVY = 5
CANDIDATES, K = 12, 3  # 2 K random candidates of each molecule (the CC set's K is 4; 3 halves the CPU at 5 heavy atoms)
LEVELS = ["ccsdt_ccpvdz"]
PREFIX = "small-val/"
# every other set's molecules, whatever their split: these must be new to all of them
OTHER_SETS = ("cc_set/molecules.json", "mp2_set/molecules.json", "frontier/molecules.json", "adapt_eval/molecules.json")


def taken() -> set[str]:
    """Canonical SMILES of every molecule another set holds (the embedded plan's and the others')."""
    return smiles_of([HERE.parent / "embedded" / "plan.json", *(HERE.parent / f for f in OTHER_SETS)], max_heavy=99)


def molecules(n: int = N_MOLECULES) -> list[dict]:
    skip = taken()
    listed = (canonical(s, MAX_HEAVY) for s in (HERE / "candidates.smi").read_text().split())
    smiles = sorted({*enumerate_molecules(MAX_HEAVY, large=True), *filter(None, listed)} - skip)
    # one molecule per family is enough here: the pool is what the other sets left
    return [{"name": c.smiles, "smiles": c.smiles, "families": list(c.families), "heavy_atoms": c.heavy,
             "split": "val"} for c in choose([candidate(s) for s in smiles], n, min_per_family=1)]


def structures(chosen: list[dict]) -> list[Structure]:
    confs = [candidates(m["smiles"], CANDIDATES) for m in chosen]
    order = [picks(m["name"], len(c), None, K)["random"] for m, c in zip(chosen, confs)]
    return [Structure(id=f"{PREFIX}{chosen[m]['name']}/{c:04d}", molecule=chosen[m]["name"],
                      numbers=confs[m][c].numbers, positions=confs[m][c].positions,
                      sampling=confs[m][c].method, split="val", levels=list(LEVELS))
            for m, c in round_robin(order)]


def build(out_dir: Path, n: int = N_MOLECULES) -> int:
    chosen = molecules(n)
    write_text_atomic(out_dir.parent / "molecules.json", json.dumps(
        {"description": "Small validation molecules new to every other set (python -m "
                        "foundation.pipelines.small_val.build); the order is the order of choice.",
         "molecules": chosen}, indent=1) + "\n")
    result = structures(chosen)
    write_structures(out_dir, result, replace=True)
    return len(result)


@entry_point
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=N_MOLECULES, help="how many molecules")
    parser.add_argument("--out", type=Path, default=HERE / "labels")
    args = parser.parse_args(argv)
    refuse_if_labelled(args.out)
    print(f"{build(args.out, args.n)} structures -> {args.out}/structures.jsonl")
    return 0


if __name__ == "__main__":
    sys.exit(main())
