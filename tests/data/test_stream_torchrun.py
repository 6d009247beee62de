"""Two `torchrun` ranks × two DataLoader workers read disjoint shards and together see every
sample exactly once per epoch, and resume exactly from a position saved by all ranks (a real
torchrun, gloo backend, real shards on disk)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from foundation.data.shards.manifest import write_manifest
from foundation.data.shards.writer import write_shards
from foundation.pipelines.synthetic import synthetic_samples

pytestmark = pytest.mark.integration  # torchrun

SCRIPT = Path(__file__).with_name("stream_rank_script.py")
N_SHARDS, PER_SHARD, ATOMS = 8, 6, 4  # 4 readers × 2 shards × 6 samples; 3 samples (12 atoms) per batch
BATCHES_PER_EPOCH_PER_RANK = 2 * (2 * PER_SHARD // 3)


def test_ranks_and_workers_cover_each_sample_once_per_epoch_and_resume(tmp_path):
    samples = list(synthetic_samples(N_SHARDS * PER_SHARD, atoms=(ATOMS, ATOMS)))
    write_manifest(tmp_path, write_shards(samples, tmp_path, "train", max_samples_per_shard=PER_SHARD))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(SCRIPT), str(tmp_path), str(tmp_path), str(2 * BATCHES_PER_EPOCH_PER_RANK), str(3 * ATOMS)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]

    def shard_of(sample_id):
        return int(sample_id.split(":")[1]) // PER_SHARD

    every = sorted(s.source for s in samples)
    shard_sets = []
    for epoch in (0, 1):
        part = slice(epoch * BATCHES_PER_EPOCH_PER_RANK, (epoch + 1) * BATCHES_PER_EPOCH_PER_RANK)
        seen = [[s for batch in r["batches"][part] for s in batch] for r in ranks]
        assert sorted(seen[0] + seen[1]) == every  # each sample exactly once in the epoch
        shards = [{shard_of(s) for s in ids} for ids in seen]
        assert not shards[0] & shards[1] and len(shards[0]) == len(shards[1]) == N_SHARDS // 2
        shard_sets.append(shards)
    # workers within a rank read disjoint shards too: batch i comes from worker i % 2
    for r in ranks:
        by_worker = [{shard_of(s) for batch in r["batches"][w:BATCHES_PER_EPOCH_PER_RANK:2] for s in batch}
                     for w in (0, 1)]
        assert not by_worker[0] & by_worker[1] and len(by_worker[0]) == 2
        assert r["resumed_equal"]
        saved = {k: v["batches"] for k, v in r["state"]["ranks"].items()}
        assert saved == {"0": 2 * BATCHES_PER_EPOCH_PER_RANK, "1": 2 * BATCHES_PER_EPOCH_PER_RANK}
    assert shard_sets[0] != shard_sets[1]  # shards are reshuffled across ranks each epoch
