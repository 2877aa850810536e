"""Registries that create objects from the names used in ``params.yaml``.

As timm does for models, each concern (datasets, models, training modes,
attacks, corruptions, ...) keeps one :class:`Registry`. Names are either exact
(``"mlp"``) or patterns with a prefix whose remainder is parsed by the factory
(``"wrn28_10"`` for any WRN-depth-width, ``"timm:<name>"`` for any timm model).
An unknown name raises :class:`~errorset.errors.UnknownNameError` listing what
is valid. Each entry, exact or pattern, may carry metadata (keyword arguments
of :meth:`Registry.register` / :meth:`Registry.register_pattern`) that callers
read with :meth:`Registry.metadata` instead of guessing from the name.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Generic, TypeVar

from errorset.errors import UnknownNameError

T = TypeVar("T")


@dataclass(frozen=True)
class _Pattern(Generic[T]):
    regex: re.Pattern[str]
    example: str
    factory: Callable[..., T]
    metadata: Mapping[str, Any] = field(default_factory=dict)


class Registry(Generic[T]):
    """A mapping from names to factories, with optional regex patterns.

    Args:
        kind: what the registry holds, used in error messages ("model", "dataset").
        parameter: the config key that selects from it (e.g. ``"model.name"``),
            named in error messages so the user knows what to change.
        ordered: list the names in the order they were registered (else sorted),
            for registries whose order means something (storage formats, lossless first).
    """

    def __init__(self, kind: str, parameter: str, *, ordered: bool = False) -> None:
        self.kind = kind
        self.parameter = parameter
        self.ordered = ordered
        self._exact: dict[str, Callable[..., T]] = {}
        self._exact_metadata: dict[str, Mapping[str, Any]] = {}
        self._patterns: list[_Pattern[T]] = []

    def register(self, name: str, **metadata: Any) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator registering ``factory`` under the exact ``name``, with optional ``metadata``."""

        def decorator(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._exact:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._exact[name] = factory
            self._exact_metadata[name] = MappingProxyType(dict(metadata))
            return factory

        return decorator

    def register_pattern(
        self, pattern: str, example: str, **metadata: Any
    ) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator registering a factory for every name matching ``pattern``, with optional ``metadata``.

        The factory receives the regex match's named groups as keyword
        arguments, followed by the caller's keyword arguments. ``metadata``
        holds for every matching name.
        """

        def decorator(factory: Callable[..., T]) -> Callable[..., T]:
            self._patterns.append(_Pattern(re.compile(pattern), example, factory, MappingProxyType(dict(metadata))))
            return factory

        return decorator

    def names(self) -> list[str]:
        """The exact names (sorted, or in registration order if ``ordered``), then one example per pattern."""
        exact = list(self._exact) if self.ordered else sorted(self._exact)
        return exact + [p.example for p in self._patterns]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._lookup(name) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def _entry(self, name: str) -> tuple[Callable[..., T], dict[str, str], Mapping[str, Any]] | None:
        if name in self._exact:
            return self._exact[name], {}, self._exact_metadata[name]
        for p in self._patterns:
            m = p.regex.fullmatch(name)
            if m:
                return p.factory, m.groupdict(), p.metadata
        return None

    def _lookup(self, name: str) -> tuple[Callable[..., T], dict[str, str]] | None:
        found = self._entry(name)
        return None if found is None else found[:2]

    def metadata(self, name: str, parameter: str | None = None) -> Mapping[str, Any]:
        """The metadata registered with the entry (exact name or pattern) that ``name`` selects (read-only).

        An unknown name raises :class:`~errorset.errors.UnknownNameError` as :meth:`check` does.
        """
        self.check(name, parameter)
        found = self._entry(name)
        assert found is not None
        return found[2]

    def check(self, name: object, parameter: str | None = None) -> str:
        """Return ``name`` if registered, else raise a clear error naming ``parameter`` (default: the registry's)."""
        if not isinstance(name, str) or self._lookup(name) is None:
            key = parameter or self.parameter
            raise UnknownNameError(
                f"{key}: unknown {self.kind} {name!r}; valid {self.kind}s: {', '.join(self.names())}"
            )
        return name

    def get(self, name: str) -> Callable[..., T]:
        """The factory for ``name`` with any pattern groups already bound."""
        self.check(name)
        found = self._lookup(name)
        assert found is not None
        factory, groups = found
        if not groups:
            return factory
        return lambda *args, **kwargs: factory(*args, **groups, **kwargs)

    def create(self, name: str, *args: object, **kwargs: object) -> T:
        """Create the object registered under ``name``."""
        return self.get(name)(*args, **kwargs)
