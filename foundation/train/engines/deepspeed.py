"""DeepSpeed ZeRO data parallelism: stage 1 shards the optimiser states over ranks, stage 2 the
gradients too; every rank keeps the whole model (MLIPs are small; their optimiser states and
gradients are what ZeRO saves). bf16 autocast on GPUs that have it, fp32 on CPU.

    deepspeed --num_gpus 8 --no_local_rank --module foundation train distributed=deepspeed ...
    torchrun --nproc_per_node 8 -m foundation train distributed=deepspeed ...   # the same

Nothing is JIT-compiled: our own torch AdamW is handed to DeepSpeed
(`zero_allow_untested_optimizer`), so no fused_adam or cpu_adam extension is built, and on CPU
the shared-memory all-reduce kernel DeepSpeed would build with gcc (about a minute, into
$TORCH_EXTENSIONS_DIR) is skipped unless `distributed.shm_comm=true`: only DeepSpeed's
tensor-parallel inference uses it; training's collectives are torch.distributed's.

Checkpoints: rank 0's file holds the (replicated) weights; each rank writes its optimiser shard
beside it (`shard_state_dict`), reduced to tensors and plain values so that it loads with
`weights_only=True`. Resuming needs the same number of ranks and the same ZeRO stage."""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import warnings

import torch
from torch import nn

from foundation.errors import CheckpointError, UserError
from foundation.train.engines.base import resolve_device
from foundation.train.engines.distributed_env import (DistributedConfig, PredictForward,
                                                      ProcessGroupEngine, WrappedForward, detect_env,
                                                      init_process_group)

PRECISIONS = ("auto", "fp32", "bf16")
# The parts of a ZeRO optimiser's state_dict() that its load_state_dict() reads, all tensors
# and plain values (the loss scaler object and slice mappings are rebuilt by the optimiser).
_SHARD_KEYS = ("base_optimizer_state", "single_partition_of_fp32_groups", "group_paddings",
               "param_alignment_paddings", "partition_count", "ds_version", "clip_grad",
               "dynamic_loss_scale", "overflow")


@dataclasses.dataclass
class DeepSpeedConfig(DistributedConfig):
    name: str = "deepspeed"
    zero_stage: int = 2  # 1: optimiser states sharded; 2: gradients too
    precision: str = "auto"  # auto: bf16 autocast on GPUs with bf16, else fp32 | fp32 | bf16
    overrides: dict = dataclasses.field(default_factory=dict)  # DeepSpeed config keys, merged last
    shm_comm: bool = False  # build DeepSpeed's CPU shared-memory all-reduce (inference only; slow build)

    def __post_init__(self):
        super().__post_init__()
        if self.zero_stage not in (1, 2):
            raise UserError(f"distributed.zero_stage={self.zero_stage}: must be 1 or 2 (stage 3 shards the "
                            "weights, which models of this size do not need)")
        if self.precision not in PRECISIONS:
            raise UserError(f"distributed.precision={self.precision!r}: must be one of {', '.join(PRECISIONS)}")


