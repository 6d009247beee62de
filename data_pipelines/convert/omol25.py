"""OMol25 (ASE-LMDB files, `*.aselmdb`, as fairchem publishes them) → shards.

The dataset (Levine et al., "The Open Molecules 2025 (OMol25) Dataset, Evaluations, and Models",
2025; fairchem's OMol25 page) is ωB97M-V/def2-TZVPD single points (ORCA 6) with total energies in
eV and forces in eV/Å, "provided in ASE DB compatible lmdb files (*.aselmdb)", with "the total
charge and spin multiplicity, saved in the atoms.info dictionary" — fairchem's `AseDBDataset`
puts a row's `data` into `atoms.info`, so `charge` and `spin` (the multiplicity) are keys of each
row's `data` (this reader also looks in `key_value_pairs`). Fidelity `wb97mv_def2tzvpd`.

The record layout is that of the `aselmdb` ASE database backend fairchem publishes (the
`ase-db-backends` package, `ase_db_backends/aselmdb.py`, formerly fairchem-core's
`lmdb_database.py`): one LMDB file (`subdir=False`); a row is stored under the ASCII key of its
integer id ("1", "2", …) as zlib-compressed JSON written by `ase.io.jsonio.encode` (NumPy arrays
as `{"__ndarray__": [shape, dtype, flat values]}`), a dict of the `AtomsRow` fields: `numbers`,
`positions` (Å), `cell`, `pbc`, `energy`, `forces`, …, `key_value_pairs`, `data`. The keys
`nextid`, `deleted_ids` and `metadata` hold bookkeeping (same encoding) and are not rows.

Which reader, and why: `lmdb` with this layout, not fairchem's. fairchem-core (its `AseDBDataset`)
pins its own torch and brings e3nn, hydra and dozens more: far too heavy for a converter, and at
odds with the torch this project pins. `ase-db-backends` (the backend itself, light) also pulls
PostgreSQL and MySQL clients and `cryptography` we would never use, and builds an `ase.Atoms` per
row; reading its records takes `lmdb` (one small C extension), `zlib` and ASE's own JSON decoder,
and streams the file with an LMDB cursor in key order, one row in memory at a time. The tests
write their files with `ase-db-backends` itself (a test dependency), so the reader is checked
against the publisher's writer, and with a hand-written file in the same layout.

Splits: OMol25 is too large to index before converting, so each structure's split is a seeded
hash of its molecule, taken as its formula (conformers, every charge and spin state of a system
and its relaxation frames share a split), the same wherever it occurs; a bounded shuffle buffer mixes molecules in shards.
`path` is one `.aselmdb` file or a folder of them (OMol25's splits come as many files).
"""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
from ase.io.jsonio import decode

from foundation.data.electrons import check_charge_spin
from foundation.data.molecules import hill_formula
from foundation.data import Sample
from foundation.errors import DataError
from foundation.pipelines.convert.common import SplitWriters, check_fractions, check_out_dir
from foundation.pipelines.convert.grouped import hashed_split, shuffled

FIDELITY = "wb97mv_def2tzvpd"
LEVEL = {"method": "wB97M-V", "basis": "def2-TZVPD", "program": "ORCA 6 (OMol25)"}
RESERVED_KEYS = (b"nextid", b"deleted_ids", b"metadata")
SHUFFLE_BUFFER = 10_000


def lmdb_files(path: str | os.PathLike) -> list[Path]:
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.aselmdb"))
        if not files:
            raise DataError(f"{path}: a folder without .aselmdb files")
        return files
    if not path.is_file():
        raise DataError(f"{path}: no such file or folder")
    return [path]


