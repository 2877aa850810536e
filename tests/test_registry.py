"""The generic Registry: exact names, patterns, their metadata, and the errors for unknown names."""

from __future__ import annotations

import pytest

from errorset.errors import UnknownNameError
from errorset.registry import Registry


def make_registry() -> Registry[str]:
    reg: Registry[str] = Registry("widget", "thing.name")
    reg.register("plain")(lambda: "plain")
    reg.register("tagged", colour="red", size=3)(lambda: "tagged")
    reg.register_pattern(r"w(?P<n>\d+)", example="w<n>", colour="blue")(lambda *, n: f"w x {n}")
    return reg


@pytest.mark.parametrize(
    ("name", "metadata", "made"),
    [("plain", {}, "plain"), ("tagged", {"colour": "red", "size": 3}, "tagged"), ("w12", {"colour": "blue"}, "w x 12")],
)
def test_metadata_of_exact_names_and_patterns(name, metadata, made):
    reg = make_registry()
    assert dict(reg.metadata(name)) == metadata
    assert reg.create(name) == made


def test_metadata_is_read_only_and_shared_by_every_name_of_a_pattern():
    reg = make_registry()
    with pytest.raises(TypeError):
        reg.metadata("tagged")["colour"] = "green"  # type: ignore[index]
    assert reg.metadata("w1") is reg.metadata("w999")
    assert dict(reg.metadata("tagged")) == {"colour": "red", "size": 3}


@pytest.mark.parametrize("name", ["w", "wx1", "other", None])
def test_metadata_of_unknown_names_names_the_parameter(name):
    reg = make_registry()
    with pytest.raises(
        UnknownNameError, match=rf"^thing\.name: unknown widget {name!r}; valid widgets: plain, tagged, w<n>$"
    ):
        reg.metadata(name)
    with pytest.raises(UnknownNameError, match=r"^other\.key: unknown widget"):
        reg.metadata(name, "other.key")
