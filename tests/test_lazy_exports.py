"""The public faces of `foundation.data`, `foundation.hub` and `foundation.models`: every name they
list resolves to the object of the module it names, `dir()` shows it, an unknown name is an
AttributeError, and importing a face loads nothing heavy."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from foundation.lazy_exports import exported_names

FACES = ["foundation.data", "foundation.hub", "foundation.models"]


@pytest.mark.parametrize("face", FACES)
def test_every_public_name_is_the_object_of_its_module(face):
    package = importlib.import_module(face)
    names = exported_names(package.__file__)
    assert names and sorted(names) == package.__all__
    for name, (module, attribute) in names.items():
        assert module.startswith(face + "."), f"{face}.{name} comes from outside the package: {module}"
        assert getattr(package, name) is getattr(importlib.import_module(module), attribute)
        assert name in dir(package)
    submodules = {p.stem for p in Path(package.__file__).parent.iterdir() if p.suffix == ".py" or p.is_dir()}
    assert not set(names) & submodules, "a public name that is also a submodule is replaced by it on import"
    with pytest.raises(AttributeError, match="has no attribute 'no_such_name'"):
        getattr(package, "no_such_name")


def test_a_submodule_is_still_importable_by_from_import():
    from foundation.models import aev_native  # a module, not a listed name

    assert aev_native.__name__ == "foundation.models.aev_native"


@pytest.mark.integration  # a fresh interpreter, the only place where nothing is imported yet
def test_importing_the_faces_loads_no_torch():
    code = "import sys, foundation.data, foundation.hub, foundation.models; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "False", done.stderr
