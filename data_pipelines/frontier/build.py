"""Write `labels/structures.jsonl`: thermal conformers of the frontier molecules, each to be labelled
at CCSD(T)/cc-pVDZ, ωB97X/6-31G* and MP2/cc-pVDZ.

Conformers are the ends of independent 1 ps MMFF Langevin runs at 300-600 K from the molecule's
force-field minima (what an MD run at room to elevated temperature visits), written round-robin
(conformer r of every molecule before conformer r+1 of any), so a labelling run stopped early
still holds every molecule.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from foundation.errors import UserError, entry_point

from ..label.conformers import md_conformers
from ..label.levels import get_level
from ..label.plan import stable_seed
from ..label.structures import Structure, refuse_if_labelled, write_structures

HERE = Path(__file__).parent
LEVELS = ["ccsdt_ccpvdz", "wb97x_631gs", "mp2_ccpvdz"]
SEED = 2028
TEMPERATURES = (300.0, 600.0)


def conformers(smiles: str, n: int):
    return md_conformers(smiles, n, seed=stable_seed(SEED, smiles), temperatures=TEMPERATURES)


def thermal_structures(molecules: list[dict], n: int, levels: list[str], prefix: str = "",
                       first: int = 0) -> list[Structure]:
    """Thermal conformers `first`..`n`-1 of each molecule ({name, smiles, split}), round-robin:
    conformer r of every molecule before conformer r+1 of any. `prefix` sets their ids apart from
    another set's structures of the same molecules (shard keys are ids); `first` skips the
    conformers another set already holds (the sampler draws the same sequence for any `n`)."""
    confs = [conformers(m["smiles"], n) for m in molecules]
    return [Structure(id=f"{prefix}{m['name']}/{k:04d}", molecule=m["name"], numbers=c[k].numbers,
                      positions=c[k].positions, sampling=c[k].method, split=m["split"], levels=list(levels))
            for k in range(first, n) for m, c in zip(molecules, confs)]


def build(n: int, molecules_path: Path, out_dir: Path, levels: list[str] = LEVELS) -> int:
    structures = thermal_structures(json.loads(molecules_path.read_text())["molecules"], n, levels)
    write_structures(out_dir, structures, replace=True)
    return len(structures)


@entry_point
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conformers", type=int, default=4, help="thermal conformers per molecule")
    parser.add_argument("--molecules", type=Path, default=HERE / "molecules.json")
    parser.add_argument("--out", type=Path, default=HERE / "labels")
    parser.add_argument("--levels", default=",".join(LEVELS),
                        help=f"levels to label each conformer at, comma-separated (default {','.join(LEVELS)})")
    args = parser.parse_args(argv)
    levels = [name.strip() for name in args.levels.split(",") if name.strip()]
    if not levels:
        raise UserError(f"--levels {args.levels!r}: name at least one level, like ccsdt_ccpvdz")
    for name in levels:
        get_level(name)  # an unknown level: one line, before anything is written
    refuse_if_labelled(args.out)
    print(f"{build(args.conformers, args.molecules, args.out, levels)} structures -> {args.out}/structures.jsonl")
    return 0


if __name__ == "__main__":
    sys.exit(main())
