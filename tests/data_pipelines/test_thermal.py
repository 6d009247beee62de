"""The thermal sets label training molecules on the frontier's sampler, small molecules first,
under ids of their own, and only training molecules."""

import json

import numpy as np

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
    path, levels, n = build.SETS["cc"]
    molecules = {m["name"]: m for m in build.training_molecules(path)}
    assert len(ours) == len(committed) == n * len(molecules)
    for a, b in zip(ours, committed):
        assert a["id"] == b["id"] and a["levels"] == b["levels"] == levels
        assert np.allclose(a["positions"], b["positions"], atol=1e-6)
    sizes = [molecules[s["molecule"]]["heavy_atoms"] for s in ours]
    first_large = next(i for i, k in enumerate(sizes) if k > build.SMALL)
    assert max(sizes[:first_large]) <= build.SMALL < min(sizes[first_large:])
    assert [s["id"][-4:] for s in ours[:3]] == ["0000"] * 3  # round-robin: conformer 0 of each first


def test_the_mp2_file_starts_as_the_builder_does():
    """The whole MP2 set takes a minute of MD to rebuild; its first molecules' first conformers stand in."""
    path, levels, n = build.SETS["mp2"]
    first = build.training_molecules(path)[:4]
    ours = thermal_structures(first, n, levels, build.prefix("mp2"))[:4]
    for a, b in zip(ours, _committed("mp2")[:4]):
        assert a.id == b["id"] and b["levels"] == levels
        assert np.allclose(a.positions, b["positions"], atol=1e-6)


def test_only_training_molecules_on_thermal_conformers_under_ids_apart_from_their_sets():
    for name, source in (("cc", "cc_set"), ("mp2", "mp2_set")):
        structures = _committed(name)
        path, _, n = build.SETS[name]
        train = {m["name"] for m in json.loads(path.read_text())["molecules"] if m["split"] == "train"}
        assert {s["molecule"] for s in structures} == train and {s["split"] for s in structures} == {"train"}
        assert len(structures) == n * len(train)
        assert all(s["sampling"].startswith("mmff_langevin(") for s in structures)
        own = {json.loads(line)["id"] for line in (build.HERE.parent / source / "labels" / "structures.jsonl").open()}
        assert all(s["id"].startswith(build.prefix(name)) for s in structures) and not own & {s["id"] for s in structures}
