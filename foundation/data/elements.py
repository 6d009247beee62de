"""Chemical elements: symbols and atomic numbers, written once."""

from ase.data import atomic_numbers as _NUMBERS
from ase.data import chemical_symbols as SYMBOLS

from foundation.errors import UserError


def atomic_number(symbol_or_number: str | int) -> int:
    """`"C"` or `6` → 6, with a clear error for anything else."""
    if isinstance(symbol_or_number, int):
        if 0 < symbol_or_number < len(SYMBOLS):
            return symbol_or_number
    elif symbol_or_number in _NUMBERS:
        return _NUMBERS[symbol_or_number]
    raise UserError(f"unknown element {symbol_or_number!r}")


def symbol(number: int) -> str:
    return SYMBOLS[int(number)]
