"""Reading the HDF5 layouts of published datasets: open a file, read a dataset with its expected
shape, read a one-element string dataset. Every problem is a `DataError` naming file, group and key."""

from __future__ import annotations

import os

import h5py
import numpy as np

from foundation.errors import DataError


def open_hdf5(path: str | os.PathLike) -> h5py.File:
    try:
        return h5py.File(path, "r")
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except OSError as e:
        raise DataError(f"{path}: not a readable HDF5 file ({e})") from None


def read(group: h5py.Group, key: str, where: str, shape: tuple | None = None) -> np.ndarray:
    """Dataset `key` of `group` as float64 (or its integer type), checked against `shape` (-1: any)."""
    if key not in group:
        raise DataError(f"{where}: no dataset {key!r} (has {', '.join(sorted(group.keys()))})")
    values = np.asarray(group[key][()])
    values = values if np.issubdtype(values.dtype, np.integer) else values.astype(np.float64)
    if shape is not None and (len(values.shape) != len(shape)
                              or any(s not in (-1, v) for s, v in zip(shape, values.shape))):
        raise DataError(f"{where}: dataset {key!r} has shape {values.shape}, expected "
                        f"({', '.join('any' if s == -1 else str(s) for s in shape)})")
    return values


def text(group: h5py.Group, key: str, where: str) -> str:
    """A string dataset of one element (h5py gives bytes or str)."""
    if key not in group:
        raise DataError(f"{where}: no dataset {key!r}")
    value = np.asarray(group[key][()]).reshape(-1)[0]
    return value.decode() if isinstance(value, bytes) else str(value)
