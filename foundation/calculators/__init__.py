"""Calculators: our models behind other programs' interfaces (ASE)."""

from foundation.calculators.ase_calculator import FoundationCalculator

__all__ = ["FoundationCalculator"]
