"""Total charge and spin multiplicity of a structure: where they are read from, and whether they fit.

A structure is the molecule its electrons make: `charge` (elementary charges, an integer) and
`multiplicity` (2S + 1: 1 singlet, 2 doublet, 3 triplet, …). Where a source says nothing, a
structure is a neutral singlet (0, 1), the convention of every dataset that records neither.

In ASE structures (extxyz, ASE databases, a calculator's atoms) they are `atoms.info` keys:
`charge`, and `spin` or `multiplicity` for the multiplicity. `spin` means the multiplicity, as
fairchem and its OMol25 release use it (`atoms.info["spin"] = 1` is a singlet); an odd/even
mismatch with the electron count is refused, so a file that meant 2S instead is caught.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from foundation.errors import DataError

NEUTRAL_SINGLET = (0, 1)
CHARGE_KEYS = ("charge",)
MULTIPLICITY_KEYS = ("multiplicity", "spin")


def check_charge_spin(numbers, charge: int, multiplicity: int, where: str, parity: bool = True) -> tuple[int, int]:
    """(charge, multiplicity) as ints when the electrons can make them: an integer charge that
    leaves no negative electron count, an integer multiplicity ≥ 1 with no more unpaired electrons
    than electrons and, with `parity`, of the parity the electron count allows (an even count:
    odd multiplicities). Raises `DataError` naming `where` otherwise.

    `parity=False` is for the defaults of sources that say nothing (a radical in a file without
    charge or spin, a periodic cell, synthetic data): they stay readable as before; a charge or
    multiplicity that someone declared, and anything the labeller computes, is checked whole."""
    charge, multiplicity = _integer(charge, "charge", where), _integer(multiplicity, "multiplicity", where)
    electrons = int(np.asarray(numbers, np.int64).sum()) - charge
    if electrons < 0:
        raise DataError(f"{where}: charge {charge:+d} leaves {electrons} electrons")
    unpaired = multiplicity - 1
    if multiplicity < 1 or unpaired > electrons:
        raise DataError(f"{where}: spin multiplicity {multiplicity} is impossible with {electrons} electrons")
    if parity and (electrons - unpaired) % 2:
        raise DataError(f"{where}: {electrons} electrons (charge {charge:+d}) cannot have spin multiplicity "
                        f"{multiplicity}: an {'odd' if electrons % 2 else 'even'} count needs "
                        f"{'an even' if electrons % 2 else 'an odd'} multiplicity (2S+1)")
    return charge, multiplicity


def from_info(info: Mapping, numbers, where: str) -> tuple[int, int]:
    """(charge, multiplicity) from an ASE `atoms.info` (0 and 1 for keys it lacks), checked; the
    parity only when the structure declares at least one of them."""
    charge = _first(info, CHARGE_KEYS, None)
    multiplicity = _first(info, MULTIPLICITY_KEYS, None)
    declared = charge is not None or multiplicity is not None
    return check_charge_spin(numbers, 0 if charge is None else charge, 1 if multiplicity is None else multiplicity,
                             where, parity=declared)


def describe(charge: int, multiplicity: int) -> str:
    """"charge +1, doublet" — for messages."""
    names = {1: "singlet", 2: "doublet", 3: "triplet", 4: "quartet", 5: "quintet"}
    return f"charge {charge:+d}, {names.get(multiplicity, f'multiplicity {multiplicity}')}"


def _first(info: Mapping, keys: tuple[str, ...], default):
    for key in keys:
        if key in info and info[key] is not None:
            return info[key]
    return default


def _integer(value, what: str, where: str) -> int:
    try:
        number = float(np.asarray(value).reshape(()))
    except (TypeError, ValueError):
        raise DataError(f"{where}: {what} {value!r} is not a number") from None
    if not number.is_integer():
        raise DataError(f"{where}: {what} {value!r} is not an integer")
    return int(number)
