"""Give every CCSD(T)-labelled structure an MP2 partner label, in its own label folder.

    python -m foundation.pipelines.mp2_set.partners      # adds the level to the folders' plans
    foundation data label --out data_pipelines/cc_set/labels --workers 2
    foundation data label --out data_pipelines/embedded/labels --workers 2

A CC head learned as the MP2 head plus a small correction needs CCSD(T) − MP2 on the same
geometry, so the MP2 energy must sit in the same sample as the CC one: the same structure, the
same folder. This appends `mp2_ccpvdz_ri` to the planned levels of each structure that plans
`ccsdt_ccpvdz` (ids and geometries untouched, so the labels already there stay valid and a
resumed labeller computes only the new tasks). RI-MP2 energies of these 2-5 heavy-atom
structures cost well under a second each. Running it twice changes nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from foundation.errors import entry_point

from ..label.structures import read_structures, write_structures

HERE = Path(__file__).parent
FOLDERS = (HERE.parent / "cc_set" / "labels", HERE.parent / "embedded" / "labels")
PARTNER, OF = "mp2_ccpvdz_ri", "ccsdt_ccpvdz"


def add_partners(folder: Path, level: str = PARTNER, of: str = OF) -> int:
    """Plan `level` for every structure of `folder` that plans `of`; returns how many were added."""
    structures = read_structures(folder)
    added = 0
    for i, s in enumerate(structures):
        if of in s.levels and level not in s.levels:
            structures[i] = dataclasses.replace(s, levels=[*s.levels, level])
            added += 1
    if added:
        write_structures(folder, structures, replace=True)
    return added


@entry_point
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", type=Path, nargs="*", default=list(FOLDERS), help="labeller output folders")
    for folder in parser.parse_args(argv).folders:
        print(f"{folder}: {add_partners(folder)} structures get {PARTNER}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
