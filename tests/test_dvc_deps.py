"""dvc.yaml's code dependencies are true: each stage depends on every errorset module its command imports.

For every stage, the ``errorset <command>`` of its ``cmd`` is mapped to its ``_cmd_*`` function in
:mod:`errorset.cli`; the errorset modules that function imports (the job module, and any helper it
imports itself) are the roots, and the import closure of the roots within ``src/errorset`` is found
by walking the imports of every module's source, including the imports inside functions (many are
there on purpose, to keep commands fast to start), but not those under ``if TYPE_CHECKING:``.
Importing a module runs its parent packages' ``__init__.py``, so those count too. Every module in the
closure must lie under one of the stage's ``src/...`` deps. ``cli.py`` itself (argument parsing and
printing) and ``errorset/__init__.py`` (only ``__version__``) are not listed as dependencies.
"""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from errorset import cli

from .import_graph import names_in

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
#: in every closure, never a stage's dependency (see the module docstring)
NOT_DEPENDENCIES = {"errorset"}


def stages(dvc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every stage of a parsed dvc.yaml, a foreach stage by its ``do`` body (templating left in)."""
    return {name: stage.get("do", stage) for name, stage in dvc["stages"].items()}


def load_dvc() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())


def command_of(stage: dict[str, Any]) -> str:
    match = re.match(r"\s*errorset\s+([a-z][\w-]*)", stage["cmd"])
    assert match, f"not an errorset command: {stage['cmd']!r}"
    return match.group(1)


def command_function(command: str):
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return sub.choices[command].get_default("func")


def module_file(name: str) -> Path | None:
    path = SRC.joinpath(*name.split("."))
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    if path.with_suffix(".py").is_file():
        return path.with_suffix(".py")
    return None


def import_closure(roots: set[str]) -> set[str]:
    """The errorset modules (dotted names) that importing ``roots`` may run."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if not (name == "errorset" or name.startswith("errorset.")) or name in seen:
            continue
        path = module_file(name)
        if path is None:  # a function or class imported from a module
            continue
        seen.add(name)
        parts = name.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))  # parent packages' __init__
        todo.extend(names_in(ast.parse(path.read_text()), name, path.name == "__init__.py"))
    return seen


def command_roots(command: str) -> set[str]:
    """The errorset modules the command's ``_cmd_*`` function imports."""
    func = command_function(command)
    tree = ast.parse(textwrap.dedent(inspect.getsource(func)))
    return {n for n in names_in(tree, "errorset.cli", False) if n.startswith("errorset")}


def covered(module: str, deps: list[str]) -> bool:
    """Whether a module's file lies under one of the ``src/...`` deps (a file or a folder)."""
    path = module_file(module)
    assert path is not None
    rel = path.relative_to(ROOT).as_posix()
    for dep in deps:
        dep = dep.rstrip("/")
        if dep.startswith("src/") and (rel == dep or rel.startswith(dep + "/")):
            return True
    return False


def uncovered(command: str, deps: list[str]) -> list[str]:
    closure = import_closure(command_roots(command)) - NOT_DEPENDENCIES
    return sorted(m for m in closure if not covered(m, deps))


def test_every_stage_depends_on_the_code_its_command_imports():
    problems = []
    for name, stage in stages(load_dvc()).items():
        missing = uncovered(command_of(stage), stage.get("deps", []))
        problems += [f"stage {name}: {m} ({module_file(m).relative_to(ROOT)}) is not in its deps" for m in missing]
    assert not problems, "\n".join(problems)


def test_every_src_dependency_exists():
    for name, stage in stages(load_dvc()).items():
        for dep in stage.get("deps", []):
            if dep.startswith("src/"):
                assert (ROOT / dep).exists(), f"stage {name}: dependency {dep} does not exist"


def test_the_closure_follows_imports_inside_functions():
    # jobs/common.py imports errorset.tracking only inside functions
    closure = import_closure({"errorset.jobs.evaluate"})
    assert {
        "errorset.tracking",
        "errorset.jobs.common",
        "errorset.models.build",
        "errorset.measure.clean_accuracy",
    } <= closure
    assert "errorset.jobs.sweep_study" not in closure


@pytest.mark.parametrize(
    ("stage_name", "removed", "expected"),
    [
        ("sweep", "src/errorset/corruptions", "errorset.corruptions.noise"),
        ("sweep", "src/errorset/data", "errorset.data.batches"),
        ("evaluate", "src/errorset/jobs/common.py", "errorset.jobs.common"),
        ("evaluate", "src/errorset/measure", "errorset.measure.clean_accuracy"),
    ],
)
def test_a_missing_dependency_is_named(stage_name, removed, expected):
    stage = stages(load_dvc())[stage_name]
    deps = [d for d in stage["deps"] if d != removed]
    assert len(deps) == len(stage["deps"]) - 1, f"{removed} is not a dependency of {stage_name}"
    assert expected in uncovered(command_of(stage), deps)
    assert not uncovered(command_of(stage), stage["deps"])
