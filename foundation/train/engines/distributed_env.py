"""What the multi-process engines share: where this process sits in the job (read from the
launcher's environment), the process group it joins, the collectives the trainer needs, and the
rules for the global batch and the learning rate, defined here once.

Launchers say who is who through the environment:
- `torchrun` and the `deepspeed` launcher: RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE,
  MASTER_ADDR, MASTER_PORT;
- SLURM without torchrun (`srun` one task per GPU, submitit): SLURM_PROCID, SLURM_NTASKS,
  SLURM_LOCALID, SLURM_NTASKS_PER_NODE; the first host of the job's node list is the master,
  and the port is derived from the job id unless MASTER_PORT is set;
- none of these: a world of one process (`distributed=ddp` on a laptop runs unchanged).

Global batch: one optimiser step takes one batch per rank (each at most
`data.max_atoms_per_batch` atoms, ranks drawing disjoint data), and the gradient is the mean over
ranks of each rank's mean-loss gradient: exactly what one process computes by accumulating the
ranks' batches with their losses divided by `world_size`. Learning rate: `lr_scaling` scales
`trainer.lr` (and `min_lr`) from the world size it was tuned for (`base_world_size`) to this one."""

from __future__ import annotations

import dataclasses
import datetime
import math
import os
import re
import warnings
from collections.abc import Mapping

import torch
import torch.distributed as dist
from torch import nn

from foundation.errors import UserError
from foundation.train.config import check_types
from foundation.train.engines.base import Engine

