"""Unit constants. Inside the library everything is Å, eV and eV/Å (DESIGN.md, Contracts)."""

HARTREE_TO_EV = 27.211386245988  # CODATA 2018
BOHR_TO_ANGSTROM = 0.529177210903
EV_TO_KCAL_MOL = 23.060547830619  # 1 eV in kcal/mol
KCAL_MOL_TO_EV = 1.0 / EV_TO_KCAL_MOL
