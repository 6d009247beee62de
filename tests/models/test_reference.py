"""Least-squares reference energies."""

import numpy as np
import pytest

from foundation.errors import UserError
from foundation.models.reference import fit_reference_energies

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
