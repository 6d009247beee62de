"""Closed-shell C/H/N/O molecules of 1–6 heavy atoms, enumerated as a product of carbon
skeletons and functional groups (the systematic cousin of GDB's graph enumeration, restricted to
the chemistry a CC set must cover).

Three generators, each a plain product:
- one group on one substituent: `R–G` for every group template and substituent R;
- two groups on a one- or two-carbon linker: `G1–C–G2`, `G1–C–C–G2` (diols, amino alcohols,
  amino and hydroxy acids, …);
- ring systems as they are: small saturated/strained rings and five- and six-membered
  (hetero)aromatics, plain and with one methyl.
Every product is sanitised by RDKit, stripped of stereo, canonicalised and deduplicated; only
neutral closed-shell molecules of H, C, N, O with 1–6 heavy atoms are kept.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterable
from pathlib import Path

# Substituents R ("" is hydrogen). Alkyl, alkenyl, alkynyl, cyclopropyl.
SUBSTITUENTS = ("", "C", "CC", "CCC", "C(C)C", "C=C", "CC=C", "C#C", "C1CC1")
# Group templates: {R} the substituent, {S} a second substituent (methyl or hydrogen).
GROUPS = (
    "{R}O", "{R}O{S}", "{R}C=O", "{R}C(=O){S}", "{R}C(=O)O", "{R}C(=O)O{S}", "{R}OC(=O){S}",
    "{R}C(=O)N", "{R}C(=O)N{S}", "{R}NC(=O){S}", "{R}NC(N)=O", "{R}OC(N)=O", "{R}N", "{R}N{S}",
    "{R}C=N", "{R}C=N{S}", "{R}C#N", "{R}[N+](=O)[O-]", "{R}N=O", "{R}C=NO", "{R}C({S})=NO",
    "{R}C=CC=O", "{R}C=CC=C", "{R}C(=C)C=O",
)
SECOND = ("", "C")
# Groups that can sit on either end of a linker (written as they bond to carbon).
ENDS = ("O", "N", "C(=O)O", "C=O", "C#N", "OC", "C(N)=O", "C=C")
LINKERS = ("C", "CC", "C(C)", "CC(C)")
RINGS = ("C1CC1", "C1CCC1", "C1CO1", "C1CN1", "C1COC1", "C1CCO1", "O=C1CC1", "O=C1CCC1", "C1=CC1",
         "c1ccccc1", "c1ccncc1", "c1cnccn1", "c1ncncn1", "c1cc[nH]c1", "c1ccoc1", "c1c[nH]cn1",
         "c1cocn1", "c1cnoc1", "c1cn[nH]c1", "c1ocnn1", "c1nnc[nH]1", "O=c1cc[nH]cc1", "O=c1cccc[nH]1")
# Tautomers and groups nobody meets in a bottle (ynols, ynamines, enols, primary/secondary
# enamines, gem-diols, acetals, aminals, heteroatom-bound nitroso): left out, not labelled at CC cost.
UNSTABLE = ("[CX2]#[CX2]-[!#6;!#1]", "[CX3]=[CX3]-[OX2H1]", "[CX3]=[CX3]-[NX3;H1,H2]",
            "[CX4]([OX2,NX3])[OX2,NX3]", "[!#6]-[NX2]=[OX1]", "[CX3]=[CX3]-[NX2]=[OX1]")
MAX_HEAVY = 6
ELEMENTS = {1, 6, 7, 8}
# For sets of larger molecules (up to 8 heavy atoms, the MP2 rung): longer, branched and cyclic
# substituents, longer linkers and a para-phenylene one.
LARGE_SUBSTITUENTS = ("CCCC", "CC(C)C", "C(C)(C)C", "CCC=C", "CC1CC1", "C1CCC1", "C1CCCC1", "c1ccccc1")
LARGE_LINKERS = ("CCC", "CCCC", "C(C)C", "CC(C)C", "c1ccc(cc1)")


def raw_products(large: bool = False) -> list[str]:
    """Every SMILES the three generators write, before sanitising (duplicates included); `large`
    adds the longer substituents and linkers."""
    substituents = SUBSTITUENTS + (LARGE_SUBSTITUENTS if large else ())
    linkers = LINKERS + (LARGE_LINKERS if large else ())
    out = [g.format(R=r, S=s) for g, r, s in itertools.product(GROUPS, substituents, SECOND)]
    out += [f"{a}{link}{b}" for a, link, b in itertools.product(ENDS, linkers, ENDS)]
    out += list(RINGS) + [f"C{r}" for r in RINGS if not r.startswith("O=")]
    if large:
        out += [f"CC{r}" for r in RINGS if not r.startswith("O=")] + [f"C{r}" for r in RINGS if r.startswith("c")]
    return out


def canonical(smiles: str, max_heavy: int = MAX_HEAVY) -> str | None:
    """RDKit's canonical SMILES without stereo, or None unless the molecule is a neutral
    closed-shell H/C/N/O molecule of 1..max_heavy heavy atoms."""
    from rdkit import Chem, RDLogger

    RDLogger.DisableLog("rdApp.*")
    mol = Chem.MolFromSmiles(smiles)
    if mol is None or not 1 <= mol.GetNumHeavyAtoms() <= max_heavy:
        return None
    if Chem.GetFormalCharge(mol) != 0 or any(a.GetNumRadicalElectrons() for a in mol.GetAtoms()):
        return None
    if any(a.GetAtomicNum() not in ELEMENTS for a in mol.GetAtoms()) or len(Chem.GetMolFrags(mol)) != 1:
        return None
    if any(mol.HasSubstructMatch(Chem.MolFromSmarts(p)) for p in UNSTABLE):
        return None
    Chem.RemoveStereochemistry(mol)
    return Chem.MolToSmiles(mol)


def smiles_of(files: Iterable[Path], keep: Callable[[dict], bool] = lambda m: True,
              max_heavy: int = MAX_HEAVY) -> set[str]:
    """Canonical SMILES of the molecules `keep` accepts in these files (each with a "molecules"
    list: a plan.json or a set's molecules.json), for keeping one set's molecules out of another.
    A molecule `canonical` refuses is kept as written: nothing the enumerator makes can equal it."""
    molecules = (m for f in files for m in json.loads(Path(f).read_text())["molecules"] if keep(m))
    return {canonical(m["smiles"], max_heavy) or m["smiles"] for m in molecules}


def enumerate_molecules(max_heavy: int = MAX_HEAVY, large: bool = False) -> list[str]:
    """The distinct canonical SMILES of the product, sorted."""
    return sorted({c for s in raw_products(large) if (c := canonical(s, max_heavy))})
