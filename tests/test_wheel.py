"""What a pip user gets: the wheel is built from a clean copy of the tree, installed (`--no-deps`)
into a throwaway venv, and every command runs from an empty folder, far from the checkout.

The venv sees the dependencies already installed in the test's environment (a .pth line to its
site-packages, after the venv's own), so nothing is downloaded; `foundation` itself comes only
from the wheel (checked). About 30 s on 2 cores.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from tests.conftest import write_molecules_xyz

pytestmark = pytest.mark.integration  # builds the wheel, installs it into a new venv with pip

REPO = Path(__file__).resolve().parents[1]
# Repository folder -> where it lands in the wheel (setup.py maps the last three).
FOLDERS = {"foundation": "foundation", "recipes": "foundation/recipes",
           "data_pipelines": "foundation/pipelines", "hydra_configs": "foundation/configs"}


def _source_copy(dest: Path) -> Path:
    """The files git would commit (tracked or new, not ignored): no stale build/ folder, no runs."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, check=True,
                            capture_output=True, text=True).stdout.split("\0")
    for name in filter(None, listed):
        if (REPO / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, dest / name)
    return dest


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    src = _source_copy(tmp_path_factory.mktemp("src"))
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(dist),
                    str(src)], check=True, capture_output=True, cwd=src, timeout=300)
    (path,) = dist.glob("foundation_mlip-*.whl")
    return path


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True, timeout=120)
    python = root / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    # After the venv's own site-packages: the test environment's dependencies (and its pip).
    Path(purelib, "zz_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--ignore-installed", str(wheel)],
                   check=True, capture_output=True, timeout=300)
    return root


def test_the_wheel_installs_one_name_and_every_module(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")} == {"foundation"}
    tracked = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", *FOLDERS], cwd=REPO, check=True,
                             capture_output=True, text=True).stdout.split()
    expected = {FOLDERS[p.split("/")[0]] + p[p.index("/"):] for p in tracked
                if p.endswith((".py", ".yaml")) and (REPO / p).is_file()}
    assert sorted(expected - set(names)) == []  # a folder without __init__.py would be missing


def _run(venv: Path, cwd: Path, *argv: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "FOUNDATION_HYDRA_CONFIGS")}
    env.update(FOUNDATION_CACHE=str(cwd / "cache"), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    proc = subprocess.run([str(venv / "bin" / argv[0]), *argv[1:]], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, f"{' '.join(argv)}:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return proc.stdout


def test_every_command_runs_from_an_empty_folder(venv, tmp_path):
    where = _run(venv, tmp_path, "python", "-c", "import foundation, foundation.recipes.demo, "
                 "foundation.pipelines.label.run as p; print(foundation.__file__); print(p.__file__)")
    assert all(Path(line).is_relative_to(venv) for line in where.split()), where
    write_molecules_xyz(tmp_path / "tiny.xyz", n_molecules=6, n_conformers=5)

    out = _run(venv, tmp_path, "foundation", "train", "experiment=smoke", "data=embedded", "trainer.max_steps=10",
               "name=smoke")
    assert (tmp_path / "runs" / "smoke" / "model.safetensors").is_file(), out
    _run(venv, tmp_path, "foundation", "finetune", "--model", "ani-cc-mini", "--data", "tiny.xyz",
         "--energy-key", "REF_energy", "--forces-key", "REF_forces", "--fidelity", "dft",
         "--out", "mine.safetensors", "trainer.max_steps=10", "trainer.val_every=5", "trainer.device=cpu")
    assert (tmp_path / "mine.safetensors").is_file() and (tmp_path / "mine.md").is_file()
    out = _run(venv, tmp_path, "foundation", "evaluate", "--model", "mine.safetensors", "--data", "tiny.xyz",
               "--energy-key", "REF_energy")
    assert "energy MAE" in out
    out = _run(venv, tmp_path, "foundation", "md", "tiny.xyz", "--model", "mine.safetensors", "--steps", "5")
    assert "energy drift" in out
    assert "ani-cc-mini" in _run(venv, tmp_path, "foundation", "hub", "list")
    assert "usage" in _run(venv, tmp_path, "python", "-m", "foundation.recipes.demo", "--help")


def test_the_test_environment_resolves_the_tools_from_any_folder(tmp_path):
    """The same names through the install the tests run in (`make install`: `pip install -e`), where
    setuptools' editable finder maps foundation.recipes -> recipes/ and so on."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    code = ("import foundation.recipes.demo as r, foundation.pipelines.label.run as p, foundation.configs as c; "
            "from importlib import resources; print(r.__file__, p.__file__, resources.files(c) / 'train.yaml')")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                         check=True, timeout=120).stdout.split()
    assert all(Path(p).is_file() for p in out), out
