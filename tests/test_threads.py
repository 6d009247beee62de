"""`foundation.threads`: the thread count is chosen from the cores the process may use (affinity,
cgroup quota, torchrun's processes per node) and the system's size; the user's choice wins
(--threads, FOUNDATION_THREADS, OMP/MKL_NUM_THREADS); one note when the count is lowered."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest
import torch
from ase.build import molecule
from ase.io import write

from foundation import threads
from foundation.cli.main import main
from foundation.errors import UserError


@pytest.mark.parametrize("affinity, cpu_max, local, cores", [
    ({0, 1, 2, 3}, "max 100000", 1, 4),  # no quota: the affinity mask
    ({0, 1, 2, 3}, "200000 100000", 1, 2),  # a 2-core quota on a 4-CPU mask
    ({0, 1, 2, 3}, "150000 100000", 1, 2),  # a part core still runs a thread
    ({0, 1, 2, 3}, "50000 100000", 1, 1),
    ({0, 1}, "800000 100000", 1, 2),  # a quota above the mask: the mask
    ({0, 1, 2, 3, 4, 5, 6, 7}, "", 4, 2),  # 4 torchrun processes on this node share 8 CPUs
    ({0}, None, 2, 1),  # never below one
])
def test_usable_cores_from_affinity_quota_and_processes(affinity, cpu_max, local, cores):
    assert threads.usable_cores(affinity, cpu_max if cpu_max is not None else "", local) == cores


def test_quota_read_from_cgroup_files(tmp_path):
    (tmp_path / "cpu.max").write_text("300000 100000\n")
    assert threads.read_cpu_max(tmp_path) == "300000 100000"
    assert threads.quota_cores(threads.read_cpu_max(tmp_path)) == 3
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    (v1 / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert threads.quota_cores(threads.read_cpu_max(v1)) is None  # unlimited
    assert threads.quota_cores("garbage") is None


@pytest.mark.parametrize("requested, environ, n_atoms, threads_, source", [
    (None, {}, None, 4, "auto"),  # nothing known of the system: every usable core
    (None, {}, 12, 1, "auto"),  # a small molecule: one thread
    (None, {}, 600, 3, "auto"),  # 600 atoms: ceil(600 / 256)
    (None, {}, 100_000, 4, "auto"),  # never above the usable cores
    (None, {"FOUNDATION_THREADS": "3"}, 12, 3, "FOUNDATION_THREADS"),  # the user's choice wins
    (2, {"FOUNDATION_THREADS": "3"}, 12, 2, "--threads"),  # --threads before the variable
    (None, {"OMP_NUM_THREADS": "2"}, 12, None, "OMP_NUM_THREADS"),  # set at start: left alone
    (8, {}, None, 8, "--threads"),  # more than the cores, if asked for
])
def test_choice(requested, environ, n_atoms, threads_, source):
    choice = threads.choose(requested, environ, cores=4, n_atoms=n_atoms)
    assert (choice.threads, choice.source) == (threads_, source)


@pytest.mark.parametrize("requested, environ", [(0, {}), (None, {"FOUNDATION_THREADS": "two"}),
                                                (None, {"FOUNDATION_THREADS": "-1"})])
def test_bad_counts_are_user_errors(requested, environ):
    with pytest.raises(UserError, match="number of threads must be a whole number >= 1"):
        threads.choose(requested, environ, cores=2)


@pytest.fixture
def fresh_state(monkeypatch):
    """Threads as a new process has them (torch's default: one per CPU of the mask), restored after."""
    before = torch.get_num_threads()
    for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", threads.ENV):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setattr(threads, "_state", {"ours": None, "explicit": False, "noted": False, "cores": (None, 0)})
    monkeypatch.setattr(threads, "usable_cores", lambda local_processes=1: 2)
    monkeypatch.setattr(threads, "_affinity", lambda: {0, 1})
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_calculator_fits_small_systems_and_notes_it_once(fresh_state, caplog):
    threads.configure()  # the CLI's call: every usable core
    assert torch.get_num_threads() == 2
    with caplog.at_level(logging.WARNING, logger="foundation.threads"):
        assert threads.fit_system(12).threads == 1
        assert threads.fit_system(9).threads == 1
    assert torch.get_num_threads() == 1
    notes = [r.getMessage() for r in caplog.records]
    assert len(notes) == 1 and "1 thread of 2 (12 atoms; --threads N or FOUNDATION_THREADS=N to choose)" in notes[0]
    assert threads.fit_system(5000).threads == 2  # a large system gets the cores back


def test_user_choices_are_left_alone(fresh_state, monkeypatch):
    torch.set_num_threads(3)  # the user's own call: neither torch's default nor ours
    assert threads.fit_system(12) is None and torch.get_num_threads() == 3
    torch.set_num_threads(2)
    threads.configure(2)  # --threads 2
    assert threads.fit_system(12) is None and torch.get_num_threads() == 2
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    threads._state["explicit"] = False
    assert threads.fit_system(12) is None and torch.get_num_threads() == 2


def test_cli_flag_anywhere_sets_the_count(fresh_state, tmp_path, capsys):
    """`--threads N` before or after the subcommand sets torch's count for the command (here a
    real `foundation md` of methanol, one step with a small model); a bad N is one line, exit 2."""
    from foundation.hub.format import save_model
    from foundation.models import ANIConfig

    torch.manual_seed(0)
    model = save_model(ANIConfig(hidden={s: [8] for s in "HCNO"}).build().eval(), tmp_path / "m.safetensors")
    structure = tmp_path / "methanol.xyz"
    write(structure, molecule("CH3OH"))
    md = ["md", str(structure), "--model", str(model), "--steps", "1", "--device", "cpu"]
    assert main([*md, "--threads", "2"]) == 0
    assert torch.get_num_threads() == 2  # asked for: the calculator does not lower it for 6 atoms
    threads._state.update(ours=None, explicit=False)
    assert main(["--threads=1", *md]) == 0 and torch.get_num_threads() == 1
    capsys.readouterr()
    assert main([*md, "--threads", "0"]) == 2
    assert capsys.readouterr().err.strip() == \
        "foundation md: error: --threads=0: the number of threads must be a whole number >= 1"


@pytest.mark.integration  # the command as a child process
def test_a_bad_count_is_one_line_from_the_command(tmp_path):
    structure = tmp_path / "methanol.xyz"
    write(structure, molecule("CH3OH"))
    done = subprocess.run([sys.executable, "-m", "foundation", "md", str(structure), "--model", "ani-cc-mini",
                           "--threads", "0"], capture_output=True, text=True)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == "foundation md: error: --threads=0: the number of threads must be a whole number >= 1"
