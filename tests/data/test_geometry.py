"""The one check of positions and cells (foundation.data.geometry): what it refuses, how the
message names the structure and the atom, and that readers run it before anything else reads
the coordinates (the molecule key's k-d tree raised on NaN; vesin died on 1e6 Å)."""

from __future__ import annotations

import ase
import ase.io
import numpy as np
import pytest
from ase.build import molecule

from foundation.data.ase_io import read_samples
from foundation.data.geometry import MAX_DISTANCE, MIN_CELL_HEIGHT, check_geometry, periodic_heights
from foundation.data.sample import Sample
from foundation.errors import BadStructureError, DataError

WATER = molecule("H2O")  # O, H, H


def _water(x: float) -> np.ndarray:
    positions = WATER.positions.copy()
    positions[1, 0] = x
    return positions


@pytest.mark.parametrize("x, message", [
    (np.nan, "f.extxyz:0: atom 1 (H) has a non-finite coordinate (nan)"),
    (np.inf, "f.extxyz:0: atom 1 (H) has a non-finite coordinate (inf)"),
    (-np.inf, "f.extxyz:0: atom 1 (H) has a non-finite coordinate (-inf)"),
    (1e6, "f.extxyz:0: atom 1 (H) is 1e+06 Å from the origin (limit 1e4 Å)"),
    (1e10, "f.extxyz:0: atom 1 (H) is 1e+10 Å from the origin (limit 1e4 Å)"),
    (1e300, "f.extxyz:0: atom 1 (H) is 1e+300 Å from the origin (limit 1e4 Å)"),  # no overflow to inf
])
def test_broken_coordinates_name_the_structure_and_the_atom(x, message):
    with pytest.raises(BadStructureError) as err:
        check_geometry(WATER.numbers, _water(x), where="f.extxyz:0")
    assert str(err.value) == message
    assert isinstance(err.value, ValueError) and isinstance(err.value, DataError)


def test_extreme_but_allowed_coordinates_pass():
    corner = np.full(3, MAX_DISTANCE / np.sqrt(3) * (1 - 1e-12))
    check_geometry([6, 6, 1], [corner, -corner, [0, 0, MAX_DISTANCE]], np.zeros((3, 3)), [False] * 3)
    check_geometry([1], [[0, 0, 0]])


@pytest.mark.parametrize("cell, pbc, message", [
    (np.diag([5.0, np.nan, 5.0]), [True] * 3, "s: cell vector 1 has a non-finite component (nan)"),
    (np.diag([5.0, 5.0, 2e4]), [False] * 3, "s: cell vector 2 is 2e+04 Å long (limit 1e4 Å)"),
    (np.zeros((3, 3)), [True, False, False], "s: the cell is singular along periodic direction 0 (height 0 Å"),
    (np.diag([5.0, 5.0, 0.0]), [True] * 3, "s: the cell is singular along periodic direction 2 (height 0 Å"),
    ([[5, 0, 0], [10, 0, 0], [0, 0, 5]], [True] * 3, "s: the cell is singular along periodic direction 0"),
    (np.diag([5.0, 5.0, 0.4]), [True] * 3, "s: the cell is singular along periodic direction 2 (height 0.4 Å"),
])
def test_bad_cells_are_refused(cell, pbc, message):
    with pytest.raises(BadStructureError) as err:
        check_geometry([1], [[0, 0, 0]], cell, pbc, where="s")
    assert str(err.value).startswith(message)


@pytest.mark.parametrize("cell, pbc", [
    (np.zeros((3, 3)), [False] * 3),  # a molecule: no cell at all
    (np.diag([5.0, 0.0, 0.0]), [True, False, False]),  # a chain: only its own direction matters
    (np.diag([5.0, 5.0, 0.0]), [True, True, False]),  # a slab without a vacuum vector
    (np.diag([5.0, 5.0, MIN_CELL_HEIGHT]), [True] * 3),  # thin, at the limit
    ([[1e4, 0, 0], [1e4 - 1, 0.5, 0], [0, 0, 5]], [True] * 3),  # nearly singular, heights 0.5
])
def test_periodic_cells_that_are_not_singular_pass(cell, pbc):
    check_geometry([1], [[0, 0, 0]], cell, pbc)


def test_periodic_heights_are_the_layer_spacings_along_periodic_directions():
    cell = np.array([[4.0, 0, 0], [2.0, 3.0, 0], [1.0, 1.0, 2.5]])
    volume = abs(np.linalg.det(cell))
    faces = [np.linalg.norm(np.cross(cell[(k + 1) % 3], cell[(k + 2) % 3])) for k in range(3)]
    assert periodic_heights(cell, [True] * 3) == pytest.approx(volume / np.array(faces))
    assert periodic_heights(cell, [False, True, False]) == pytest.approx([np.inf, np.linalg.norm(cell[1]), np.inf])
    in_plane = periodic_heights(cell, [True, True, False])  # within the plane of the two
    assert in_plane[:2] == pytest.approx([4.0 * 3.0 / np.linalg.norm(cell[1]), 3.0]) and in_plane[2] == np.inf
    assert periodic_heights(np.diag([5.0, 5.0, 0.0]), [True] * 3) == pytest.approx([5.0, 5.0, 0.0])


def test_sample_validate_checks_the_geometry_before_labels_and_distances():
    sample = Sample(WATER.numbers, _water(np.nan), energies={"dft": np.nan}, source="w.xyz:3")
    with pytest.raises(BadStructureError, match=r"^w.xyz:3: atom 1 \(H\) has a non-finite coordinate"):
        sample.validate()


@pytest.mark.parametrize("x", [np.nan, np.inf, 1e6, 1e10])
def test_the_reader_refuses_before_the_molecule_key_and_skips_when_asked(tmp_path, x):
    images = []
    for k in range(3):
        atoms = WATER.copy()
        atoms.positions = _water(x) if k == 1 else WATER.positions + k
        atoms.info["E"] = -2079.0
        images.append(atoms)
    path = tmp_path / "f.extxyz"
    ase.io.write(path, images, format="extxyz")
    with pytest.raises(BadStructureError, match=rf"^{path}:1: atom 1 \(H\) (has a non-finite|is 1e\+)"):
        read_samples(path, "E")
    skipped: list[str] = []
    samples = read_samples(path, "E", on_error="skip", skipped=skipped)
    assert [s.source for s in samples] == [f"{path}:0", f"{path}:2"]
    assert len(skipped) == 1 and skipped[0].startswith(f"{path}:1: atom 1 (H)")
    assert samples[0].molecule == samples[1].molecule != ""  # keys are still computed for the rest


def test_a_singular_periodic_cell_in_a_file_is_named(tmp_path):
    atoms = ase.Atoms("H2", positions=[[0, 0, 0], [0.74, 0, 0]], cell=np.diag([6.0, 6.0, 0.0]), pbc=True)
    atoms.info["E"] = -31.0
    path = tmp_path / "slab.extxyz"
    ase.io.write(path, atoms, format="extxyz")
    with pytest.raises(BadStructureError, match=rf"^{path}:0: the cell is singular along periodic direction 2"):
        read_samples(path, "E")
