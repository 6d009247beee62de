"""DeepSpeed ZeRO through a real `torchrun` (2 CPU processes, gloo) on the embedded multi-fidelity
shards: the same weights as one process taking the same global batch, and an exact resume from a
checkpoint whose optimiser states are sharded over the ranks.

DeepSpeed JIT-builds its shared-memory all-reduce on first use (about a minute with gcc), cached
in .cache/torch_extensions of the repository (multiproc.env), so a test session pays it once."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
import torch

from foundation.train.checkpoint import list_checkpoints, read_shard
from foundation.train.engines.deepspeed import DeepSpeedConfig

from . import multiproc
from .multiproc import TINY, assert_close, final_state, reference, shard_data

pytest.importorskip("deepspeed")


@pytest.fixture(scope="module")
def zero2_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("zero2")
    common = [*TINY, *shard_data(), f"out_dir={tmp / 'runs'}"]
    multiproc.train([*common, "distributed=deepspeed", "distributed.zero_stage=2", "name=straight"], timeout=500)
    return common, tmp / "runs"


@pytest.mark.integration  # torchrun
def test_zero2_on_two_ranks_equals_one_process_with_the_same_global_batch(zero2_run):
    common, runs = zero2_run
    weights, ema = final_state(runs / "straight")
    ref_weights, ref_ema = reference([*common, "name=reference"])
    assert_close(weights, ref_weights)
    assert_close(ema, ref_ema)


@pytest.mark.integration  # torchrun
def test_zero2_resumes_exactly_from_a_checkpoint_with_sharded_optimiser_states(zero2_run):
    common, runs = zero2_run
    straight, resumed = runs / "straight", runs / "resumed"
    assert sorted(p.name for p in straight.glob("ckpt-00000006*")) == [
        "ckpt-00000006.pt", "ckpt-00000006.rank00000.pt", "ckpt-00000006.rank00001.pt"]
    # Each rank's file holds its own half of the AdamW moments.
    halves = [read_shard(straight, 6, r)["optimizer"]["base_optimizer_state"]["state"] for r in (0, 1)]
    sizes = [sum(s["exp_avg"].numel() for s in h.values()) for h in halves]
    assert abs(sizes[0] - sizes[1]) <= 2 * len(halves[0]) and sum(sizes) >= 7812
    # What a run killed between steps 6 and 12 leaves behind; resume it.
    shutil.copytree(straight, resumed, ignore=shutil.ignore_patterns("ckpt-00000012*", "model.safetensors"))
    assert [s for s, _ in list_checkpoints(resumed)] == [6]
    multiproc.train([*common, "distributed=deepspeed", "distributed.zero_stage=2", "name=resumed", "resume=true"],
                    timeout=500)
    for got, want in zip(final_state(resumed), final_state(straight)):
        for name, value in want.items():
            assert torch.equal(got[name], value), name


@pytest.mark.integration  # torchrun
def test_zero_shards_resumed_on_another_world_size_are_refused_in_one_line(zero2_run):
    common, runs = zero2_run
    done = subprocess.run([sys.executable, "-m", "foundation", "train", *common, "distributed=deepspeed",
                           "distributed.zero_stage=2", "name=straight", "resume=true"], env=multiproc.env(),
                          cwd=multiproc.REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.endswith("ckpt-00000012.pt: written by 2 ranks whose optimiser states are sharded (ZeRO shards "
                         "are not re-split); resume it with 2 ranks, not 1"), done.stderr


@pytest.mark.integration  # torchrun
@pytest.mark.slow
def test_zero1_on_two_ranks_equals_one_process(tmp_path):
    common = [*TINY, *shard_data(), f"out_dir={tmp_path}"]
    multiproc.train([*common, "distributed=deepspeed", "distributed.zero_stage=1", "name=zero1"], timeout=500)
    weights, _ = final_state(tmp_path / "zero1")
    assert_close(weights, reference([*common, "name=reference"])[0])


def test_deepspeed_config_is_checked():
    from foundation.errors import UserError

    with pytest.raises(UserError, match="distributed.zero_stage=3"):
        DeepSpeedConfig(zero_stage=3)
    with pytest.raises(UserError, match="distributed.precision='fp16'"):
        DeepSpeedConfig(precision="fp16")
