"""The documents a newcomer reads stay true: every row of the one fault table (docs/faults.md)
names tests that exist, the README stays a short front door, and its links lead somewhere."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FAULTS = ROOT / "docs" / "faults.md"
README = ROOT / "README.md"
README_MAX_LINES = 250
TEST_REF = re.compile(r"`(tests/[\w/]+\.py)(?:::(\w+))?")


def fault_rows(text: str) -> list[tuple[str, str]]:
    """(fault, test cell) of every body row of every table whose last column is the test."""
    rows, in_table = [], False
    for line in text.splitlines():
        if not line.startswith("|"):
            in_table = False
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[-1].startswith("test"):  # a header row: "test (path::name)"
            in_table = True
        elif in_table and not set(cells[0]) <= set("-: "):
            rows.append((cells[0], cells[-1]))
    return rows


def defined_tests(path: Path) -> set[str]:
    """Names of the test functions in a file, methods of test classes included."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test"):
            names.add(node.name)
    return names


def missing_tests(cell: str) -> list[str]:
    """The references in one row's test cell that name no existing file or test function."""
    missing = []
    for file, name in TEST_REF.findall(cell):
        path = ROOT / file
        if not path.is_file():
            missing.append(f"{file} (no such file)")
        elif name and name not in defined_tests(path):
            missing.append(f"{file}::{name} (no such test)")
    return missing


def test_every_fault_row_names_tests_that_exist():
    rows = fault_rows(FAULTS.read_text())
    assert len(rows) >= 43, f"docs/faults.md: only {len(rows)} fault rows found"
    problems = []
    for fault, cell in rows:
        if not TEST_REF.search(cell):
            problems.append(f"{fault!r}: names no test")
        problems += [f"{fault!r}: {m}" for m in missing_tests(cell)]
    assert not problems, "docs/faults.md:\n" + "\n".join(problems)


def test_the_checker_sees_a_missing_test_and_a_missing_file():
    cell = ("`tests/test_docs.py::test_every_fault_row_names_tests_that_exist`, "
            "`tests/test_docs.py::test_that_was_renamed`, `tests/no_such_file.py`")
    assert missing_tests(cell) == ["tests/test_docs.py::test_that_was_renamed (no such test)",
                                   "tests/no_such_file.py (no such file)"]


def test_there_is_one_fault_table():
    assert not fault_rows(README.read_text()), "README.md holds fault rows: they belong in docs/faults.md"


def test_the_readme_is_a_short_front_door():
    lines = README.read_text().count("\n")
    assert lines <= README_MAX_LINES, f"README.md: {lines} lines; move reference material into docs/"


@pytest.mark.parametrize("page", [README, *sorted((ROOT / "docs").glob("*.md"))], ids=lambda p: p.name)
def test_local_links_lead_to_files_that_exist(page):
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)  # code blocks hold no links
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    local = [t for t in targets if "://" not in t and not t.startswith("mailto:")]
    broken = [t for t in local if not (page.parent / t).exists()]
    assert not broken, f"{page.relative_to(ROOT)}: links to missing files: {broken}"