class DeepSpeedEngine(ProcessGroupEngine):
    def __init__(self, config: DeepSpeedConfig, trainer_config):
        if trainer_config.accumulate > 1:
            raise UserError(f"trainer.accumulate={trainer_config.accumulate} with distributed=deepspeed: not "
                            "supported (DeepSpeed accumulates by its own gradient_accumulation_steps); use "
                            "distributed=ddp, or a larger data.max_atoms_per_batch")
        env = detect_env()
        device = resolve_device(trainer_config.device, env.local_rank)
        if device.type == "cpu":
            os.environ.setdefault("DS_ACCELERATOR", "cpu")  # even where a GPU is present
        # DeepSpeed reads LOCAL_RANK itself; without a launcher (one process) it is not set.
        os.environ.setdefault("LOCAL_RANK", str(env.local_rank))
        init_process_group(env, device, config)
        super().__init__(config, device, env)
        self.deepspeed = _import_deepspeed(config.shm_comm)
        self.grad_clip = trainer_config.grad_clip
        self.bf16 = config.precision == "bf16" or (
            config.precision == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported())
        self._model: nn.Module | None = None
        self._ds = None  # the DeepSpeed engine

    def ds_config(self) -> dict:
        config = {
            "train_micro_batch_size_per_gpu": 1,  # one batch (of up to max_atoms atoms) per rank
            "gradient_accumulation_steps": 1,
            "gradient_clipping": float(self.grad_clip or 0.0),
            "zero_optimization": {"stage": self.config.zero_stage},
            "zero_allow_untested_optimizer": True,
            "steps_per_print": 2**31 - 1,  # our loggers report
            "wall_clock_breakdown": False,
        }
        if self.bf16:
            # Autocast, not bf16 weights: positions, AEVs and energies stay fp32/fp64 (bf16 positions
            # would be off by 0.02 Å); the element networks' matmuls run in bf16.
            config["torch_autocast"] = {"enabled": True, "dtype": "bfloat16"}
        return _merge(config, self.config.overrides)

    def wrap(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> nn.Module:
        if next(model.parameters()).dtype != torch.float32:
            raise UserError("distributed=deepspeed trains float32 weights: set trainer.dtype=float32")
        self._model = model
        self._ds, _, _, _ = self.deepspeed.initialize(model=PredictForward(model), optimizer=optimizer,
                                                      config=self.ds_config())
        return WrappedForward(self._ds)

    @property
    def model(self) -> nn.Module:
        return self._model

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        # The torch optimiser inside ZeRO's: its param_groups' "lr" is what the schedule sets.
        return self._ds.optimizer.optimizer

    def backward(self, loss: torch.Tensor) -> None:
        self._ds.backward(loss)  # reduces (stage 2: reduce-scatters) the gradients over ranks

    def clip_grad_norm(self, max_norm: float | None) -> torch.Tensor:
        """The global norm of the reduced gradients (DeepSpeed clips to `gradient_clipping`, set
        from trainer.grad_clip, inside `step`)."""
        norm = self._ds.optimizer.scaled_global_norm()
        norm = torch.as_tensor(norm, dtype=torch.float64)
        return torch.where(norm < 0, torch.full_like(norm, math.inf), norm)  # -1: not finite

    def step(self) -> None:
        self._ds.step()  # clip, AdamW on this rank's partition, all-gather the new weights
        self._ds.zero_grad()

    def skip_step(self) -> None:
        # DeepSpeed's own path for a step to drop is its overflow check: make it fire.
        for grads in self._ds.optimizer.averaged_gradients.values():
            for g in grads if isinstance(grads, (list, tuple)) else [grads]:
                if g is not None:
                    g.fill_(math.nan)
        self._ds.step()
        self._ds.zero_grad()

    def state_dict(self) -> dict:
        return {"model": self._model.state_dict(), "zero_stage": self.config.zero_stage}

    def load_state_dict(self, state: dict) -> None:
        if "zero_stage" not in state:
            raise CheckpointError("this checkpoint was not written by distributed=deepspeed: resume it with "
                                  "the engine that wrote it, or start a new run from it with trainer.init_from")
        self._model.load_state_dict(state["model"])

    def shard_state_dict(self) -> dict:
        full = self._ds.optimizer.state_dict()
        shard = {k: full[k] for k in _SHARD_KEYS if k in full}
        return {"optimizer": shard, "zero_stage": self.config.zero_stage, "rank": self.rank,
                "world_size": self.world_size}

    def load_shard_state_dict(self, shard: dict) -> None:
        if shard["zero_stage"] != self.config.zero_stage or shard["world_size"] != self.world_size:
            raise CheckpointError(f"the checkpoint's optimiser is sharded for ZeRO stage {shard['zero_stage']} over "
                                  f"{shard['world_size']} ranks; resume with the same (now stage "
                                  f"{self.config.zero_stage}, {self.world_size} ranks)")
        optimizer = self._ds.optimizer
        mine = {**shard["optimizer"], "loss_scaler": optimizer.loss_scaler}
        states = [mine if r == self.rank else None for r in range(self.world_size)]
        # fp32 master partitions from the file, not re-derived from the (maybe bf16) weights
        optimizer.load_state_dict(states, load_optimizer_states=True, load_from_fp32_weights=True)


def _import_deepspeed(shm_comm: bool):
    try:
        import deepspeed
        import deepspeed.ops
    except ImportError:
        raise UserError("distributed=deepspeed needs DeepSpeed: pip install 'foundation-mlip[distributed]'") from None
    logging.getLogger("DeepSpeed").setLevel(logging.WARNING)
    if not shm_comm:
        # DeepSpeed consults this table (and keeps our edit) before it JIT-builds the kernel.
        deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False
    warnings.filterwarnings("ignore", message=r".*all_gather_into_tensor.* is deprecated")  # DeepSpeed's call
    return deepspeed


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def build_engine(trainer_config, config: DeepSpeedConfig | None = None) -> DeepSpeedEngine:
    return DeepSpeedEngine(config or DeepSpeedConfig(), trainer_config)
