"""Least-squares reference energies."""

import math

import numpy as np
import pytest

from foundation.errors import UserError
from foundation.models.reference import fit_reference_energies, refit_change

TRUE = {1: -13.6, 6: -1029.8, 7: -1484.2, 8: -2041.3}


def _data(rng, n, elements=(1, 6, 7, 8), noise=0.0):
    numbers = [rng.choice(elements, rng.integers(2, 12)) for _ in range(n)]
    energies = [sum(TRUE[int(z)] for z in zs) + noise * rng.normal() for zs in numbers]
    return numbers, energies


def test_recovers_exact_reference_energies():
    numbers, energies = _data(np.random.default_rng(0), 40)
    fit = fit_reference_energies(numbers, energies, [1, 6, 7, 8])
    assert set(fit) == {1, 6, 7, 8}
    for z, e in TRUE.items():
        assert fit[z] == pytest.approx(e, abs=1e-8)


def test_missing_element_or_too_few_structures_is_a_clear_error():
    numbers, energies = _data(np.random.default_rng(1), 30, elements=(1, 6, 8))
    with pytest.raises(UserError, match="no structure contains N"):
        fit_reference_energies(numbers, energies, [1, 6, 7, 8])
    with pytest.raises(UserError, match="determine only 1"):
        fit_reference_energies([[1, 6], [1, 6, 1, 6]], [1.0, 2.0], [1, 6])
    with pytest.raises(UserError, match="contains S"):
        fit_reference_energies([[16]], [1.0], [1, 6])
    with pytest.raises(UserError, match="2 structures but 1 energies"):
        fit_reference_energies([[1], [6]], [1.0], [1, 6])


def test_prior_makes_one_molecule_enough():
    water = [np.array([8, 1, 1])] * 5
    prior = {1: -13.0, 8: -2040.0}
    energies = [TRUE[8] + 2 * TRUE[1]] * 5
    fit = fit_reference_energies(water, energies, [1, 8], prior=prior)
    assert fit[8] + 2 * fit[1] == pytest.approx(energies[0], abs=1e-8)
    # the smallest change to the prior: the shift is spread along the composition (1 O, 2 H)
    d_o, d_h = fit[8] - prior[8], fit[1] - prior[1]
    assert d_h == pytest.approx(2 * d_o, rel=1e-9)


# --- refitting a head that has references: the change, ridge-regularised ----------------------

def test_a_well_determined_change_is_fitted_all_but_exactly():
    rng = np.random.default_rng(2)
    numbers, _ = _data(rng, 60)
    change = {1: 0.3, 6: -1.5, 7: -2.0, 8: 0.7}
    residuals = [sum(change[int(z)] for z in zs) for zs in numbers]
    fit = refit_change(numbers, residuals, [1, 6, 7, 8], prior=TRUE)
    assert fit.method == "ridge" and fit.condition < 20 and fit.n_formulas > 20
    for z in TRUE:
        assert fit.change[z] == pytest.approx(change[z], abs=0.02)
        assert fit.energies[z] == pytest.approx(TRUE[z] + fit.change[z])


def test_few_formulas_an_ill_conditioned_refit_stays_small():
    # Five formulas (ethanol, acetone, acetaldehyde, methylamine, ethylamine) that barely separate
    # the elements, and noisy residuals (conformer energies): least squares swings the references
    # by eV where the formulas barely look; the ridge keeps the change small there.
    formulas = [[1] * 6 + [6] * 2 + [8], [1] * 6 + [6] * 3 + [8], [1] * 4 + [6] * 2 + [8],
                [1] * 5 + [6] + [7], [1] * 7 + [6] * 2 + [7]]
    rng = np.random.default_rng(3)
    numbers = [np.array(f) for f in formulas for _ in range(5)]
    residuals = 0.2 * rng.normal(size=len(numbers))
    fit = refit_change(numbers, residuals, [1, 6, 7, 8], prior=TRUE, ridge=1e-2)
    exact = refit_change(numbers, residuals, [1, 6, 7, 8], prior=TRUE, ridge=0.0)
    assert fit.method == "ridge" and 30 < fit.condition < 100
    assert max(map(abs, fit.change.values())) < 0.5 * max(map(abs, exact.change.values()))
    assert fit.describe() == ("ridge; 4 elements in 5 formulas of 25 structures; composition matrix "
                              "condition number 51.9")


def test_formulas_that_cannot_separate_the_elements_get_one_shift_per_atom():
    water = [np.array([8, 1, 1])] * 4
    fit = refit_change(water, [0.3, 0.31, 0.29, 0.3], [1, 6, 8], prior=TRUE)
    assert fit.method == "global shift" and math.isinf(fit.condition)
    assert fit.change[1] == pytest.approx(0.1) and fit.change[8] == pytest.approx(0.1)
    assert fit.change[6] == 0.0 and fit.energies[6] == TRUE[6]  # no carbon: the prior's
    assert "cannot separate" in fit.describe() and "∞" in fit.describe()
    # Two formulas for three elements: the directions they see are fitted, the other kept.
    two = [np.array([8, 1, 1])] * 2 + [np.array([6, 1, 1, 1, 1])] * 2
    fit = refit_change(two, [0.3, 0.3, 0.5, 0.5], [1, 6, 8], prior=TRUE)
    assert fit.method == "ridge" and math.isinf(fit.condition)
    assert 2 * fit.change[1] + fit.change[8] == pytest.approx(0.3, abs=1e-3)
    assert 4 * fit.change[1] + fit.change[6] == pytest.approx(0.5, abs=1e-3)
