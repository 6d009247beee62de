"""Choose the MP2 set's conformers by the committee's disagreement and write `labels/structures.jsonl`.

Every molecule gets `--candidates` conformers (force-field minima, normal-mode samples at
300-1000 K and small random displacements, as the CC set); the committee (ANI-1x's 8 members by
default) scores each by its energy spread per atom and the `--k` it disagrees on most are kept:
where a DFT-trained model is least sure is where a correlated label teaches most. Written in
round-robin order (pick r of every molecule before pick r+1 of any), so a labelling run stopped
early still covers every molecule. Each structure gets an MP2/cc-pVDZ energy (RI-MP2, which moves
relative energies by under 0.01 kcal/mol for a 20-50x lower cost than canonical energy + forces).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from foundation.data import Sample
from foundation.errors import entry_point
from foundation.files import write_text_atomic
from foundation.progress import progress_bar

from ..cc_set.select import candidates, round_robin
from ..label.structures import Structure, refuse_if_labelled, write_structures

HERE = Path(__file__).parent
LEVELS = ["mp2_ccpvdz_ri"]  # the mp2_ccpvdz fidelity by RI-MP2: energies, 20-50x cheaper (levels.mp2_ccpvdz_ri)


def most_disagreed(spread: np.ndarray, k: int) -> list[int]:
    return np.argsort(-spread, kind="stable")[:k].tolist()


def build(model_name: str, n_candidates: int, k: int, molecules_path: Path, out_dir: Path) -> dict:
    import foundation
    from ..active.scores import ensemble_scores

    molecules = json.loads(molecules_path.read_text())["molecules"]
    model = foundation.load_pretrained(model_name, device="cpu")
    confs, chosen, records = [], [], []
    for mol in progress_bar(molecules, desc="sampling and scoring", unit="molecule"):
        cs = candidates(mol["smiles"], n_candidates)
        samples = [Sample(c.numbers, c.positions, molecule=mol["name"]) for c in cs]
        spread = ensemble_scores(model, samples, forces=False).energy_spread_per_atom
        confs.append(cs)
        chosen.append(most_disagreed(spread, k))
        records.append({"name": mol["name"], "picks": chosen[-1],
                        "spread_ev_per_atom": [round(float(s), 6) for s in spread]})
    structures = [Structure(id=f"{molecules[m]['name']}/{c:04d}", molecule=molecules[m]["name"],
                            numbers=confs[m][c].numbers, positions=confs[m][c].positions,
                            sampling=confs[m][c].method, split="train", levels=LEVELS)
                  for m, c in round_robin(chosen)]
    write_structures(out_dir, structures, replace=True)
    selection = {"committee": model_name, "candidates": n_candidates, "k": k, "levels": LEVELS, "molecules": records}
    write_text_atomic(out_dir.parent / "selection.json", json.dumps(selection) + "\n")
    return {"structures": len(structures), "molecules": len(molecules)}


@entry_point
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="ani-1x", help="the committee: an ensemble name, file or URL")
    parser.add_argument("--candidates", type=int, default=24, help="conformers sampled per molecule")
    parser.add_argument("--k", type=int, default=10, help="most-disagreed conformers kept per molecule")
    parser.add_argument("--molecules", type=Path, default=HERE / "molecules.json")
    parser.add_argument("--out", type=Path, default=HERE / "labels")
    args = parser.parse_args(argv)
    refuse_if_labelled(args.out)
    print(build(args.model, args.candidates, args.k, args.molecules, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
