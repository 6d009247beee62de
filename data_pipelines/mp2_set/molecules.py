"""Write `molecules.json`: the MP2 set's molecules, 4-8 heavy atoms, covering every functional-group
family, none of them a validation or test molecule of any set (embedded, CC set, frontier), so
every held-out molecule stays unseen at every fidelity.

Enumerated with the larger substituents and linkers (foundation.pipelines.chemistry.enumerate,
`large=True`), then chosen by the cost-aware family cover up to `--n` molecules.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from foundation.errors import entry_point
from foundation.files import write_text_atomic

from ..chemistry.cover import candidate, choose, coverage
from ..chemistry.enumerate import enumerate_molecules, smiles_of

HERE = Path(__file__).parent
N_MOLECULES = 320
HEAVY = (4, 8)
HELD_OUT_SOURCES = (("embedded", "plan.json"), ("cc_set", "molecules.json"), ("frontier", "molecules.json"))


def held_out() -> set[str]:
    """Canonical SMILES of every validation and test molecule of the other sets."""
    return smiles_of((HERE.parent / folder / name for folder, name in HELD_OUT_SOURCES),
                     lambda m: m.get("split", "train") != "train", max_heavy=HEAVY[1])


def build(n: int = N_MOLECULES) -> dict:
    skip = held_out()
    pool = [c for c in map(candidate, enumerate_molecules(HEAVY[1], large=True))
            if HEAVY[0] <= c.heavy <= HEAVY[1] and c.smiles not in skip]
    chosen = choose(pool, n)
    return {
        "description": "MP2/cc-pVDZ training molecules, 4-8 heavy atoms, no held-out molecule of any set "
                       "(python -m foundation.pipelines.mp2_set.molecules); the order is the order of choice.",
        "candidates": len(pool), "coverage": coverage(chosen),
        "molecules": [{"name": c.smiles, "smiles": c.smiles, "families": list(c.families), "heavy_atoms": c.heavy,
                       "split": "train"} for c in chosen],
    }


@entry_point
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=N_MOLECULES, help="how many molecules")
    parser.add_argument("--out", type=Path, default=HERE / "molecules.json")
    args = parser.parse_args(argv)
    result = build(args.n)
    write_text_atomic(args.out, json.dumps(result, indent=1) + "\n")
    print(f"{len(result['molecules'])} molecules from {result['candidates']} candidates -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
