"""Fuzzing the readers through the commands: random and mutated extxyz text and ASE databases
(JSON and SQLite) with numbers replaced by nan, inf, 1e308, counts made huge, lines cut, dropped
or doubled, symbols and headers garbled, given to `foundation evaluate` and `foundation
finetune`, each run in its own process (tests/faults/cli_forks.py). Every outcome is exit 0, or
exit 2 with one error line (warnings aside) and never a traceback, never a signal. Seeded: the
same files every run."""

from __future__ import annotations

import re

import ase.db
import numpy as np
import pytest

from foundation.data.ase_io import samples_to_atoms
from tests.conftest import make_molecule_samples
from tests.faults.cli_forks import run_commands

pytestmark = pytest.mark.integration  # each damaged file through the commands, as child processes

SEED = 21
N_TEXT, N_JSON, N_SQLITE, N_RANDOM = 20, 6, 5, 2
NUMBER = re.compile(r"(?<![\w.])-?\d+\.?\d*(?:[eE][-+]?\d+)?(?![\w.])")
COORDINATE = re.compile(r"^[A-Z][a-z]?\s+(\S+)\s+(\S+)\s+(\S+)", flags=re.M)  # extxyz atom lines
REPLACEMENTS = ["nan", "inf", "-inf", "NaN", "1e308", "-1e308", "1e309", "1e6", "1e10", "0", "-1", "", "abc",
                "1e-320", "99999999999999999999"]


def _images():
    samples = make_molecule_samples(6, 1, fidelity="fuzz")
    return samples_to_atoms(samples, energy_key="REF_energy", forces_key="REF_forces", fidelity="fuzz")


def _labels(atoms):
    """(atoms, key_value_pairs, data) for `db.write`: the labels as an ASE database keeps them."""
    atoms = atoms.copy()
    forces = atoms.arrays.pop("REF_forces")
    return atoms, {"REF_energy": atoms.info.pop("REF_energy")}, {"REF_forces": forces}


def _write_row(db, atoms, pairs, data):
    db.write(atoms, key_value_pairs=pairs, data=data)


