"""One sample as one msgpack record: the `.msgpack` member of a webdataset shard.

Arrays are stored as raw little-endian bytes (no pickle, no `.npy` headers): decoding is a
`np.frombuffer` per array, about four times faster than one `.npy` member per field. Units are the
library's (Å, eV, eV/Å), so a record needs no conversion when read.

| key        | msgpack value                         |
|------------|---------------------------------------|
| v          | record format version (1)             |
| numbers    | bytes, uint8 (n,)                     |
| positions  | bytes, float64 (n, 3) Å               |
| cell       | bytes, float64 (3, 3) Å               |
| pbc        | [bool, bool, bool]                    |
| energies   | {fidelity: float} eV                  |
| forces     | {fidelity: bytes float64 (n, 3)} eV/Å |
| molecule   | str                                   |
| source     | str                                   |
| charge     | int, total charge (absent: 0)         |
| multiplicity | int, 2S+1 (absent: 1)               |

`charge` and `multiplicity` are written only for structures that are not neutral singlets, so
the records (and shard hashes) of neutral-singlet data are what they were before the fields
existed, and a record without them is a neutral singlet.
"""

from __future__ import annotations

import msgpack
import numpy as np

from foundation.data.electrons import NEUTRAL_SINGLET
from foundation.data.sample import Sample
from foundation.errors import DataError

VERSION = 1
MEMBER = "msgpack"  # the tar member suffix: `<key>.msgpack`
_F8 = np.dtype("<f8")


def encode_sample(sample: Sample) -> bytes:
    if sample.numbers.size and (sample.numbers.min() < 1 or sample.numbers.max() > 118):
        raise DataError(f"{sample.source or 'sample'}: atomic numbers outside 1..118")
    record = {
        "v": VERSION,
        "numbers": sample.numbers.astype(np.uint8).tobytes(),
        "positions": sample.positions.astype(_F8).tobytes(),
        "cell": sample.cell.astype(_F8).tobytes(),
        "pbc": [bool(x) for x in sample.pbc],
        "energies": {k: float(v) for k, v in sample.energies.items()},
        "forces": {k: v.astype(_F8).tobytes() for k, v in sample.forces.items()},
        "molecule": sample.molecule,
        "source": sample.source,
    }
    if (sample.charge, sample.multiplicity) != NEUTRAL_SINGLET:
        record["charge"], record["multiplicity"] = int(sample.charge), int(sample.multiplicity)
    return msgpack.packb(record, use_bin_type=True)


def decode_record(data: bytes, where: str) -> dict:
    """The raw record (arrays still bytes): cheap enough to filter and shuffle before building a
    `Sample`. `where` (shard and key) names the record in errors."""
    try:
        record = msgpack.unpackb(data, raw=False)
    except Exception as e:  # msgpack raises several types for malformed input
        raise DataError(f"{where}: not a valid msgpack record ({type(e).__name__})") from None
    if not isinstance(record, dict) or record.get("v") != VERSION:
        raise DataError(f"{where}: not a version-{VERSION} Foundation sample record")
    return record


def label_set(fidelities) -> str:
    """Canonical name of a combination of fidelities, e.g. `"ccsdt_ccpvdz+wb97x_631gs"`."""
    return "+".join(sorted(fidelities))


def record_label_set(record: dict) -> str:
    return label_set(set(record["energies"]) | set(record["forces"]))


def record_state(record: dict) -> tuple[int, int]:
    """(charge, multiplicity) of a raw record: (0, 1) when it does not say."""
    return int(record.get("charge", 0)), int(record.get("multiplicity", 1))


def record_to_sample(record: dict, where: str) -> Sample:
    try:
        numbers = np.frombuffer(record["numbers"], np.uint8).astype(np.int64)
        n = len(numbers)
        # copies: frombuffer views are read-only, and users may edit a sample in place
        positions = np.frombuffer(record["positions"], _F8).reshape(n, 3).copy()
        forces = {k: np.frombuffer(v, _F8).reshape(n, 3).copy() for k, v in record["forces"].items()}
        cell = np.frombuffer(record["cell"], _F8).reshape(3, 3).copy()
        return Sample(numbers=numbers, positions=positions, energies=record["energies"], forces=forces,
                      cell=cell, pbc=np.asarray(record["pbc"], bool), molecule=record["molecule"],
                      source=record["source"], charge=record.get("charge", 0),
                      multiplicity=record.get("multiplicity", 1))
    except (KeyError, ValueError, TypeError, AttributeError, OverflowError) as e:  # any field of any type
        raise DataError(f"{where}: malformed sample record ({type(e).__name__}: {e})") from None
