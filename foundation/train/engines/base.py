"""What the trainer asks of a parallelism backend: one small interface, so the training loop holds
no `if ddp:`. `single.py` runs in one process; DDP and DeepSpeed implement the same methods.

Order of use in the loop: `wrap` once; per step `backward(loss)`, `clip_grad_norm(max_norm)`,
then `step()` or, for a step whose loss or gradient is not finite, `skip_step()`."""

from __future__ import annotations

import abc
import contextlib

import torch
from torch import nn


class Engine(abc.ABC):
    device: torch.device
    rank: int = 0
    world_size: int = 1
    lr_scale: float = 1.0  # factor on trainer.lr for this world size (distributed.lr_scaling)

    @property
    def is_rank0(self) -> bool:
        return self.rank == 0

    @abc.abstractmethod
    def wrap(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> nn.Module:
        """Take ownership of the model (already on `device`) and optimiser; return the module
        to call for the forward pass (a wrapper under DDP, the model itself here)."""

    @property
    @abc.abstractmethod
    def model(self) -> nn.Module:
        """The plain model (unwrapped): what EMA, export and parameter names refer to."""

    @property
    @abc.abstractmethod
    def optimizer(self) -> torch.optim.Optimizer: ...

    @abc.abstractmethod
    def backward(self, loss: torch.Tensor) -> None: ...

    @abc.abstractmethod
    def clip_grad_norm(self, max_norm: float | None) -> torch.Tensor:
        """Global gradient 2-norm before clipping (a 0-d tensor, equal on all ranks); clips
        to `max_norm` when given. Inf/NaN when a gradient is not finite."""

    @abc.abstractmethod
    def step(self) -> None:
        """Apply the optimiser step and zero the gradients."""

    @abc.abstractmethod
    def skip_step(self) -> None:
        """Drop this step's gradients without updating the weights."""

    @abc.abstractmethod
    def all_reduce(self, values: dict[str, float], op: str = "mean", uneven: bool = False) -> dict[str, float]:
        """Combine per-rank scalars (`op`: mean | sum | max) so every rank sees the same. The ranks
        must hold the same keys unless `uneven`: then every key any rank holds comes back, a mean
        over the ranks that hold it (the loss parts of a fidelity one rank's batch lacks)."""

    @abc.abstractmethod
    def state_dict(self) -> dict:
        """Model and optimiser state, as saved in a training checkpoint."""

    @abc.abstractmethod
    def load_state_dict(self, state: dict) -> None: ...

    def no_sync(self, skip: bool = True):
        """Context for a micro-batch's forward and backward whose gradients are only accumulated
        (`skip`): DDP leaves out its all-reduce; one process has nothing to leave out."""
        return contextlib.nullcontext()

    def shard_state_dict(self) -> dict | None:
        """This rank's part of a state that the engine partitions across ranks (ZeRO optimiser
        states), written by every rank beside the checkpoint; None when nothing is sharded."""
        return None

    def load_shard_state_dict(self, shard: dict) -> None:
        """Restore what `shard_state_dict` returned (after `load_state_dict`)."""

    def all_gather_object(self, obj) -> list:
        """Every rank's `obj` (picklable), in rank order, on every rank."""
        return [obj]

    def memory_mb(self) -> float:
        """Peak memory of this rank so far, MiB: the GPU's allocations, or the process's RSS."""
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) / 2**20
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB

    def barrier(self) -> None:
        """Wait for all ranks (nothing to wait for in one process)."""

    def close(self) -> None:
        """Release process groups and the like."""


class LocalOptimizer:
    """The methods of an engine whose model and optimiser are plain torch objects held whole on
    every rank (single process, DDP): what differs between those engines is only how the forward
    is wrapped and how scalars are combined."""

    _model: nn.Module | None = None
    _optimizer: torch.optim.Optimizer | None = None
    device: torch.device

    @property
    def model(self) -> nn.Module:
        return self._model

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        return self._optimizer

    def backward(self, loss: torch.Tensor) -> None:
        loss.backward()  # under DDP its hooks average the gradients over ranks meanwhile

    def clip_grad_norm(self, max_norm: float | None) -> torch.Tensor:
        # Under DDP the gradients are already the ranks' mean, identical everywhere: so is the norm.
        params = [p for p in self._model.parameters() if p.grad is not None]
        if not params:
            return torch.zeros((), device=self.device)
        return torch.nn.utils.clip_grad_norm_(params, max_norm if max_norm else float("inf"))

    def step(self) -> None:
        self._optimizer.step()
        self._optimizer.zero_grad(set_to_none=True)

    def skip_step(self) -> None:
        self._optimizer.zero_grad(set_to_none=True)

    def state_dict(self) -> dict:
        return {"model": self._model.state_dict(), "optimizer": self._optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self._model.load_state_dict(state["model"])
        self._optimizer.load_state_dict(state["optimizer"])


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """`auto` picks this rank's GPU when there is one, else the CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            from foundation.errors import UserError

            raise UserError("trainer.device=cuda but no CUDA device is available; use trainer.device=auto")
        return torch.device("cuda", local_rank)
    return torch.device(name)
