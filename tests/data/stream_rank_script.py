"""Run by `torchrun --nproc_per_node=2` from test_stream_torchrun.py (not a test itself): each rank
streams shards through two DataLoader workers and writes the sample ids of each batch it got;
then it saves the stream's position (a collective), takes a few more batches, and checks that a
new stream restored from that position gives the same ones.

    stream_rank_script.py SHARD_DIR OUT_DIR N_BATCHES MAX_ATOMS
"""

import itertools
import json
import os
import sys

import torch.distributed as dist

from foundation.data.stream import ShardStream

N_AFTER = 5  # batches compared after restoring


def make_stream(shard_dir: str, max_atoms: int) -> ShardStream:
    return ShardStream(shard_dir, seed=11, rank=dist.get_rank(), world_size=dist.get_world_size(),
                       max_atoms=max_atoms, num_workers=2, shuffle_buffer=4)


def main() -> None:
    shard_dir, out_dir, n_batches, max_atoms = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    stream = make_stream(shard_dir, max_atoms)
    batches = iter(stream)
    seen = [b.source for b in itertools.islice(batches, n_batches)]
    state = stream.state_dict()  # every rank calls it: it gathers all ranks' positions
    after = [b.source for b in itertools.islice(batches, N_AFTER)]
    del batches
    resumed = make_stream(shard_dir, max_atoms)
    resumed.load_state_dict(json.loads(json.dumps(state)))  # as stored in a checkpoint
    again = [b.source for b in itertools.islice(iter(resumed), N_AFTER)]
    record = {"rank": rank, "world_size": dist.get_world_size(), "batches": seen, "state": state,
              "resumed_equal": after == again}
    tmp = os.path.join(out_dir, f".rank{rank}.json.tmp")
    with open(tmp, "w") as f:
        json.dump(record, f)
    os.replace(tmp, os.path.join(out_dir, f"rank{rank}.json"))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
