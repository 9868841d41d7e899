"""The code's shape: no import circle in src/, benchmarks run as modules without path edits."""

from __future__ import annotations

import ast
from pathlib import Path

from src.config import ROOT


def imports_of(path: Path) -> set[str]:
    """The src modules a file imports, at the top or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("src"):
            found.add(node.module)  # and `from src.pkg import module` imports src.pkg.module
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("src.")}
    return found


def module_name(path: Path) -> str:
    name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    return name.removesuffix(".__init__")


def test_src_has_no_import_circle():
    graph = {module_name(p): imports_of(p) for p in (ROOT / "src").rglob("*.py")}
    assert len(graph) > 20  # the walk found the package
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in sorted(graph.get(module, ())):
            if state.get(target) == "open":
                raise AssertionError(" -> ".join([*path[path.index(target) :], target]))
            if target not in state:
                visit(target, [*path, target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def test_every_module_in_src_is_used_by_the_product():
    """No dead module: each one is imported by run.py (its dispatch names the modules of the
    modes, imported when asked for) or another module of src/."""
    import run

    modules = {module_name(p) for p in (ROOT / "src").rglob("*.py") if p.name != "__init__.py"}
    users = [ROOT / "run.py", *(ROOT / "src").rglob("*.py")]
    imported = set().union(*(imports_of(p) for p in users))
    imported |= {target.split(":")[0] for target in run.COMMANDS.values()}
    assert sorted(modules - imported) == []


def test_benchmarks_reach_the_code_as_a_package():
    scripts = sorted((ROOT / "benchmarks").glob("*.py"))
    assert (ROOT / "benchmarks" / "__init__.py") in scripts
    edits = [p.name for p in scripts if "sys.path" in p.read_text()]
    assert edits == []