def iter_rows(path: Path) -> Iterator[tuple[int, dict]]:
    """(id, row dict) of one ASE-LMDB file in key order, deleted rows left out; streaming."""
    import lmdb

    try:
        env = lmdb.open(str(path), subdir=False, readonly=True, lock=False, readahead=True, meminit=False)
    except lmdb.Error as e:
        raise DataError(f"{path}: not an LMDB file ({e})") from None
    try:
        with env.begin() as txn:
            deleted = set(_decode(txn.get(b"deleted_ids"), path, "deleted_ids") or [])
            for key, value in txn.cursor():
                if key in RESERVED_KEYS:
                    continue
                try:
                    row_id = int(key.decode("ascii"))
                except (UnicodeDecodeError, ValueError):
                    raise DataError(f"{path}: key {key[:40]!r} is neither a row id nor an ASE-LMDB "
                                    "bookkeeping key (not an .aselmdb file?)") from None
                if row_id not in deleted:
                    yield row_id, _decode(value, path, f"row {row_id}")
    finally:
        env.close()


def row_to_sample(row: Mapping, where: str) -> Sample:
    """One row as a `Sample`: eV, Å, eV/Å as stored; charge and spin from `data` (or key-value pairs)."""
    try:
        numbers = np.asarray(row["numbers"], np.int64).reshape(-1)
        positions = np.asarray(row["positions"], np.float64).reshape(-1, 3)
        energy = float(row["energy"])
    except KeyError as e:
        raise DataError(f"{where}: row has no {e.args[0]!r} (keys: {', '.join(sorted(row))})") from None
    forces = {FIDELITY: np.asarray(row["forces"], np.float64)} if row.get("forces") is not None else {}
    info = {**(row.get("key_value_pairs") or {}), **(row.get("data") or {})}
    charge, multiplicity = check_charge_spin(numbers, info.get("charge", 0), info.get("spin", 1), where)
    cell = np.asarray(row["cell"], np.float64).reshape(3, 3) if row.get("cell") is not None else None
    pbc = np.asarray(row["pbc"], bool).reshape(3) if row.get("pbc") is not None else None
    return Sample(numbers, positions, {FIDELITY: energy}, forces, cell=cell, pbc=pbc,
                  molecule=hill_formula(numbers), source=where,
                  charge=charge, multiplicity=multiplicity)


def iter_samples(path: str | os.PathLike) -> Iterator[Sample]:
    for file in lmdb_files(path):
        for row_id, row in iter_rows(file):
            yield row_to_sample(row, f"{file}:{row_id}")


def count_rows(path: str | os.PathLike) -> int:
    """Rows in the file(s), from LMDB's entry counts (no row is read)."""
    import lmdb

    total = 0
    for file in lmdb_files(path):
        env = lmdb.open(str(file), subdir=False, readonly=True, lock=False)
        try:
            with env.begin() as txn:
                total += env.stat()["entries"] - sum(txn.get(k) is not None for k in RESERVED_KEYS)
        finally:
            env.close()
    return total


def convert_omol25(path: str | os.PathLike, out_dir: str | os.PathLike, fractions: Mapping[str, float] | None = None,
                   seed: int = 0, max_shard_bytes: int | None = None, command: Sequence[str] | str | None = None,
                   progress: Callable[[int], None] | None = None, shuffle_buffer: int = SHUFFLE_BUFFER) -> Path:
    """Convert OMol25 ASE-LMDB file(s) to shards, each molecule's split by a seeded hash; returns
    the manifest's path."""
    fractions = check_fractions(fractions)
    check_out_dir(out_dir)
    files = lmdb_files(path)
    with SplitWriters(out_dir, sorted(fractions, key=lambda s: (s != "train", s)), max_shard_bytes) as writers:
        for sample in shuffled(iter_samples(path), shuffle_buffer, seed):
            writers.write(hashed_split(sample.molecule, fractions, seed), sample)
            if progress is not None:
                progress(1)
        return writers.finish({FIDELITY: LEVEL}, command,
                              {"source": {"format": "omol25", "path": str(path), "files": [f.name for f in files]},
                               "seed": seed})


def _decode(value: bytes | None, path: Path, what: str):
    if value is None:
        return None
    try:
        return decode(zlib.decompress(value).decode("utf-8"))
    except (zlib.error, UnicodeDecodeError, json.JSONDecodeError, ValueError, TypeError) as e:
        raise DataError(f"{path}: {what} is not a zlib-compressed ASE JSON record ({type(e).__name__})") from None