BACKENDS = ("auto", "gloo", "nccl")
LR_SCALINGS = ("none", "linear", "sqrt")
_REDUCE_OPS = {"mean": dist.ReduceOp.SUM, "sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX}


@dataclasses.dataclass
class DistributedConfig:
    """Hydra group `distributed` (`distributed=single|ddp|deepspeed`): which engine, and how the
    processes talk. The engines extend it with their own keys."""

    name: str = "single"
    backend: str = "auto"  # auto: nccl on GPUs, gloo on CPU
    lr_scaling: str = "none"  # none | linear | sqrt: trainer.lr × (world/base_world_size)^(1 or 1/2)
    base_world_size: int = 1  # the world size trainer.lr was tuned for
    timeout_minutes: float = 30.0  # a collective waiting longer than this fails the run

    def __post_init__(self):
        check_types(self, "distributed")
        for key, choices in (("backend", BACKENDS), ("lr_scaling", LR_SCALINGS)):
            if getattr(self, key) not in choices:
                raise UserError(f"distributed.{key}={getattr(self, key)!r}: must be one of {', '.join(choices)}")
        if self.base_world_size < 1 or self.timeout_minutes <= 0:
            raise UserError("distributed.base_world_size must be >= 1 and distributed.timeout_minutes > 0")

    def lr_scale(self, world_size: int) -> float:
        ratio = world_size / self.base_world_size
        return {"none": 1.0, "linear": ratio, "sqrt": math.sqrt(ratio)}[self.lr_scaling]


@dataclasses.dataclass(frozen=True)
class DistEnv:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    master_addr: str | None = None
    master_port: int | None = None
    launcher: str = "none"  # torchrun (or the deepspeed launcher) | slurm | none


def detect_env(environ: Mapping[str, str] | None = None) -> DistEnv:
    """This process's place in the job, from the launcher's variables (see the module doc)."""
    env = os.environ if environ is None else environ
    if "RANK" in env and "WORLD_SIZE" in env:
        return DistEnv(_int(env, "RANK"), _int(env, "WORLD_SIZE"), _int(env, "LOCAL_RANK", 0),
                       _int(env, "LOCAL_WORLD_SIZE", 1), env.get("MASTER_ADDR"),
                       _int(env, "MASTER_PORT") if "MASTER_PORT" in env else None, "torchrun")
    if "SLURM_PROCID" in env and _int(env, "SLURM_NTASKS", 1) > 1:
        nodelist = env.get("SLURM_STEP_NODELIST") or env.get("SLURM_JOB_NODELIST") or "localhost"
        port = _int(env, "MASTER_PORT") if "MASTER_PORT" in env else 20000 + _int(env, "SLURM_JOB_ID", 0) % 20000
        per_node = re.match(r"\d+", env.get("SLURM_NTASKS_PER_NODE", "1"))
        return DistEnv(_int(env, "SLURM_PROCID"), _int(env, "SLURM_NTASKS"), _int(env, "SLURM_LOCALID", 0),
                       int(per_node.group()) if per_node else 1, env.get("MASTER_ADDR") or first_host(nodelist),
                       port, "slurm")
    return DistEnv()


def _int(env: Mapping[str, str], key: str, default: int | None = None) -> int:
    value = env.get(key)
    if value is None and default is not None:
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise UserError(f"environment variable {key}={value!r}: expected an integer (set by the launcher)") from None


def first_host(nodelist: str) -> str:
    """The first host of a SLURM node list: `gpu[007-009,012],cpu1` -> `gpu007`."""
    match = re.match(r"([^,\[]+)(?:\[([^\]]+)\])?", nodelist.strip())
    if match is None:
        raise UserError(f"SLURM node list {nodelist!r}: cannot read its first host")
    prefix, ranges = match.groups()
    return prefix if ranges is None else prefix + ranges.split(",")[0].split("-")[0]


def init_process_group(env: DistEnv, device: torch.device, config: DistributedConfig) -> None:
    """Join (or, in a world of one, create) the default process group; GPUs bind to LOCAL_RANK."""
    if dist.is_initialized():
        return
    backend = config.backend if config.backend != "auto" else ("nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    timeout = datetime.timedelta(minutes=config.timeout_minutes)
    if env.world_size == 1 and env.master_addr is None:
        dist.init_process_group(backend, store=dist.HashStore(), rank=0, world_size=1, timeout=timeout)
        return
    if env.master_addr is None or env.master_port is None:
        raise UserError(f"distributed={config.name} with {env.world_size} processes: MASTER_ADDR and MASTER_PORT "
                        "are not set; launch with torchrun, the deepspeed launcher or srun")
    os.environ.setdefault("MASTER_ADDR", env.master_addr)
    os.environ.setdefault("MASTER_PORT", str(env.master_port))
    _warn_shared_store(env)
    dist.init_process_group(backend, init_method="env://", rank=env.rank, world_size=env.world_size,
                            timeout=timeout)


def _warn_shared_store(env: DistEnv) -> None:
    """torchrun restarting workers through its shared rendezvous store: the new round's workers can
    read the dead round's addresses from it and fail or hang (pytorch/pytorch#135712)."""
    if (env.rank == 0 and os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"
            and os.environ.get("TORCHELASTIC_MAX_RESTARTS", "0") not in ("", "0")):
        warnings.warn("torchrun --max-restarts with the shared rendezvous store: a restarted round can "
                      "reconnect to the dead one's workers and fail or hang (pytorch/pytorch#135712); "
                      "export TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 before torchrun", stacklevel=3)


class PredictForward(nn.Module):
    """Makes `predict(model, ...)` (energies and forces of the heads) a module's forward, so that
    a wrapper that hooks forward (DDP's gradient sync, DeepSpeed's engine) sees the whole pass.
    The forces' own backward (against the positions) then runs inside that forward, before the
    wrapper's output hooks exist: only the loss's backward reduces gradients."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batch, heads, force_heads, create_graph):
        from foundation.models.prediction import predict

        return predict(self.model, batch, heads, force_heads, create_graph)


class WrappedForward(nn.Module):
    """What the trainer hands to `predict`: its `predict_forward` calls `wrapper` (a DDP module or
    a DeepSpeed engine around a `PredictForward`)."""

    def __init__(self, wrapper: nn.Module):
        super().__init__()
        self.wrapper = wrapper

    def predict_forward(self, batch, heads, force_heads, create_graph):
        return self.wrapper(batch, list(heads), list(force_heads), create_graph)


class ProcessGroupEngine(Engine):
    """Collectives over the default process group, shared by the DDP and DeepSpeed engines."""

    def __init__(self, config: DistributedConfig, device: torch.device, env: DistEnv):
        self.config, self.device, self.env = config, device, env
        self.rank, self.world_size = env.rank, env.world_size
        self.lr_scale = config.lr_scale(env.world_size)

    def all_reduce(self, values: dict[str, float], op: str = "mean", uneven: bool = False) -> dict[str, float]:
        if uneven:  # the ranks first agree on the union of their keys (one more collective)
            keys = sorted(set().union(*self.all_gather_object(sorted(values))))
        else:
            keys = sorted(values)
        if not keys:
            return {}
        missing = -math.inf if op == "max" else 0.0
        row = [float(values.get(k, missing)) for k in keys]
        counts = [float(k in values) for k in keys] if uneven and op == "mean" else []
        tensor = torch.tensor(row + counts, dtype=torch.float64, device=self._comm_device)
        dist.all_reduce(tensor, _REDUCE_OPS[op])
        if op == "mean":
            tensor = tensor[:len(keys)] / (tensor[len(keys):] if counts else self.world_size)
        return dict(zip(keys, tensor.tolist()))

    def all_gather_object(self, obj) -> list:
        gathered = [None] * self.world_size
        dist.all_gather_object(gathered, obj)
        return gathered

    @property
    def _comm_device(self) -> torch.device:
        # NCCL reduces GPU tensors only; gloo takes CPU ones (and CUDA ones through a copy).
        return self.device if dist.get_backend() == "nccl" else torch.device("cpu")

    def barrier(self) -> None:
        dist.barrier()

    def close(self) -> None:
        if dist.is_initialized():
            dist.destroy_process_group()
