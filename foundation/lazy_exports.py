"""A package's public names, imported on first use (PEP 562), so that importing a package costs
nothing until one of its names is asked for: `foundation --help` loads no torch, and
`import foundation.data.elements` does not pull in the whole data stack.

A public name never equals a submodule's name: importing the submodule would set the package's
attribute of that name to the module (tests/test_lazy_exports.py checks). A package lists its
public names once, as `from … import …` statements under `if TYPE_CHECKING:`
in its `__init__` (what type checkers, editors and tests/test_layers.py read); `lazy_exports` reads
that block and imports each name from its module the first time it is used:

    from typing import TYPE_CHECKING

    from foundation.lazy_exports import lazy_exports

    if TYPE_CHECKING:
        from foundation.data.sample import Sample

    __all__, __getattr__, __dir__ = lazy_exports(__name__, __file__)
"""

from __future__ import annotations

import ast
import importlib
import sys
from collections.abc import Callable
from pathlib import Path


def exported_names(init_file: str | Path) -> dict[str, tuple[str, str]]:
    """{public name: (module, name in that module)} from the `if TYPE_CHECKING:` block of a
    package's `__init__.py`."""
    names = {}
    for node in ast.parse(Path(init_file).read_text(encoding="utf-8")).body:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for statement in node.body:
                if not (isinstance(statement, ast.ImportFrom) and statement.level == 0):
                    raise ValueError(f"{init_file}: only absolute `from … import …` under TYPE_CHECKING")
                names.update({a.asname or a.name: (statement.module, a.name) for a in statement.names})
    return names


def lazy_exports(package: str, init_file: str) -> tuple[list[str], Callable[[str], object], Callable[[], list[str]]]:
    """(`__all__`, `__getattr__`, `__dir__`) for the package `package` whose `__init__` is `init_file`."""
    names = exported_names(init_file)

    def __getattr__(name: str):
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, attribute = names[name]
        value = getattr(importlib.import_module(module), attribute)
        setattr(sys.modules[package], name, value)  # found directly next time
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(names))

    return sorted(names), __getattr__, __dir__


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
