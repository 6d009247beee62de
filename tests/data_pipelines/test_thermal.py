"""The thermal sets label training molecules on the frontier's sampler, small molecules first,
under ids of their own, and only training molecules."""

import json

import numpy as np
import pytest

from foundation.errors import UserError
from foundation.pipelines.thermal import build
from foundation.pipelines.frontier.build import thermal_structures


def _committed(name):
    return [json.loads(line) for line in (build.HERE / name / "labels" / "structures.jsonl").read_text().splitlines()]


def test_the_cc_file_is_the_builders_and_puts_small_molecules_first(tmp_path):
    """The committed structures.jsonl is what build() writes (deterministic, so labels stay attached):
    every conformer of the molecules of up to SMALL heavy atoms before any larger one, round-robin."""
    build.build("cc", tmp_path)
    ours = [json.loads(line) for line in (tmp_path / "structures.jsonl").read_text().splitlines()]
    committed = _committed("cc")
    spec = build.SETS["cc"]
    molecules = {m["name"]: m for m in build.training_molecules(spec.molecules)}
    assert len(ours) == len(committed) == spec.conformers * len(molecules)
    for a, b in zip(ours, committed):
        assert a["id"] == b["id"] and a["levels"] == b["levels"] == spec.levels
        assert np.allclose(a["positions"], b["positions"], atol=1e-6)
    sizes = [molecules[s["molecule"]]["heavy_atoms"] for s in ours]
    first_large = next(i for i, k in enumerate(sizes) if k > build.SMALL)
    assert max(sizes[:first_large]) <= build.SMALL < min(sizes[first_large:])
    assert [s["id"][-4:] for s in ours[:3]] == ["0000"] * 3  # round-robin: conformer 0 of each first


def test_the_mp2_file_starts_as_the_builder_does():
    """The whole MP2 set takes a minute of MD to rebuild; its first molecules' first conformers stand in."""
    spec = build.SETS["mp2"]
    first = build.training_molecules(spec.molecules)[:4]
    ours = thermal_structures(first, spec.conformers, spec.levels, build.prefix("mp2"))[:4]
    for a, b in zip(ours, _committed("mp2")[:4]):
        assert a.id == b["id"] and b["levels"] == spec.levels
        assert np.allclose(a.positions, b["positions"], atol=1e-6)


def test_mp2cc_takes_the_conformer_after_the_mp2_sets_and_stops_at_six_heavy_atoms():
    """One new conformer (not one thermal/mp2 holds) of each MP2-rung training molecule of up to 6
    heavy atoms, CCSD(T) with an RI-MP2 partner, smallest first; the committed file is the builder's."""
    spec, committed = build.SETS["mp2cc"], _committed("mp2cc")
    molecules = build.training_molecules(spec.molecules, spec.max_heavy_atoms)
    assert [s["molecule"] for s in committed] == [m["name"] for m in molecules]
    assert {m["heavy_atoms"] for m in molecules} == {4, 5, 6}
    assert all(s["id"].endswith("/0003") and s["levels"] == ["ccsdt_ccpvdz", "mp2_ccpvdz_ri"] for s in committed)
    ours = thermal_structures(molecules[:2], spec.conformers, spec.levels, build.prefix("mp2cc"), spec.first)
    mp2 = {s["id"]: s for s in _committed("mp2")}
    for a, b in zip(ours, committed[:2]):
        assert a.id == b["id"] and np.allclose(a.positions, b["positions"], atol=1e-6)
        for k in range(spec.first):  # the MP2 set's conformers of the same molecule are other geometries
            other = mp2[f"{build.prefix('mp2')}{a.molecule}/{k:04d}"]
            assert np.abs(np.asarray(other["positions"]) - a.positions).max() > 0.1


def test_a_set_asked_for_no_conformers_of_its_own_is_refused(tmp_path):
    with pytest.raises(UserError, match="starts at conformer 3"):
        build.build("mp2cc", tmp_path, n=3)
    assert not (tmp_path / "structures.jsonl").exists()


def test_only_training_molecules_on_thermal_conformers_under_ids_apart_from_their_sets():
    for name, source in (("cc", "cc_set"), ("mp2", "mp2_set"), ("mp2cc", "mp2_set")):
        structures = _committed(name)
        spec = build.SETS[name]
        train = {m["name"] for m in build.training_molecules(spec.molecules, spec.max_heavy_atoms)}
        assert {s["molecule"] for s in structures} == train and {s["split"] for s in structures} == {"train"}
        assert len(structures) == (spec.conformers - spec.first) * len(train)
        assert all(s["sampling"].startswith("mmff_langevin(") for s in structures)
        own = {json.loads(line)["id"] for line in (build.HERE.parent / source / "labels" / "structures.jsonl").open()}
        assert all(s["id"].startswith(build.prefix(name)) for s in structures) and not own & {s["id"] for s in structures}


def test_rings_are_new_to_every_other_set_and_the_committed_file_is_the_builders(tmp_path):
    """Hand-picked small heteroaromatic rings and nitriles, training molecules none of the other sets
    holds (canonical SMILES, whatever the split: validation and test molecules above all)."""
    from foundation.pipelines.chemistry.enumerate import canonical, smiles_of

    spec = build.SETS["rings"]
    molecules = build.training_molecules(spec.molecules)
    root = build.HERE.parent
    others = smiles_of([root / "embedded" / "plan.json", *(root / f / "molecules.json" for f in (
        "cc_set", "mp2_set", "frontier", "adapt_eval", "small_val"))], max_heavy=99)
    assert len(molecules) == 16 and all(m["split"] == "train" for m in molecules)
    assert {m["heavy_atoms"] for m in molecules} == {4, 5, 6}
    assert not {canonical(m["smiles"], 99) for m in molecules} & others
    build.build("rings", tmp_path)
    ours = [json.loads(line) for line in (tmp_path / "structures.jsonl").read_text().splitlines()]
    committed = _committed("rings")
    assert len(ours) == len(committed) == 4 * len(molecules)
    for a, b in zip(ours, committed):
        assert a["id"] == b["id"] and a["id"].startswith("thermal-rings/")
        assert np.allclose(a["positions"], b["positions"], atol=1e-6)
