"""The search space and the fixed settings of a sweep, from ``sweep.space`` and ``sweep.fixed``.

Keys are dotted config keys (``train.sigma_max``). They may be written flat
(``{"train.sigma_max": {...}}``) or nested (``{"train": {"sigma_max": {...}}}``),
so that ``--set sweep.space.train.sigma_max.high=0.5`` and ``dvc exp run -S``
work; nested entries override flat ones key by key.

A parameter is ``{type: float, low, high[, log][, step]}``,
``{type: int, low, high[, log][, step]}`` or ``{type: categorical, choices: [...]}``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from errorset.config import Config, apply_overrides, config_from_dict, flatten, to_dict
from errorset.errors import ConfigError

TYPES = ("float", "int", "categorical")
_SPEC_KEYS = {"type", "low", "high", "log", "step", "choices"}


@dataclass(frozen=True)
class Param:
    """One dimension of the search space."""

    key: str
    type: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = field(default_factory=tuple)

    def suggest(self, trial: Any) -> Any:
        """Draw this parameter from an Optuna trial."""
        if self.type == "float":
            return trial.suggest_float(self.key, self.low, self.high, log=self.log, step=self.step)
        if self.type == "int":
            return trial.suggest_int(self.key, int(self.low), int(self.high), log=self.log, step=int(self.step or 1))
        return trial.suggest_categorical(self.key, list(self.choices))

    def extremes(self) -> list[Any]:
        """Values at the edges of the range (to check that the config accepts them)."""
        return list(self.choices) if self.type == "categorical" else [self.low, self.high]


def _is_spec(value: Any) -> bool:
    return isinstance(value, Mapping) and bool(set(value) & _SPEC_KEYS)


def _flatten(raw: Mapping[str, Any], leaf: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted keys down to the leaves (``leaf(value)`` says where to stop); nested entries merge over flat ones."""
    out: dict[str, Any] = {}
    for k, v in raw.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and not leaf(v):
            for sub_key, sub in _flatten(v, leaf, key + ".").items():
                if isinstance(sub, Mapping) and isinstance(out.get(sub_key), Mapping):
                    out[sub_key] = {**out[sub_key], **sub}
                else:
                    out[sub_key] = sub
        elif isinstance(v, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = {**out[key], **v}
        else:
            out[key] = v
    return out


def config_keys() -> set[str]:
    """Every dotted key of the config (the leaves of the dataclass tree)."""
    return set(flatten(to_dict(Config())))


def _check_key(key: str, where: str) -> None:
    if key.startswith(("sweep.", "variants.")) or key not in config_keys():
        raise ConfigError(f"{where}.{key}: not a config key that a trial can set (e.g. train.sigma_max)")


def parse_space(raw: Mapping[str, Any]) -> list[Param]:
    """Validate ``sweep.space`` into parameters, with one clear error for the first malformed entry."""
    params = []
    for key, spec in _flatten(raw, _is_spec).items():
        where = f"sweep.space.{key}"
        _check_key(key, "sweep.space")
        if not isinstance(spec, Mapping):
            raise ConfigError(f"{where}: expected {{type: float|int|categorical, ...}}, got {spec!r}")
        unknown = set(spec) - _SPEC_KEYS
        if unknown:
            raise ConfigError(f"{where}: unknown fields {sorted(unknown)}; valid fields: {sorted(_SPEC_KEYS)}")
        kind = spec.get("type", "categorical" if "choices" in spec else "float")
        if kind not in TYPES:
            raise ConfigError(f"{where}.type: unknown type {kind!r}; valid types: {', '.join(TYPES)}")
        if kind == "categorical":
            choices = spec.get("choices")
            if not isinstance(choices, (list, tuple)) or not choices:
                raise ConfigError(f"{where}.choices: expected a non-empty list, got {choices!r}")
            params.append(Param(key, kind, choices=tuple(choices)))
            continue
        low, high = spec.get("low"), spec.get("high")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in (low, high)):
            raise ConfigError(f"{where}: expected numbers low and high, got low={low!r}, high={high!r}")
        if not low < high:
            raise ConfigError(f"{where}: expected low < high, got low={low}, high={high}")
        log = bool(spec.get("log", False))
        if log and low <= 0:
            raise ConfigError(f"{where}: a log scale needs low > 0, got {low}")
        step = spec.get("step")
        if step is not None and (log or not step > 0):
            raise ConfigError(f"{where}.step: expected a number > 0 (and no log scale), got {step!r}")
        params.append(Param(key, kind, float(low), float(high), log, step))
    if not params:
        raise ConfigError("sweep.space: expected at least one parameter, e.g. {train.sigma_max: {low: 0, high: 1}}")
    return params


def parse_fixed(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Validate ``sweep.fixed`` into dotted overrides."""
    fixed = _flatten(raw, lambda v: False)
    for key in fixed:
        _check_key(key, "sweep.fixed")
    return fixed


def apply_trial(base: Config, overrides: Mapping[str, Any]) -> Config:
    """``base`` (unresolved) with a trial's dotted ``overrides`` applied; still unresolved (the job resolves it)."""
    raw = apply_overrides(to_dict(base), [])
    for key, value in overrides.items():
        node = raw
        *parents, last = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return config_from_dict(raw)
