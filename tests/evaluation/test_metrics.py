import numpy as np
import pytest

from foundation.evaluation import metrics
from foundation.units import EV_TO_KCAL_MOL


def test_energy_errors_by_hand():
    ref = np.array([-100.0, -200.0, -50.0])
    pred = ref + np.array([0.1, -0.2, 0.0])
    n_atoms = np.array([2, 4, 1])
    assert metrics.energy_mae_per_atom(pred, ref, n_atoms) == pytest.approx((0.05 + 0.05 + 0) / 3)
    assert metrics.energy_mae_kcal_mol(pred, ref) == pytest.approx(0.1 * EV_TO_KCAL_MOL)
    assert metrics.energy_rmse_kcal_mol(pred, ref) == pytest.approx(np.sqrt(0.05 / 3) * 23.0605, rel=1e-5)


def test_relative_energy_removes_each_formulas_offset():
    ref = np.array([-10.0, -10.5, -11.0, -20.0, -20.2])
    groups = ["C2H6O", "C2H6O", "C2H6O", "CH4", "CH4"]
    shifted = ref + np.array([3.0, 3.0, 3.0, -1.0, -1.0])  # a constant error per formula
    assert metrics.relative_energy_rmse_kcal_mol(shifted, ref, groups) == pytest.approx(0.0, abs=1e-9)
    assert metrics.energy_rmse_kcal_mol(shifted, ref) > 10
    one_off = ref.copy()
    one_off[0] += 0.3  # relative errors within its group: +0.2, -0.1, -0.1 eV
    expected = np.sqrt((0.2**2 + 0.1**2 + 0.1**2) / 5) * EV_TO_KCAL_MOL
    assert metrics.relative_energy_rmse_kcal_mol(one_off, ref, groups) == pytest.approx(expected)


def test_relative_energy_leaves_out_single_structures():
    ref = np.array([-1.0, -2.0, -3.0])
    pred = ref + np.array([5.0, 0.1, -0.1])
    assert metrics.relative_energy_rmse_kcal_mol(pred, ref, ["A", "B", "B"]) == pytest.approx(0.1 * EV_TO_KCAL_MOL)
    assert np.isnan(metrics.relative_energy_rmse_kcal_mol(pred, ref, ["A", "B", "C"]))


def test_forces_errors_are_per_component():
    ref = np.zeros((2, 3))
    pred = np.array([[0.3, 0.0, 0.0], [0.0, 0.0, -0.3]])
    assert metrics.forces_mae(pred, ref) == pytest.approx(0.1)
    assert metrics.forces_rmse(pred, ref) == pytest.approx(np.sqrt(0.18 / 6))


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="differ"):
        metrics.energy_rmse_kcal_mol(np.zeros(2), np.zeros(3))
    with pytest.raises(ValueError, match="differ"):
        metrics.forces_mae(np.zeros((2, 3)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="no structures"):
        metrics.energy_rmse_kcal_mol(np.zeros(0), np.zeros(0))
