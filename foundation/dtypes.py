"""The floating-point precisions Foundation computes in, named as in configs ("float32") or as
torch dtypes; one place that turns either into a torch dtype and refuses anything else."""

from __future__ import annotations

import torch

from foundation.errors import UserError

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def torch_dtype(value: str | torch.dtype, where: str = "dtype") -> torch.dtype:
    """"float32", "float64" (also "torch.float64") or those torch dtypes, as a torch dtype;
    anything else is a one-line `UserError` naming `where` and the choices."""
    if isinstance(value, torch.dtype) and value in DTYPES.values():
        return value
    if isinstance(value, str) and value.removeprefix("torch.") in DTYPES:
        return DTYPES[value.removeprefix("torch.")]
    raise UserError(f"{where}={value!r}: must be float32 or float64 (a string or torch.float32/torch.float64)")
