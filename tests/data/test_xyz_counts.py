"""Atom counts of an extxyz file checked before ASE indexes it (a count of 1e9 kept its reader
busy for minutes): one line naming the file, the frame and the line."""

from __future__ import annotations

import re

import ase.io
import pytest
from ase.build import molecule

from foundation.data.ase_io import read_atoms
from foundation.data.xyz_counts import check_xyz_counts
from foundation.errors import DataError


@pytest.fixture
def two_frames(tmp_path):
    path = tmp_path / "two.extxyz"
    ase.io.write(path, [molecule("H2O"), molecule("CH4")], format="extxyz")
    return path


def test_good_files_and_other_formats_pass(two_frames, tmp_path):
    check_xyz_counts(two_frames)
    two_frames.write_text(two_frames.read_text() + "\n\n")  # blank lines after the last frame
    check_xyz_counts(two_frames)
    db = tmp_path / "x.json"
    ase.io.write(db, molecule("H2O"), format="json")
    check_xyz_counts(db)


@pytest.mark.parametrize("count, message", [
    ("1000000000", "frame 1, line 6: 1000000000 atoms, but 5 lines follow"),
    ("-3", "frame 1, line 6: -3 atoms, but 5 lines follow"),
])
def test_a_count_beyond_the_file_is_one_line_at_once(two_frames, count, message):
    lines = two_frames.read_text().split("\n")
    lines[5] = count  # the second frame's count line (CH4, after 1 + 1 + 3 lines of water)
    two_frames.write_text("\n".join(lines))
    with pytest.raises(DataError, match=rf"^{two_frames}: cannot read structures \({re.escape(message)}; a wrong count"):
        read_atoms(two_frames)



