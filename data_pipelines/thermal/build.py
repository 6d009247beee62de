"""Write `<set>/labels/structures.jsonl`: thermal conformers of a training set's molecules.

Sets: `cc` (the CC set's molecules, CCSD(T) with an RI-MP2 partner), `mp2` (the MP2 rung's,
RI-MP2), `mp2cc` (one more conformer of each MP2-rung molecule of up to 6 heavy atoms) and `rings`
(small heteroaromatic rings and nitriles that no other set holds, `rings/molecules.json`); the last
two CCSD(T) with an RI-MP2 partner. Molecules of up to `SMALL` heavy atoms come first (every
conformer of theirs, round-robin), then the larger ones (round-robin again): a CCSD(T) energy
costs seconds at 3-4 heavy atoms and minutes at 5-6, so a labelling run stopped early holds many
molecules' thermal conformers rather than a few large ones'. The conformers are the frontier's
(`foundation.pipelines.frontier.build`).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from foundation.errors import UserError, entry_point

from ..frontier.build import thermal_structures
from ..label.structures import refuse_if_labelled, write_structures

HERE = Path(__file__).parent


@dataclass(frozen=True)
class ThermalSet:
    molecules: Path  # a molecules.json; its training molecules are used
    levels: list[str]  # what each conformer is labelled at
    conformers: int  # per molecule
    first: int = 0  # conformers 0..first-1 belong to another set (the sampler's sequence is shared)
    max_heavy_atoms: int | None = None


MP2_SET = HERE.parent / "mp2_set" / "molecules.json"
SETS = {
    "cc": ThermalSet(HERE.parent / "cc_set" / "molecules.json", ["ccsdt_ccpvdz", "mp2_ccpvdz_ri"], 4),
    "mp2": ThermalSet(MP2_SET, ["mp2_ccpvdz_ri"], 3),
    # CCSD(T) at the frontier's sizes in the frontier's regime: a fourth conformer of each MP2-rung
    # molecule of up to 6 heavy atoms (its first three are thermal/mp2's), one per molecule so the
    # CPU buys chemistry, not more conformers of few molecules
    "mp2cc": ThermalSet(MP2_SET, ["ccsdt_ccpvdz", "mp2_ccpvdz_ri"], 4, first=3, max_heavy_atoms=6),
    # small heteroaromatic rings and nitriles, hand-picked from what no set held: where a weaker
    # L2-SP pull loses on the small validation molecules (docs/frontier.md, eighth session)
    "rings": ThermalSet(HERE / "rings" / "molecules.json", ["ccsdt_ccpvdz", "mp2_ccpvdz_ri"], 4),
}
SMALL = 4  # heavy atoms


def training_molecules(path: Path, max_heavy_atoms: int | None = None) -> list[dict]:
    """The training molecules of a molecules.json, fewest heavy atoms first (ties in file order)."""
    molecules = [m for m in json.loads(path.read_text())["molecules"] if m["split"] == "train"
                 and (max_heavy_atoms is None or m["heavy_atoms"] <= max_heavy_atoms)]
    return sorted(molecules, key=lambda m: m["heavy_atoms"])


def prefix(name: str) -> str:
    """Ids apart from the source set's own structures of the same molecules (shard keys are ids)."""
    return f"thermal-{name}/"


def build(name: str, out_dir: Path, n: int | None = None) -> int:
    spec = SETS[name]
    molecules, n = training_molecules(spec.molecules, spec.max_heavy_atoms), n or spec.conformers
    if n <= spec.first:
        raise UserError(f"--conformers {n}: set {name!r} starts at conformer {spec.first}; ask for more")
    small = [m for m in molecules if m["heavy_atoms"] <= SMALL]
    large = [m for m in molecules if m["heavy_atoms"] > SMALL]
    structures = [*thermal_structures(small, n, spec.levels, prefix(name), spec.first),
                  *thermal_structures(large, n, spec.levels, prefix(name), spec.first)]
    write_structures(out_dir, structures, replace=True)
    return len(structures)


@entry_point
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", dest="name", choices=sorted(SETS), required=True)
    parser.add_argument("--conformers", type=int,
                        help="thermal conformers per molecule, counting any another set holds (default: the set's)")
    parser.add_argument("--out", type=Path, help="default: data_pipelines/thermal/<set>/labels")
    args = parser.parse_args(argv)
    out = args.out or HERE / args.name / "labels"
    refuse_if_labelled(out)
    print(f"{build(args.name, out, args.conformers)} structures -> {out}/structures.jsonl")
    return 0


if __name__ == "__main__":
    sys.exit(main())
