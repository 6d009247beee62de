"""Ranks whose batches held different fidelities log their loss parts without a collective
mismatch (the embedded data's MP2-only shards beside mixed ones aborted a 2-rank run with gloo's
"Received data size doesn't match expected size")."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

RANK = """
import json
import torch.distributed as dist
from foundation.train.engines.ddp import DDPConfig, DDPEngine
engine = DDPEngine(DDPConfig(name="ddp"), device="cpu")  # the rank and rendezvous from the environment
rank = engine.rank
mine = {"loss": 1.0 + rank, "loss/wb97x_631gs": 2.0} if rank == 0 else {"loss": 2.0, "loss/mp2_ccpvdz": 4.0}
print(json.dumps([engine.all_reduce(mine, "mean", uneven=True), engine.all_reduce(mine, "max", uneven=True),
                  engine.all_reduce({"x": float(rank)}, "sum")]))
dist.destroy_process_group()
"""


@pytest.mark.integration  # two processes, gloo on 127.0.0.1
def test_uneven_keys_come_back_as_their_union_each_a_mean_over_the_ranks_that_hold_it():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2",
           "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    procs = [subprocess.Popen([sys.executable, "-c", RANK], env={**env, "RANK": str(r), "LOCAL_RANK": str(r)},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for r in (0, 1)]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in outputs]
    for out, _ in outputs:
        mean, biggest, summed = json.loads(out.strip().splitlines()[-1])
        assert mean == {"loss": 1.5, "loss/mp2_ccpvdz": 4.0, "loss/wb97x_631gs": 2.0}
        assert biggest == {"loss": 2.0, "loss/mp2_ccpvdz": 4.0, "loss/wb97x_631gs": 2.0}
        assert summed == {"x": 1.0}
