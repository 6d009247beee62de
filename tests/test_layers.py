"""The layers point one way (docs/architecture.md). Every module's imports are read from its
source (ast, lazy imports inside functions included) under the name it installs as:

- the library (`foundation.*` but the CLI and the namespaced tools) imports no tool: not
  `foundation.recipes`, `foundation.pipelines` or `benchmarks`;
- nothing imports `recipes` or `data_pipelines` by their folder names (a wheel has neither);
- `foundation.models` knows neither `foundation.train` nor `foundation.hub`;
- `foundation.data` knows no model; `foundation.hub` knows no trainer;
- the library's modules import each other without cycles;
- nothing outside `foundation.cli` imports it (but the console entry point, `foundation.__main__`):
  the CLI is a face over the library, so what a recipe, pipeline or benchmark needs lives below it;
- no module imports another module's `_private` name (tests included): what others need is public.

The CLI (`foundation.cli`) is the top floor: it may reach the tools, lazily, inside the function
of the subcommand that needs them, so `foundation --help` never loads PySCF or RDKit.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Repository folder -> the package name it installs as (setup.py maps the last three).
FOLDERS = {"foundation": "foundation", "recipes": "foundation.recipes",
           "data_pipelines": "foundation.pipelines", "hydra_configs": "foundation.configs"}
TOOLS = ("foundation.recipes", "foundation.pipelines", "benchmarks")
NOT_LIBRARY = ("foundation.cli", "foundation.recipes", "foundation.pipelines", "foundation.configs")


def _module_name(path: Path) -> str:
    rel = path.relative_to(REPO).with_suffix("")
    parts = [FOLDERS[rel.parts[0]], *rel.parts[1:]]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    found = {}
    for folder in FOLDERS:
        for path in sorted((REPO / folder).rglob("*.py")):
            if "__pycache__" not in path.parts:
                found[_module_name(path)] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """Every module `name` imports, anywhere in its source, as absolute names; `from a import b`
    counts as importing `a.b` when that is a module, else `a`."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                full = f"{base}.{alias.name}"
                found.add(full if full in MODULES else base)
    return found


IMPORTS = {name: _imports(name, path) for name, path in MODULES.items()}


def _within(module: str, prefixes) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def _under(*prefixes: str) -> list[str]:
    return [m for m in MODULES if _within(m, prefixes)]


def _violations(importers: list[str], imported) -> list[str]:
    return sorted(f"{a} imports {b}" for a in importers for b in IMPORTS[a] if _within(b, imported))


LIBRARY = [m for m in _under("foundation") if not _within(m, NOT_LIBRARY)]


def test_the_names_are_read():
    """The reader sees what it should (else every rule below would pass vacuously)."""
    assert "foundation.recipes.demo" in MODULES and "foundation.pipelines.label.run" in MODULES
    assert "foundation.data.shards.reader" in IMPORTS["foundation.data.stream"]
    lazy = IMPORTS["foundation.cli.data_label"]  # imported inside the command's function
    assert "foundation.pipelines.label.run" in lazy


def test_the_library_imports_no_tool():
    assert _violations(LIBRARY, TOOLS) == []


def test_nothing_imports_the_folders_by_their_repository_names():
    """Also benchmarks and tests: in the repository `import recipes` would work from its top
    folder and load a second copy of the module beside `foundation.recipes`."""
    folders = ["recipes", "data_pipelines", "hydra_configs"]
    assert _violations(list(MODULES), folders) == []
    others = [p for d in ("benchmarks", "tests") for p in (REPO / d).rglob("*.py")]
    found = {f"{p.relative_to(REPO)} imports {m}" for p in others
             for m in _imports(p.stem, p) if _within(m, folders)}
    assert sorted(found) == []


def test_the_cli_reaches_the_tools_only_lazily():
    """The tools load inside the subcommand that needs them, never when the CLI starts."""
    found = []
    for name in _under("foundation.cli"):
        tree = ast.parse(MODULES[name].read_text())
        for node in tree.body:  # module-level statements only
            if isinstance(node, ast.ImportFrom) and _within(node.module or "", TOOLS):
                found.append(f"{name}: {node.module}")
            elif isinstance(node, ast.Import):
                found += [f"{name}: {a.name}" for a in node.names if _within(a.name, TOOLS)]
    assert found == []


def test_models_know_neither_training_nor_the_hub():
    assert _violations(_under("foundation.models"), ["foundation.train", "foundation.hub"]) == []


def test_data_knows_no_model():
    assert _violations(_under("foundation.data"), ["foundation.models"]) == []


def test_the_hub_knows_no_trainer():
    assert _violations(_under("foundation.hub"), ["foundation.train"]) == []


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles_in_the_library():
    # The package's __init__ is left out: it is a facade of lazy wrappers (load_pretrained,
    # calculator, finetune) that modules reach only for `__version__`.
    library = set(LIBRARY) - {"foundation"}
    graph = {m: {i for i in IMPORTS[m] if i in library and i != m} for m in library}
    assert _cycles(graph) == []


# The console entry point (`python -m foundation`) is the one module outside the CLI that starts it.
ENTRY_POINTS = {"foundation.__main__"}


def _scripts(*folders: str) -> list[Path]:
    return [p for d in folders for p in sorted((REPO / d).rglob("*.py")) if "__pycache__" not in p.parts]


def test_only_the_cli_imports_the_cli():
    """Recipes, pipelines, benchmarks and the library's own modules stand below the CLI."""
    inside = set(_under("foundation.cli")) | ENTRY_POINTS
    found = _violations([m for m in MODULES if m not in inside], ["foundation.cli"])
    found += [f"{p.relative_to(REPO)} imports {m}" for p in _scripts("benchmarks")
              for m in _imports(p.stem, p) if _within(m, ["foundation.cli"])]
    assert sorted(found) == []


def _private_imports(source: str) -> list[str]:
    """`from X import _name` (one leading underscore: private to X), anywhere in `source`."""
    return [f"{'.' * node.level}{node.module or ''} import {alias.name}" for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.ImportFrom) for alias in node.names
            if alias.name.startswith("_") and not alias.name.startswith("__")]


def test_the_private_import_reader_finds_one():
    source = "from a.b import public, _hidden\nfrom .c import __version__\ndef f():\n    from . import _x\n"
    assert _private_imports(source) == ["a.b import _hidden", ". import _x"]


def test_no_module_imports_another_modules_private_name():
    """A name starting with one underscore belongs to its module; one that others need is made
    public (named without the underscore) where it lives."""
    files = [*MODULES.values(), *_scripts("benchmarks", "tests")]
    found = [f"{p.relative_to(REPO)}: from {i}" for p in files for i in _private_imports(p.read_text())]
    assert sorted(found) == []
