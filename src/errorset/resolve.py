"""The resolved configuration: the profile applied, then every value validated.

Above :mod:`errorset.config` (the schema), :mod:`errorset.profiles` and
:mod:`errorset.validation`, which check names against the registries of the
science packages; those packages import the schema only, so nothing here is
part of an import circle. The command line and the sweep load configs here.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from errorset.config import Config, read_config
from errorset.profiles import apply_profile
from errorset.validation import validate


def resolve(cfg: Config) -> Config:
    """Fill every ``null`` recipe key from the profile and validate all values.

    Returns a new config; ``cfg`` is not changed. Raises :class:`~errorset.errors.ConfigError`
    naming the first invalid key.
    """
    resolved = apply_profile(cfg)
    validate(resolved)
    return resolved


def load_config(path: str | Path | None = "params.yaml", overrides: Iterable[str] = ()) -> Config:
    """Load ``path`` (None: defaults only), apply ``KEY=VALUE`` overrides, resolve the profile and validate."""
    return resolve(read_config(path, overrides))
