"""PyTorch DistributedDataParallel: every rank holds the whole model and optimiser; gradients
are averaged over ranks during the backward pass (bucketed all-reduce overlapping the compute),
so every rank takes the same step. gloo on CPU, NCCL on GPUs.

    torchrun --nproc_per_node=4 -m foundation train distributed=ddp ...

The checkpointed state is the single engine's (model, optimiser), so a run can be resumed on
another number of ranks or in one process: the data position is then re-split, every sample
still delivered once per epoch (foundation/data/stream_position.py)."""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import warnings

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from foundation.errors import UserError
from foundation.train.engines.base import LocalOptimizer, resolve_device
from foundation.train.engines.distributed_env import (DistributedConfig, PredictForward,
                                                      ProcessGroupEngine, WrappedForward, detect_env,
                                                      init_process_group)

_DDP_ARGS = inspect.signature(DistributedDataParallel.__init__).parameters


@dataclasses.dataclass
class DDPConfig(DistributedConfig):
    name: str = "ddp"
    bucket_cap_mb: float = 25.0  # gradient all-reduce bucket size
    find_unused_parameters: bool = False  # true for a model whose steps leave some parameters out

    def __post_init__(self):
        super().__post_init__()
        if self.bucket_cap_mb <= 0:
            raise UserError(f"distributed.bucket_cap_mb={self.bucket_cap_mb}: must be > 0")


class DDPEngine(LocalOptimizer, ProcessGroupEngine):
    def __init__(self, config: DDPConfig, device: str = "auto"):
        env = detect_env()
        device = resolve_device(device, env.local_rank)
        init_process_group(env, device, config)
        super().__init__(config, device, env)

    def wrap(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> nn.Module:
        self._model, self._optimizer = model, optimizer
        # device_ids=None: the batch is already on this rank's device and must reach the model
        # as is (forces are differentiated against that very positions tensor). Buffers (AEV
        # constants, reference energies) never change in training: synced once, here.
        sync = ({"forward_sync_buffers": False} if "forward_sync_buffers" in _DDP_ARGS
                else {"broadcast_buffers": False})
        ddp = DistributedDataParallel(PredictForward(model), device_ids=None, **sync,
                                      bucket_cap_mb=self.config.bucket_cap_mb,
                                      find_unused_parameters=self.config.find_unused_parameters)
        # An output head's (1, n) weight slice gets a gradient whose stride differs from the
        # bucket's only along its size-1 dimension: the same memory layout, nothing to fix.
        warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
        self.ddp = ddp
        return WrappedForward(ddp)

    def no_sync(self, skip: bool = True):
        """A micro-batch that only accumulates: no gradient all-reduce (the last one reduces the sum)."""
        return self.ddp.no_sync() if skip else contextlib.nullcontext()


def build_engine(trainer_config, config: DDPConfig | None = None) -> DDPEngine:
    return DDPEngine(config or DDPConfig(), trainer_config.device)
