"""benchmarks/peers_mace.py's scoring and figures (the whole script runs at a tiny size in
test_run_all's quick run): what is compared with what, and which way the ratios point."""

import numpy as np
import pytest

from benchmarks import peers_mace
from foundation.data.sample import Sample

CC, DFT = peers_mace.CC, peers_mace.DFT


def _test_set():
    rng = np.random.default_rng(0)
    water = [Sample([8, 1, 1], rng.normal(size=(3, 3)), {CC: -2000.0 + k, DFT: -2001.0 + 2 * k},
                    {DFT: rng.normal(size=(3, 3))}, molecule="water") for k in range(3)]
    methane = [Sample([6, 1, 1, 1, 1], rng.normal(size=(5, 3)), {DFT: -1100.0}, {DFT: rng.normal(size=(5, 3))},
                      molecule="methane")]  # DFT only: scored for forces, not against CC
    return water + methane


def test_relative_energies_are_scored_against_cc_and_forces_against_dft():
    test = _test_set()
    cc_exact = np.array([-2000.0, -1999.0, -1998.0, 0.0]) + 7.0  # right CC relative energies, any offset
    dft_forces = [s.forces[DFT] for s in test]
    scored = peers_mace.score(cc_exact, dft_forces, test)
    assert scored["rel_energy_rmse_vs_cc_kcal_mol"] == pytest.approx(0.0, abs=1e-9)
    assert scored["forces_mae_vs_dft_ev_per_a"] == 0.0
    assert (scored["cc_test_structures"], scored["dft_test_structures"], scored["test_molecules"]) == (3, 4, 1)
    dft_energies = np.array([s.energies[DFT] for s in test])  # the DFT model's own level: off from CC
    off = peers_mace.score(dft_energies, [f + 0.5 for f in dft_forces], test)
    assert off["rel_energy_rmse_vs_cc_kcal_mol"] > 10 and off["forces_mae_vs_dft_ev_per_a"] == pytest.approx(0.5)


def test_error_ratios_are_peer_over_ours_and_throughput_ours_over_peer():
    def row(error, rate):
        return {"rel_energy_rmse_vs_cc_kcal_mol": error, "forces_mae_vs_dft_ev_per_a": error / 10,
                "structures_per_s": rate}

    results = {"mace": row(1.0, 60.0), "mace_torch": row(2.0, 30.0), "ani": row(5.0, 900.0), "painn": {"failed": "x"}}
    energy, forces, throughput = peers_mace.figures(results, {"epochs": 2})
    assert energy["ratio"] == 2.0 and energy["goal_met"] and forces["ratio"] == 2.0  # ours half the error
    assert throughput["ratio"] == 2.0 and throughput["goal"] == 1.0
    assert energy["goal"] == pytest.approx(1 / 1.1) and energy["also"] == {"ani": 5.0, "painn": None}
    assert "mace-torch" in energy["versions"]
