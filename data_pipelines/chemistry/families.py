"""The functional-group families a coupled-cluster training set must cover, as SMARTS.

A molecule belongs to every family one of whose patterns it matches (an amino acid is also an
amine and an acid). `families_of` returns them in the order of `FAMILIES`, which is the order
reports use. The patterns are written for neutral closed-shell C/H/N/O molecules of a few heavy
atoms, with RDKit's aromaticity model; the tests pin one example per family.
"""

from __future__ import annotations

from functools import lru_cache

# family -> SMARTS patterns (any one matches). Carbonyl families exclude each other: an ester is
# not an ether, an amide is not an amine, a urea/carbamate is not an amide.
FAMILIES: dict[str, tuple[str, ...]] = {
    "alcohol": ("[CX4][OX2H1]",),
    "ether": ("[OX2;!a]([#6;!$(C=[O,N])])[#6;!$(C=[O,N])]",),
    "aldehyde": ("[CX3;H1,H2;!$(C[!#6;!#1;!$([OX1]=C)])]=[OX1]",),
    "ketone": ("[#6][CX3](=[OX1])[#6]",),
    "acid": ("[CX3](=[OX1])[OX2H1]",),
    "ester": ("[CX3;!$(C[NX3])](=[OX1])[OX2H0][#6]",),
    "amide": ("[NX3][CX3;!$(C(=O)([NX3])[NX3]);!$(C[OX2])]=[OX1]",),
    "urea_carbamate": ("[NX3][CX3](=[OX1])[NX3]", "[NX3][CX3](=[OX1])[OX2]"),
    "amine": ("[NX3;+0;!a;!$(N~[#7,#8]);!$(N-[#6]=[#7,#8])]-[#6]",),
    "imine": ("[CX3;!a]=[NX2;!a;!$(N~[#7,#8])]",),
    "nitrile": ("[CX2]#[NX1]",),
    "nitro_nitroso": ("[NX3+](=[OX1])[OX1-]", "[#6][NX2]=[OX1]"),
    "oxime": ("[CX3]=[NX2][OX2]",),
    "aromatic": ("[a;r5,r6]",),
    "heteroaromatic": ("[n,o;r5,r6]",),
    "six_ring_aromatic": ("a1aaaaa1",),
    "enone": ("[CX3;!a]=[CX3;!a]-[CX3]=[OX1]",),
    "diene": ("[CX3;!a]=[CX3;!a]-[CX3;!a]=[CX3;!a]",),
    "strained_ring": ("[r3,r4]",),
    "amino_acid": ("[NX3;+0;!$(N-C=O)]-[CX4]-[CX3](=[OX1])[OX2H1]",
                   "[NX3;+0;!$(N-C=O)]-[CX4]-[CX4]-[CX3](=[OX1])[OX2H1]"),
    "hydroxy_acid": ("[OX2H1]-[CX4]-[CX3](=[OX1])[OX2H1]", "[OX2H1]-[CX4]-[CX4]-[CX3](=[OX1])[OX2H1]"),
    "diol": ("[OX2H1][CX4].[OX2H1][CX4]",),
    "amino_alcohol": ("[NX3;+0;!$(N-C=O);!$(N~[#7,#8])]-[CX4].[OX2H1][CX4]",),
}


@lru_cache(maxsize=None)
def _patterns():
    from rdkit import Chem

    return {name: [Chem.MolFromSmarts(s) for s in smarts] for name, smarts in FAMILIES.items()}


def families_of(mol) -> list[str]:
    """The families of an RDKit molecule (without explicit hydrogens), in `FAMILIES` order.
    A pattern with two dot-separated parts (diol, amino alcohol) needs two distinct groups."""
    return [name for name, patterns in _patterns().items() if any(mol.HasSubstructMatch(p) for p in patterns)]
