"""Write `labels/structures.jsonl`: thermal conformers of the CC set's training molecules, each to
be labelled at CCSD(T)/cc-pVDZ and RI-MP2/cc-pVDZ.

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
MOLECULES = HERE.parent / "cc_set" / "molecules.json"
LEVELS = ["ccsdt_ccpvdz", "mp2_ccpvdz_ri"]
SMALL = 4  # heavy atoms
PREFIX = "thermal/"  # the CC set labels the same molecules under ids "<name>/<k>"


def training_molecules(path: Path = MOLECULES) -> list[dict]:
    """The CC set's training molecules, fewest heavy atoms first (ties in file order)."""
    molecules = [m for m in json.loads(path.read_text())["molecules"] if m["split"] == "train"]
    return sorted(molecules, key=lambda m: m["heavy_atoms"])


def build(n: int, out_dir: Path, molecules_path: Path = MOLECULES, levels: list[str] = LEVELS) -> int:
    molecules = training_molecules(molecules_path)
    small = [m for m in molecules if m["heavy_atoms"] <= SMALL]
    large = [m for m in molecules if m["heavy_atoms"] > SMALL]
    structures = [*thermal_structures(small, n, levels, PREFIX), *thermal_structures(large, n, levels, PREFIX)]
    write_structures(out_dir, structures, replace=True)
    return len(structures)


@entry_point
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conformers", type=int, default=4, help="thermal conformers per molecule")
    parser.add_argument("--out", type=Path, default=HERE / "labels")
    args = parser.parse_args(argv)
    refuse_if_labelled(args.out)
    print(f"{build(args.conformers, args.out)} structures -> {args.out}/structures.jsonl")
    return 0


if __name__ == "__main__":
    sys.exit(main())
