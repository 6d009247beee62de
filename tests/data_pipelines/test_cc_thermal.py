"""The thermal CC set labels the CC set's training molecules on the frontier's sampler, small
molecules first, under ids of its own, and only training molecules."""

import json

import numpy as np

from foundation.pipelines.cc_thermal import build


def test_structures_file_matches_the_builder_and_puts_small_molecules_first(tmp_path):
    """The committed structures.jsonl is what build() writes (deterministic, so labels stay attached):
    every conformer of the molecules of up to SMALL heavy atoms before any larger one, round-robin."""
    build.build(4, tmp_path)
    ours = [json.loads(line) for line in (tmp_path / "structures.jsonl").read_text().splitlines()]
    committed = [json.loads(line) for line in (build.HERE / "labels" / "structures.jsonl").read_text().splitlines()]
    molecules = {m["name"]: m for m in build.training_molecules()}
    assert len(ours) == len(committed) == 4 * len(molecules)
    for a, b in zip(ours, committed):
        assert a["id"] == b["id"] and a["levels"] == b["levels"] == build.LEVELS
        assert np.allclose(a["positions"], b["positions"], atol=1e-6)
    sizes = [molecules[s["molecule"]]["heavy_atoms"] for s in ours]
    first_large = next(i for i, n in enumerate(sizes) if n > build.SMALL)
    assert max(sizes[:first_large]) <= build.SMALL < min(sizes[first_large:])
    assert [s["id"][-4:] for s in ours[:3]] == ["0000"] * 3  # round-robin: conformer 0 of each first


def test_only_training_molecules_on_thermal_conformers_under_ids_apart_from_the_cc_sets():
    structures = [json.loads(line) for line in (build.HERE / "labels" / "structures.jsonl").read_text().splitlines()]
    cc_set = json.loads(build.MOLECULES.read_text())["molecules"]
    train = {m["name"] for m in cc_set if m["split"] == "train"}
    assert {s["molecule"] for s in structures} == train and {s["split"] for s in structures} == {"train"}
    assert all(s["sampling"].startswith("mmff_langevin(") for s in structures)
    cc_ids = {json.loads(line)["id"] for line in (build.HERE.parent / "cc_set" / "labels" / "structures.jsonl").open()}
    assert all(s["id"].startswith(build.PREFIX) for s in structures) and not cc_ids & {s["id"] for s in structures}
