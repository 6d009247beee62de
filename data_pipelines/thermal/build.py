"""Write `<set>/labels/structures.jsonl`: thermal conformers of a training set's molecules.

Molecules of up to `SMALL` heavy atoms come first (every conformer of theirs, round-robin), then
the larger ones (round-robin again): a CCSD(T) energy costs seconds at 3-4 heavy atoms and minutes
at 5-6, so a labelling run stopped early holds many molecules' thermal conformers rather than a
few large ones'. The conformers are the frontier's (`foundation.pipelines.frontier.build`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from foundation.errors import entry_point

from ..frontier.build import thermal_structures
from ..label.structures import refuse_if_labelled, write_structures

HERE = Path(__file__).parent
# set -> (its molecules, the levels each conformer gets, conformers per molecule)
SETS = {
    "cc": (HERE.parent / "cc_set" / "molecules.json", ["ccsdt_ccpvdz", "mp2_ccpvdz_ri"], 4),
    "mp2": (HERE.parent / "mp2_set" / "molecules.json", ["mp2_ccpvdz_ri"], 3),
}
SMALL = 4  # heavy atoms


def training_molecules(path: Path) -> list[dict]:
    """The training molecules of a molecules.json, fewest heavy atoms first (ties in file order)."""
    molecules = [m for m in json.loads(path.read_text())["molecules"] if m["split"] == "train"]
    return sorted(molecules, key=lambda m: m["heavy_atoms"])


def prefix(name: str) -> str:
    """Ids apart from the source set's own structures of the same molecules (shard keys are ids)."""
    return f"thermal-{name}/"


def build(name: str, out_dir: Path, n: int | None = None) -> int:
    path, levels, default_n = SETS[name]
    molecules, n = training_molecules(path), n or default_n
    small = [m for m in molecules if m["heavy_atoms"] <= SMALL]
    large = [m for m in molecules if m["heavy_atoms"] > SMALL]
    structures = [*thermal_structures(small, n, levels, prefix(name)),
                  *thermal_structures(large, n, levels, prefix(name))]
    write_structures(out_dir, structures, replace=True)
    return len(structures)


@entry_point
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", dest="name", choices=sorted(SETS), required=True)
    parser.add_argument("--conformers", type=int, help="thermal conformers per molecule (default: the set's)")
    parser.add_argument("--out", type=Path, help="default: data_pipelines/thermal/<set>/labels")
    args = parser.parse_args(argv)
    out = args.out or HERE / args.name / "labels"
    refuse_if_labelled(out)
    print(f"{build(args.name, out, args.conformers)} structures -> {out}/structures.jsonl")
    return 0


if __name__ == "__main__":
    sys.exit(main())
