"""Plan CCSD(T) on frontier-size structures of the MP2 set, where the committee doubts most.

    python -m foundation.pipelines.mp2_set.cc_picks           # adds ccsdt_ccpvdz to the picks
    foundation data label --out data_pipelines/mp2_set/labels --workers 2

The CC set holds 2-5 heavy atoms, so a transfer learns nothing about CC at the sizes users run.
These picks are training CC labels at 5-7 heavy atoms on structures that also carry an MP2 label
(the same geometry, the same folder), so a model can learn CCSD(T) − MP2 where it matters:
`--molecules` molecules of the MP2 set (none a held-out molecule of any set), first one per
functional-group family not yet covered, then by the committee's spread; of each, the
`--per-molecule` structures the committee disagreed on most (the MP2 set's first picks). The
labeller meets them in the MP2 set's round-robin order, so a partial run covers every molecule.
A CCSD(T)/cc-pVDZ energy costs minutes here (`COST_SECONDS`, measured on the frontier set): the
plan says what it will cost before anything runs. Running it twice changes nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from foundation.errors import entry_point
from foundation.files import write_text_atomic

from ..label.structures import read_structures, write_structures

HERE = Path(__file__).parent
LEVEL = "ccsdt_ccpvdz"
HEAVY = (5, 7)
N_MOLECULES = 34
PER_MOLECULE = 3
# one core, a quiet machine (frontier set, 2026-12): CCSD(T)/cc-pVDZ energy by heavy atoms
COST_SECONDS = {5: 150.0, 6: 450.0, 7: 900.0}


def choose_molecules(molecules: list[dict], spread: dict[str, float], n: int, heavy=HEAVY) -> list[dict]:
    """`n` molecules with heavy atoms in `heavy`: one per uncovered family first, then by spread
    (each pass in descending spread, so the committee's doubt breaks every tie)."""
    pool = sorted((m for m in molecules if heavy[0] <= m["heavy_atoms"] <= heavy[1]),
                  key=lambda m: -spread.get(m["name"], 0.0))
    chosen, covered = [], set()
    for m in pool:
        if len(chosen) < n and set(m["families"]) - covered:
            chosen.append(m)
            covered |= set(m["families"])
    chosen += [m for m in pool if m not in chosen][: n - len(chosen)]
    return chosen


def plan(folder: Path = HERE / "labels", n: int = N_MOLECULES, per_molecule: int = PER_MOLECULE) -> dict:
    molecules = json.loads((HERE / "molecules.json").read_text())["molecules"]
    selection = {r["name"]: r for r in json.loads((HERE / "selection.json").read_text())["molecules"]}
    spread = {name: max(r["spread_ev_per_atom"][p] for p in r["picks"]) for name, r in selection.items()}
    chosen = choose_molecules(molecules, spread, n)
    ids = {f"{m['name']}/{c:04d}": m["heavy_atoms"] for m in chosen for c in selection[m["name"]]["picks"][:per_molecule]}
    structures = read_structures(folder)
    missing = set(ids) - {s.id for s in structures}
    if missing:
        from foundation.errors import DataError

        raise DataError(f"{folder}: the selection's structure {sorted(missing)[0]} is not in structures.jsonl")
    added = [i for i, s in enumerate(structures) if s.id in ids and LEVEL not in s.levels]
    for i in added:
        structures[i] = dataclasses.replace(structures[i], levels=[*structures[i].levels, LEVEL])
    if added:
        write_structures(folder, structures, replace=True)
    summary = {"level": LEVEL, "molecules": [m["name"] for m in chosen], "structures": sorted(ids),
               "families": sorted({f for m in chosen for f in m["families"]}),
               "by_heavy_atoms": {h: sum(v == h for v in ids.values()) for h in range(HEAVY[0], HEAVY[1] + 1)},
               "estimated_cpu_hours": round(sum(COST_SECONDS[h] for h in ids.values()) / 3600, 1)}
    write_text_atomic(HERE / "cc_picks.json", json.dumps(summary, indent=1) + "\n")
    return summary


@entry_point
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--molecules", type=int, default=N_MOLECULES)
    parser.add_argument("--per-molecule", type=int, default=PER_MOLECULE)
    args = parser.parse_args(argv)
    s = plan(n=args.molecules, per_molecule=args.per_molecule)
    print(f"{len(s['structures'])} structures of {len(s['molecules'])} molecules ({s['by_heavy_atoms']} by heavy "
          f"atoms, {len(s['families'])} families) get {LEVEL}: ~{s['estimated_cpu_hours']} CPU-hours")
    return 0


if __name__ == "__main__":
    sys.exit(main())
