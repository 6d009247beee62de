"""The chemistry-covering molecule list: families by SMARTS, the enumeration, the family cover."""

import json

import pytest
from rdkit import Chem

from foundation.pipelines.chemistry.cover import candidate, choose, coverage
from foundation.pipelines.chemistry.enumerate import canonical, enumerate_molecules, smiles_of
from foundation.pipelines.chemistry.families import FAMILIES, families_of

EXAMPLES = {
    "alcohol": "CCO", "ether": "COC", "aldehyde": "CC=O", "ketone": "CC(C)=O", "acid": "CC(=O)O",
    "ester": "CC(=O)OC", "amide": "CC(N)=O", "urea_carbamate": "NC(N)=O", "amine": "CCN", "imine": "CC=NC",
    "nitrile": "CC#N", "nitro_nitroso": "C[N+](=O)[O-]", "oxime": "CC=NO", "aromatic": "c1ccccc1",
    "heteroaromatic": "c1ccoc1", "six_ring_aromatic": "c1ccncc1", "enone": "C=CC=O", "diene": "C=CC=C",
    "strained_ring": "C1CC1", "amino_acid": "NCC(=O)O", "hydroxy_acid": "OCC(=O)O", "diol": "OCCO",
    "amino_alcohol": "NCCO",
}


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_has_a_recognised_example(family):
    assert family in families_of(Chem.MolFromSmiles(EXAMPLES[family]))


@pytest.mark.parametrize("smiles, unwanted", [
    ("CC(=O)OC", "ether"), ("CC(N)=O", "amine"), ("NC(N)=O", "amide"), ("CC=NO", "imine"), ("c1ccoc1", "ether"),
])
def test_carbonyl_and_ring_families_exclude_their_look_alikes(smiles, unwanted):
    assert unwanted not in families_of(Chem.MolFromSmiles(smiles))


def test_enumeration_keeps_only_neutral_closed_shell_chno_of_one_to_six_heavy_atoms():
    molecules = enumerate_molecules()
    assert len(molecules) > 150 and molecules == sorted(set(molecules))
    for smi in molecules:
        mol = Chem.MolFromSmiles(smi)
        assert 1 <= mol.GetNumHeavyAtoms() <= 6
        assert {a.GetSymbol() for a in mol.GetAtoms()} <= {"C", "N", "O"}
        assert Chem.GetFormalCharge(mol) == 0 and canonical(smi) == smi


@pytest.mark.parametrize("smiles", ["C#CO", "C=CO", "OCO", "[CH3]", "CCCCCCC", "CS", "[NH4+]"])
def test_enumeration_refuses_unstable_tautomers_radicals_and_out_of_scope_molecules(smiles):
    assert canonical(smiles) is None


def test_cover_reaches_every_family_twice_cheaply_and_deterministically():
    pool = [candidate(s) for s in enumerate_molecules()]
    chosen = choose(pool, 64)
    assert len(chosen) == 64 and len({c.smiles for c in chosen}) == 64
    assert min(coverage(chosen).values()) >= 2
    assert [c.smiles for c in choose(list(reversed(pool)), 64)] == [c.smiles for c in chosen]
    # cost-aware: the chosen set is cheaper than the same number of pool molecules taken by size order
    by_size = sorted(pool, key=lambda c: -c.heavy)[:64]
    assert sum(c.cost for c in chosen) < sum(c.cost for c in by_size)


def test_smiles_of_canonicalises_what_it_keeps_and_keeps_the_rest_as_written(tmp_path):
    f = tmp_path / "molecules.json"
    f.write_text(json.dumps({"molecules": [{"smiles": "OCC", "split": "val"}, {"smiles": "CCN", "split": "train"},
                                           {"smiles": "CCCCCCCO", "split": "val"}]}))
    assert smiles_of([f]) == {"CCO", "CCN", "CCCCCCCO"}  # 7 heavy atoms: past max_heavy, kept as written
    assert smiles_of([f], lambda m: m["split"] == "val", max_heavy=8) == {"CCO", "CCCCCCCO"}
