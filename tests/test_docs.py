"""The run.py commands the READMEs show: run.py accepts each as written (a renamed flag or a
--set key the table no longer has fails here, not in a reader's terminal)."""

from __future__ import annotations

import re
import shlex

import pytest

from src.cli import parse_args
from src.config import ROOT


def shown_commands() -> list[tuple[str, list[str]]]:
    """(where, run.py's arguments) for every `python run.py` in README.md's shell blocks and
    every recipe of benchmarks/README.md's holdout commands (run there with --trials 0)."""
    found = []
    readme = (ROOT / "README.md").read_text()
    for block in re.findall(r"```bash\n(.*?)```", readme, re.S):
        for line in block.splitlines():
            for part in line.split("&&"):
                words = shlex.split(part, comments=True)
                if words[:2] == ["python", "run.py"]:
                    found.append((f"README.md: {part.strip()}", words[2:]))
    benchmarks = (ROOT / "benchmarks" / "README.md").read_text()
    for block in re.findall(r"```\n(python -m benchmarks\.holdout .*?)```", benchmarks, re.S):
        for name, flags in re.findall(r'(\w+)="(--[^"]*)"', block):
            found.append((f"benchmarks/README.md: {name}", ["--trials", "0", *shlex.split(flags)]))
    return found


COMMANDS = shown_commands()


def test_the_commands_are_found_where_the_readmes_show_them():
    readme = [argv for where, argv in COMMANDS if where.startswith("README.md")]
    assert len(readme) >= 10
    assert ["--recipe", "quick", "--data-dir", "input/sample"] in readme  # the main job
    assert ["--recipe", "three", "--run-name", "RUN"] in readme  # the best CPU submission
    recipes = {where.split(": ")[1] for where, _ in COMMANDS if where.startswith("benchmarks")}
    assert {"quick", "quick3", "c2", "c2x3", "deotte", "dpl99"} <= recipes


@pytest.mark.parametrize("argv", [argv for _, argv in COMMANDS],
                         ids=[where for where, _ in COMMANDS])  # fmt: skip
def test_run_py_accepts_every_command_the_readmes_show(argv, monkeypatch):
    monkeypatch.chdir(ROOT)  # the README's relative paths, from the repository root
    try:
        parse_args(argv)
    except SystemExit as refused:  # argparse's exit 2 for a flag or value run.py refuses
        pytest.fail(f"run.py refuses it (exit {refused.code}): its error is above")


DOCS = ["README.md", "benchmarks/README.md", "docs/experiments.md", "CHANGELOG.md"]


def test_every_benchmark_a_doc_runs_exists():
    """`python -m benchmarks.NAME` (and the old `python benchmarks/NAME.py`) in any doc names a
    module the tree has: a removed benchmark is named as removed, never shown as a command."""
    shown = [(doc, name) for doc in DOCS
             for name in re.findall(r"python (?:-m benchmarks\.|benchmarks/)([a-z_]+)",
                                    (ROOT / doc).read_text())]  # fmt: skip
    assert len(shown) > 40  # the docs' commands were found
    assert [(d, n) for d, n in shown if not (ROOT / "benchmarks" / f"{n}.py").exists()] == []


def test_the_readme_is_a_guide_of_at_most_250_lines():
    """Measurements and their history live in benchmarks/README.md and the lab log."""
    assert len((ROOT / "README.md").read_text().splitlines()) <= 250
