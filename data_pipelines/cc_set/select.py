"""Choose which conformers of the new molecules get CCSD(T) labels, two ways at once.

Every molecule gets `--candidates` conformers (MMFF minima, then normal-mode samples at 300–1000 K
and small random displacements, as the embedded set). For a training molecule the committee (the
8 members of ANI-1x by default) scores each candidate by its energy spread per atom; the `--k`
candidates it disagrees on most are the *active* picks and `--k` others drawn at random (seeded
by the molecule) are the *random* picks. Both sets are labelled, so a model trained on either can
be compared with the same number of labels on the same test molecules. Validation and test
molecules are evaluation data: `2 k` random picks, no committee.

The structures are written in round-robin order (pick r of every molecule before pick r+1 of any),
so a labelling run stopped early still holds a balanced set. Each labelled conformer gets both
CCSD(T)/cc-pVDZ and ωB97X/6-31G* (energy and forces).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from foundation.files import write_text_atomic
from foundation.errors import entry_point
from foundation.data import Sample

from ..label.conformers import sample_conformers
from ..label.plan import stable_seed
from ..label.structures import Structure, refuse_if_labelled, write_structures

HERE = Path(__file__).parent
LEVELS = ["ccsdt_ccpvdz", "wb97x_631gs"]
SEED = 2027


def candidates(smiles: str, n: int, seed: int = SEED):
    return sample_conformers(smiles, n, seed=stable_seed(seed, smiles), temperatures=(300.0, 1000.0))


def picks(name: str, n: int, spread: np.ndarray | None, k: int) -> dict[str, list[int]]:
    """{"active": [...], "random": [...]}: candidate indices, most disagreed first for active;
    without a spread (an evaluation molecule) 2 k random ones."""
    rng = np.random.default_rng(stable_seed(SEED, "random:" + name))
    if spread is None:
        return {"active": [], "random": sorted(rng.permutation(n)[: 2 * k].tolist())}
    return {"active": np.argsort(-spread, kind="stable")[:k].tolist(),
            "random": sorted(rng.permutation(n)[:k].tolist())}


def round_robin(per_molecule: list[list[int]]) -> list[tuple[int, int]]:
    """(molecule index, candidate index) pairs, pick r of every molecule before pick r+1."""
    out, seen = [], set()
    for r in range(max(map(len, per_molecule), default=0)):
        for m, order in enumerate(per_molecule):
            if r < len(order) and (m, order[r]) not in seen:
                seen.add((m, order[r]))
                out.append((m, order[r]))
    return out


def interleave(a: list[int], b: list[int]) -> list[int]:
    out = []
    for x, y in zip(a, b):
        out += [x, y]
    return out + a[len(b):] + b[len(a):]


def build(model_name: str, n_candidates: int, k: int, molecules_path: Path, out_dir: Path) -> dict:
    import foundation
    from ..active.scores import ensemble_scores

    molecules = json.loads(molecules_path.read_text())["molecules"]
    model = foundation.load_pretrained(model_name, device="cpu")
    confs, chosen, records = [], [], []
    for mol in molecules:
        cs = candidates(mol["smiles"], n_candidates)
        spread = None
        if mol["split"] == "train":
            samples = [Sample(c.numbers, c.positions, molecule=mol["name"]) for c in cs]
            spread = ensemble_scores(model, samples, forces=False).energy_spread_per_atom
        p = picks(mol["name"], len(cs), spread, k)
        confs.append(cs)
        chosen.append(interleave(p["active"], p["random"]))
        records.append({"name": mol["name"], "split": mol["split"], **p,
                        "spread_ev_per_atom": None if spread is None else [round(float(s), 6) for s in spread],
                        "sampling": [c.method for c in cs]})
    structures = [Structure(id=f"{molecules[m]['name']}/{c:04d}", molecule=molecules[m]["name"],
                            numbers=confs[m][c].numbers, positions=confs[m][c].positions,
                            sampling=confs[m][c].method, split=molecules[m]["split"], levels=LEVELS)
                  for m, c in round_robin(chosen)]
    write_structures(out_dir, structures, replace=True)
    selection = {"committee": model_name, "committee_sha256": committee_sha256(model_name), "candidates": n_candidates,
                 "k": k, "seed": SEED, "levels": LEVELS, "molecules": records}
    write_text_atomic(out_dir.parent / "selection.json", json.dumps(selection, indent=1) + "\n")
    return {"structures": len(structures), "molecules": len(molecules)}


def committee_sha256(name: str) -> str:
    """The committee file's sha256 (a registry name's from its entry, verified when it was fetched)."""
    from foundation.hub import file_sha256, get_entry, is_registered

    if is_registered(name):
        return get_entry(name).sha256
    return file_sha256(Path(name))


@entry_point
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="ani-1x", help="the committee: an ensemble name, file or URL")
    parser.add_argument("--candidates", type=int, default=12, help="conformers sampled per molecule")
    parser.add_argument("--k", type=int, default=4, help="active picks and random picks per training molecule")
    parser.add_argument("--molecules", type=Path, default=HERE / "molecules.json")
    parser.add_argument("--out", type=Path, default=HERE / "labels")
    parser.add_argument("--force", action="store_true", help="rewrite structures.jsonl even if labelling started")
    args = parser.parse_args(argv)
    if not args.force:
        refuse_if_labelled(args.out, "pass --force to rewrite structures.jsonl (finished labels keep their ids)")
    print(build(args.model, args.candidates, args.k, args.molecules, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