def _mutate(text: str, rng: np.random.Generator) -> str:
    """One to three of: a coordinate or any number replaced, a count line made huge or wrong, a
    line cut, dropped or doubled, an element symbol or the header garbled, the file truncated."""
    for _ in range(rng.integers(1, 4)):
        lines = text.split("\n")
        what = rng.integers(8)
        coordinates = list(COORDINATE.finditer(text))
        if what == 7 and coordinates:  # a coordinate of an atom
            m = coordinates[rng.integers(len(coordinates))]
            group = int(rng.integers(1, 4))
            text = text[:m.start(group)] + str(rng.choice(REPLACEMENTS)) + text[m.end(group):]
        elif what <= 1 or what == 7:  # any number (position, force, label, lattice, count)
            matches = list(NUMBER.finditer(text))
            m = matches[rng.integers(len(matches))]
            text = text[:m.start()] + str(rng.choice(REPLACEMENTS)) + text[m.end():]
        elif what == 2:  # an atom count line
            counts = [k for k, line in enumerate(lines) if re.fullmatch(r"\d+", line.strip())]
            if counts:  # (JSON databases have none)
                lines[counts[rng.integers(len(counts))]] = str(rng.choice(["1000000000", "0", "-3", "1", "99"]))
                text = "\n".join(lines)
        elif what == 3:  # a line cut in the middle, dropped or doubled
            k = int(rng.integers(len(lines)))
            lines[k:k + 1] = [[lines[k][: len(lines[k]) // 2]], [], [lines[k], lines[k]]][rng.integers(3)]
            text = "\n".join(lines)
        elif what == 4:  # an element symbol
            symbols = list(re.finditer(r"^[A-Z][a-z]?(?= )|(?<=\"numbers\": \[)\d+", text, flags=re.M))
            if symbols:
                m = symbols[rng.integers(len(symbols))]
                text = text[:m.start()] + str(rng.choice(["X", "Xx", "Og", "Fe", "h", "0", "200"])) + text[m.end():]
        elif what == 5:  # the header: properties, lattice, pbc
            text = text.replace(*[("pos:R:3", "pos:R:2"), ("pos:R:3", "pos:S:3"), ('pbc="F F F"', 'pbc="T T T"'),
                                  ("REF_forces:R:3", "REF_forces:R:1"), ("Properties=", "Propertie=")]
                                [rng.integers(5)], 1)
        else:  # the file cut anywhere
            text = text[: int(rng.integers(len(text)))]
    return text


def _write_files(tmp_path) -> list:
    rng = np.random.default_rng(SEED)
    base = tmp_path / "base.extxyz"
    ase.io.write(base, _images(), format="extxyz")
    text = base.read_text()
    files = []
    for k in range(N_TEXT):
        path = tmp_path / f"mutated_{k}.extxyz"
        path.write_text(_mutate(text, rng))
        files.append(path)
    json_base = tmp_path / "base.json"
    with ase.db.connect(json_base) as db:
        for atoms in _images():
            _write_row(db, *_labels(atoms))
    for k in range(N_JSON):
        path = tmp_path / f"mutated_{k}.json"
        path.write_text(_mutate(json_base.read_text(), rng))
        files.append(path)
    for k in range(N_SQLITE):
        path = tmp_path / f"broken_{k}.db"
        with ase.db.connect(path) as db:
            for atoms in _images():
                value = float(rng.choice([np.nan, np.inf, 1e308, 1e6, -1e10]))
                target = rng.integers(3)
                if target == 0:
                    atoms.positions[rng.integers(len(atoms)), rng.integers(3)] = value
                elif target == 1:
                    atoms.info["REF_energy"] = value
                else:
                    atoms.arrays["REF_forces"][rng.integers(len(atoms)), rng.integers(3)] = value
                _write_row(db, *_labels(atoms))
        if k >= N_SQLITE - 2:  # a damaged database file: bytes flipped, then cut
            raw = bytearray(path.read_bytes())
            for i in rng.integers(0, len(raw), 20):
                raw[i] ^= 0xFF
            path.write_bytes(bytes(raw[: len(raw) * 3 // 4]))
        files.append(path)
    for k in range(N_RANDOM):
        path = tmp_path / f"random_{k}.extxyz"
        path.write_bytes(rng.bytes(int(rng.integers(1, 4000))))
        files.append(path)
    return files


def test_damaged_files_give_exit_0_or_one_error_line_never_a_traceback_or_a_signal(tmp_path):
    files = _write_files(tmp_path)
    commands = []
    for k, path in enumerate(files):
        forces = ["--forces-key", "REF_forces"] if k % 2 else []
        commands.append(["evaluate", "--model", "ani-cc-mini", "--data", str(path), "--energy-key", "REF_energy",
                         *forces, "--device", "cpu"])
        commands.append(["finetune", "--model", "ani-cc-mini", "--data", str(path), "--energy-key", "REF_energy",
                         *forces, "--quiet", f"out_dir={tmp_path / 'runs'}", f"name=fuzz_{k}", "trainer.max_steps=1",
                         "trainer.val_every=1", "trainer.device=cpu"])
    outcomes = run_commands(commands, tmp_path, timeout=60)
    failures = [str(o) for o in outcomes if not _acceptable(o)]
    assert not failures, "\n\n".join(failures)
    codes = [o.code for o in outcomes]
    assert codes.count(2) >= len(codes) // 4 and codes.count(0) >= 2, codes  # the fuzz reaches both outcomes


def _acceptable(outcome) -> bool:
    if outcome.code == 0:
        return "Traceback" not in outcome.stderr
    if outcome.code != 2 or "Traceback" in outcome.stderr:
        return False
    prefix = f"foundation {outcome.argv[0]}: "
    lines = outcome.stderr.splitlines()
    errors = [line for line in lines if line.startswith(prefix + "error: ")]
    return len(errors) == 1 and lines[-1] == errors[0] and all(
        line.startswith(prefix + "warning: ") for line in lines[:-1])
