"""Importing mace-torch (an optional extra) safely, shared by `mace` and `mace_statistics`."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import warnings

import torch

from foundation.errors import UserError

INSTALL_HINT = "pip install 'foundation-mlip[mace]'"


def installed() -> bool:
    """Whether the optional extra (mace-torch and e3nn) is installed, without importing it."""
    return importlib.util.find_spec("mace") is not None and importlib.util.find_spec("e3nn") is not None


@contextlib.contextmanager
def quiet_torchscript():
    """e3nn scripts small helpers while MACE's layers are built, and torch 2.10+ warns about each
    (TorchScript deprecated, annotations it ignores): dozens of lines about nothing we call."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch.jit.script.*is deprecated", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message="The TorchScript type system", category=UserWarning)
        yield


def mace_modules():
    """(`mace.modules`, `e3nn.o3`), imported on first use; `UserError` naming the extra if absent.

    Importing mace sets TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 for the whole process (so that e3nn can
    unpickle its constants file), which would let any later `torch.load` without `weights_only`
    unpickle code. Here e3nn is imported first, its constants loaded with `weights_only` (they
    hold only tensors and `slice`s), and the variable is put back as it was after mace's import.
    mace also prints a line about cuequivariance on import: kept off our standard output."""
    saved = os.environ.get("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")
    try:
        with torch.serialization.safe_globals([slice]), quiet_torchscript():
            from e3nn import o3
        with contextlib.redirect_stdout(io.StringIO()), quiet_torchscript():
            import mace.modules as modules
    except ModuleNotFoundError as err:
        if (err.name or "").split(".")[0] in ("mace", "e3nn"):
            raise UserError(f"model=mace needs mace-torch, which is not installed: {INSTALL_HINT}") from None
        raise
    finally:
        if saved is None:
            os.environ.pop("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", None)
        else:
            os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = saved
    return modules, o3
