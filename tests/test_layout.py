"""The house rules of the README's Layout section, checked on the source: which package may
import which, and no import cycles."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

from tests.conftest import REPO_ROOT

PACKAGES = ("kafka_io", "olist_assets", "olist_dashboard", "olist_dev")
# Who may import whom (first-party packages only): arrows point one way.
ALLOWED = {
    "kafka_io": set(),
    "olist_assets": {"kafka_io"},
    # The dashboard reads the marts with the runtime settings; it is no part of the code location.
    "olist_dashboard": {"kafka_io"},
    "olist_dev": {"kafka_io", "olist_assets", "olist_dashboard"},
}
# Only the code location talks to Dagster.
DAGSTER_FREE = {"kafka_io", "olist_dashboard"}


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth (function-level imports count too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def source_files() -> dict[str, Path]:
    return {
        module_name(path): path
        for package in PACKAGES
        for path in (REPO_ROOT / package).rglob("*.py")
    }


def test_arrows_point_one_way_and_only_the_code_location_imports_dagster():
    wrong = []
    for module, path in source_files().items():
        package = module.split(".")[0]
        for imported in imports_of(path):
            top = imported.split(".")[0]
            if top in PACKAGES and top != package and top not in ALLOWED[package]:
                wrong.append(f"{module} imports {imported}")
            if package in DAGSTER_FREE and top in ("dagster", "dagster_dbt"):
                wrong.append(f"{module} imports {imported}")
    assert not wrong, wrong


def test_no_import_cycles_between_modules():
    files = source_files()
    graph: dict[str, set[str]] = defaultdict(set)
    for module, path in files.items():
        # Module-level imports only: a function-level import is how a cycle would be broken.
        for node in ast.parse(path.read_text()).body:
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            graph[module] |= {n for n in names if n in files and n != module}
    cycles = []
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done

    def visit(module: str, stack: list[str]) -> None:
        state[module] = 1
        for nxt in sorted(graph[module]):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[module] = 2

    for module in sorted(files):
        if module not in state:
            visit(module, [module])
    assert not cycles, cycles


def test_the_checker_sees_a_forbidden_arrow(tmp_path):
    # The rule above must be able to fail: a kafka_io module importing Dagster is caught.
    bad = tmp_path / "bad.py"
    bad.write_text("import dagster\nfrom olist_dev.stack import up\n")
    assert {"dagster", "olist_dev.stack", "olist_dev.stack.up"} <= imports_of(bad)
