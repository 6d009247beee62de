"""The scale rehearsal's code on a small synthetic set: its fast shard writer makes shards the
normal reader reads back as valid, self-consistent samples, and the rehearsal itself (real
torchrun, 2 ranks × 2 DataLoader workers, real shards on disk) sees every conformation exactly
once per epoch across ranks and a job restart from a position saved mid-epoch."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # `benchmarks` is not an installed package; `pytest` alone may not add the root
    sys.path.insert(0, str(REPO))

from benchmarks.scale_data import CC, DFT, FREE_ATOM_EV, FORCE_CONSTANT, write_scale_shards  # noqa: E402
from benchmarks.scale_rehearsal import Settings, rehearse  # noqa: E402
from foundation.data.shards.manifest import load_manifest, verify_shards  # noqa: E402
from foundation.data.shards.reader import iter_samples  # noqa: E402


def test_fast_writer_shards_read_back_as_valid_self_consistent_samples(tmp_path):
    shards = write_scale_shards(tmp_path / "a", 300, seed=3, shard_bytes=64 * 2**10)
    again = write_scale_shards(tmp_path / "b", 300, seed=3, shard_bytes=64 * 2**10)
    assert len(shards) > 1 and [s.sha256 for s in shards] == [s.sha256 for s in again]  # deterministic
    manifest = load_manifest(tmp_path / "a")
    assert verify_shards(manifest) == len(shards)  # sha256 in the manifest = the bytes on disk
    samples = list(iter_samples(manifest, "train"))  # reads whole shards: sample counts checked too
    assert [s.source for s in samples] == [f"scale:{i}" for i in range(300)]
    counts = manifest.counts("train")
    assert counts["n_atoms"] == sum(s.n_atoms for s in samples)
    assert counts["fidelities"] == {CC: {"energy": 30, "forces": 0}, DFT: {"energy": 300, "forces": 300}}
    assert set(counts["elements"]) == {int(z) for s in samples for z in s.numbers} == {1, 6, 7, 8}
    for i, s in enumerate(samples):
        s.validate()
        assert 5 <= s.n_atoms <= 30
        assert (CC in s.energies) == (i % 10 == 0)
        # harmonic labels: E = Σ free atoms − 2 eV/atom + ½k|Δr|² and F = −kΔr, so ½k|Δr|² = |F|²/2k
        strain = s.energies[DFT] - sum(FREE_ATOM_EV[int(z)] for z in s.numbers) + 2.0 * s.n_atoms
        assert np.isclose(strain, (s.forces[DFT] ** 2).sum() / (2 * FORCE_CONSTANT), atol=1e-6)


@pytest.mark.integration  # torchrun
def test_rehearsal_sees_each_conformation_once_across_ranks_and_a_mid_epoch_restart(tmp_path):
    settings = Settings(max_atoms=256, shuffle_buffer=50, num_workers=2, check=4, every=0.2)
    figure = rehearse(tmp_path / "work", 1200, tmp_path / "results", "scale_small", settings,
                      shard_bytes=64 * 2**10, ttfb_repeats=0)
    checks = figure["checks"]
    assert checks["coverage"] == {"conformations": 1200, "seen_once": 1200, "missing": 0,
                                  "seen_twice_or_more": 0, "exactly_once": True}
    assert checks["resume"]["restored_equal"] and checks["resume"]["compared_batches_per_rank"] == [4, 4]
    assert checks["resume"]["position_matches_count"]
    per_rank = figure["measured"]["per_rank"]
    assert sum(r["conformations"] for r in per_rank.values()) == 1200 and all(
        r["conformations"] > 0 for r in per_rank.values())
    saved = json.loads((tmp_path / "results" / "scale_small.json").read_text())
    assert saved["name"] == "scale_small" and saved["inputs"]["conformations"] == 1200
    assert (tmp_path / "results" / "scale_small.png").stat().st_size > 0
    assert not (tmp_path / "work").exists()  # the shards are scratch: deleted afterwards
