"""The architecture as the import graph shows it: no circles, the schema a leaf, one home for MLflow."""

from __future__ import annotations

import pytest

from .import_graph import cycles, import_graph, imported_names, modules, package_of


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph()


def test_the_cycle_finder_finds_a_circle_and_nothing_else():
    toy = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(toy) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_imports_itself_back(graph):
    assert cycles(graph) == []


def test_no_circle_between_packages(graph):
    """cli -> jobs -> (sweep, measure, train, attacks, corruptions ...) -> config/registry: one direction only."""
    packages: dict[str, set[str]] = {}
    for module, deps in graph.items():
        own = package_of(module)
        packages.setdefault(own, set()).update(package_of(d) for d in deps if package_of(d) != own)
    assert cycles(packages) == [], packages


def test_the_schema_imports_nothing_of_errorset_but_its_errors(graph):
    assert graph["errorset.config"] == {"errorset.errors"}
    assert graph["errorset.errors"] == set()


def test_the_training_package_takes_plain_arguments_not_the_config(graph):
    direct = {m: deps for m, deps in graph.items() if m.startswith("errorset.train")}
    assert direct and not [m for m, deps in direct.items() if "errorset.config" in deps]


def test_tracking_is_the_one_module_that_imports_mlflow():
    users = {
        name
        for name, path in modules().items()
        if any(n == "mlflow" or n.startswith("mlflow.") for n in imported_names(name, path))
    }
    assert users == {"errorset.tracking"}
