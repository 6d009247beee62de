"""`--energy-unit` and `--length-unit`: the units of a user's labelled file, declared, not guessed
(`evaluate`, `finetune`, `data convert`). Labels are converted to eV, Å and eV/Å on read; forces
are in energy unit / length unit. Without `--energy-unit`, energies that look like another unit
than eV are refused (`foundation.data.ase_io.check_energy_unit`)."""

from __future__ import annotations

from foundation.units import ENERGY_UNITS, LENGTH_UNITS


def add_unit_arguments(parser) -> None:
    parser.add_argument("--energy-unit", choices=list(ENERGY_UNITS), type=_canonical(ENERGY_UNITS),
                        default=None, metavar="{" + ",".join(ENERGY_UNITS) + "}",
                        help="unit of the file's energies (default eV; energies that look like another unit "
                             "are refused unless this is given)")
    parser.add_argument("--length-unit", choices=list(LENGTH_UNITS), type=_canonical(LENGTH_UNITS),
                        default="angstrom", help="unit of the file's positions (default angstrom); forces are "
                                                 "in energy unit / length unit")


def _canonical(table: dict):
    """Accept any case (Hartree, EV, kcal/mol) and give the table's spelling."""
    names = {k.lower(): k for k in table}
    return lambda text: names.get(text.lower(), text)
