"""What corruptions there are: names, families, the :class:`Corruption` record, the :data:`CORRUPTIONS` registry.

The family modules (``noise``, ``blur``, ``weather``, ``digital``) register their corruptions
here with :func:`register`; :func:`~errorset.corruptions.apply.corrupt` applies them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from errorset.corruptions.rng import ImageRNG
from errorset.errors import ConfigError, UnknownNameError
from errorset.registry import Registry

#: the 15 corruptions of the benchmark, in the order of Hendrycks & Dietterich's tables
BENCHMARK_CORRUPTIONS: tuple[str, ...] = (
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "defocus_blur",
    "glass_blur",
    "motion_blur",
    "zoom_blur",
    "snow",
    "frost",
    "fog",
    "brightness",
    "contrast",
    "elastic_transform",
    "pixelate",
    "jpeg_compression",
)
#: the 4 held-out ("validation") corruptions
EXTRA_CORRUPTIONS: tuple[str, ...] = ("speckle_noise", "gaussian_blur", "spatter", "saturate")
#: all 19, benchmark first
ALL_CORRUPTIONS: tuple[str, ...] = BENCHMARK_CORRUPTIONS + EXTRA_CORRUPTIONS

CorruptionFn = Callable[[torch.Tensor, Any, ImageRNG], torch.Tensor]


@dataclass(frozen=True)
class Corruption:
    """One registered corruption.

    Attributes:
        name: registry name, e.g. ``"glass_blur"``.
        family: ``noise``, ``blur``, ``weather`` or ``digital``.
        fn: ``fn(x, params, rng)`` on a float (N, 3, H, W) batch in [0,1] with
            the severity's constants ``params`` and per-image random streams
            ``rng`` (None for deterministic corruptions).
        random: whether the result depends on the random generator.
        chunk_scale: multiplies the chunk size :func:`corrupt` uses (corruptions
            with many small steps, like glass blur, prefer larger chunks).
    """

    name: str
    family: str
    fn: CorruptionFn
    random: bool
    chunk_scale: int = 1

    @property
    def benchmark(self) -> bool:
        """One of the 15 benchmark corruptions (else one of the 4 extra ones)."""
        return self.name in BENCHMARK_CORRUPTIONS


#: name -> :class:`Corruption`
CORRUPTIONS: Registry[Corruption] = Registry("corruption", "name")


def register(name: str, family: str, *, random: bool, chunk_scale: int = 1) -> Callable[[CorruptionFn], CorruptionFn]:
    """Decorator registering ``fn(x, params, rng)`` as corruption ``name``."""

    def decorator(fn: CorruptionFn) -> CorruptionFn:
        CORRUPTIONS.register(name)(Corruption(name, family, fn, random, chunk_scale))  # type: ignore[arg-type]
        return fn

    return decorator


def check_corruption(name: object, parameter: str = "name") -> str:
    """Return ``name`` if it is a corruption, else raise an error listing the valid ones."""
    if not isinstance(name, str) or name not in ALL_CORRUPTIONS:
        raise UnknownNameError(
            f"{parameter}: unknown corruption {name!r}; valid corruptions: {', '.join(ALL_CORRUPTIONS)}"
        )
    return name


#: the benchmark's groups of corruptions (Hendrycks & Dietterich's noise, blur, weather, digital)
FAMILIES: tuple[str, ...] = ("noise", "blur", "weather", "digital")


def expand_corruptions(names: object, parameter: str = "names", *, default: Sequence[str] | None = None) -> list[str]:
    """Corruption names, with each family name (``noise``, ``blur``, ``weather``, ``digital``)
    replaced by that family's benchmark corruptions, in benchmark order and without repeats.

    ``["noise", "blur", "fog", "contrast"]`` is the 9 corruptions gaussian_noise, shot_noise,
    impulse_noise, defocus_blur, glass_blur, motion_blur, zoom_blur, fog and contrast.
    ``names=None`` (a null setting) stands for ``default`` when one is given.
    """
    if names is None and default is not None:
        return list(default)
    if not isinstance(names, (list, tuple)) or not names:
        raise ConfigError(f"{parameter}: expected a non-empty list of corruptions or families, got {names!r}")
    out: list[str] = []
    for i, name in enumerate(names):
        if name in FAMILIES:
            out += [c for c in BENCHMARK_CORRUPTIONS if CORRUPTIONS.get(c).family == name]
        elif not isinstance(name, str) or name not in ALL_CORRUPTIONS:
            raise UnknownNameError(
                f"{parameter}[{i}]: unknown corruption or family {name!r}; valid families: {', '.join(FAMILIES)}; "
                f"valid corruptions: {', '.join(ALL_CORRUPTIONS)}"
            )
        else:
            out.append(name)
    return list(dict.fromkeys(out))
