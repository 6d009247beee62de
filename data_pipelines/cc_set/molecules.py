"""Write `molecules.json`: the new CC molecules, their functional-group families and splits.

Enumerated (foundation.pipelines.chemistry.enumerate), minus every molecule the embedded set already has
CC labels for or holds out (its val/test molecules stay out of training), then chosen by the
cost-aware family cover. Every 8th chosen molecule goes to validation and every 8th (offset 4) to
test, so the new families are also measured on molecules no model trained on.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from foundation.files import write_text_atomic
from foundation.errors import entry_point

from ..chemistry.cover import candidate, choose, coverage
from ..chemistry.enumerate import enumerate_molecules, smiles_of

HERE = Path(__file__).parent
EMBEDDED_PLAN = HERE.parent / "embedded" / "plan.json"
N_MOLECULES = 64


def excluded(plan_path: Path = EMBEDDED_PLAN) -> set[str]:
    """Canonical SMILES the new set must not contain: the embedded set's held-out molecules and
    those it already has CC labels for."""
    return smiles_of([plan_path], lambda m: m.get("split", "train") != "train" or "ccsdt_ccpvdz" in m.get("levels", {}))


def split_of(index: int) -> str:
    return {3: "val", 7: "test"}.get(index % 8, "train")


def build(n: int = N_MOLECULES) -> dict:
    skip = excluded()
    pool = [candidate(s) for s in enumerate_molecules() if s not in skip]
    chosen = choose(pool, n)
    return {
        "description": "New CCSD(T) molecules covering the functional-group families (python -m "
                       "foundation.pipelines.cc_set.molecules); the order is the order of choice.",
        "candidates": len(pool),
        "coverage": coverage(chosen),
        "molecules": [{"name": c.smiles, "smiles": c.smiles, "families": list(c.families), "heavy_atoms": c.heavy,
                       "relative_cost": round(c.cost, 4), "split": split_of(k)} for k, c in enumerate(chosen)],
    }


@entry_point
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=N_MOLECULES, help="how many molecules")
    parser.add_argument("--out", type=Path, default=HERE / "molecules.json")
    args = parser.parse_args(argv)
    result = build(args.n)
    write_text_atomic(args.out, json.dumps(result, indent=1) + "\n")
    short = [f for f, k in result["coverage"].items() if k < 2]
    print(f"{len(result['molecules'])} molecules from {result['candidates']} candidates -> {args.out}"
          + (f"; families covered fewer than twice: {short}" if short else "; every family covered at least twice"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
