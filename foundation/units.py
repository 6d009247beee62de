"""Unit constants. Inside the library everything is Å, eV and eV/Å (DESIGN.md, Contracts)."""

HARTREE_TO_EV = 27.211386245988  # CODATA 2018
BOHR_TO_ANGSTROM = 0.529177210903
EV_TO_KCAL_MOL = 23.060547830619  # 1 eV in kcal/mol
KCAL_MOL_TO_EV = 1.0 / EV_TO_KCAL_MOL
KJ_MOL_TO_EV = KCAL_MOL_TO_EV / 4.184

# Units a user may declare for the labels of a file (`--energy-unit`, `--length-unit`): the factor
# to the library's unit. Forces are in energy unit / length unit and are converted with both.
ENERGY_UNITS = {"eV": 1.0, "hartree": HARTREE_TO_EV, "kcal/mol": KCAL_MOL_TO_EV, "kJ/mol": KJ_MOL_TO_EV}
LENGTH_UNITS = {"angstrom": 1.0, "bohr": BOHR_TO_ANGSTROM}


def energy_to_ev(unit: str) -> float:
    """The factor from `unit` (one of `ENERGY_UNITS`, any case) to eV."""
    return _factor(unit, ENERGY_UNITS, "energy")


def length_to_angstrom(unit: str) -> float:
    """The factor from `unit` (angstrom or bohr, any case) to Å."""
    return _factor(unit, LENGTH_UNITS, "length")


def _factor(unit: str, table: dict[str, float], what: str) -> float:
    from foundation.errors import UserError

    found = {k.lower(): v for k, v in table.items()}.get(str(unit).lower())
    if found is None:
        raise UserError(f"{what} unit {unit!r}: use one of {', '.join(table)}")
    return found
