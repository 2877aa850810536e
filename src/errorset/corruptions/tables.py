"""The severity tables: the constants of each corruption at severities 1-5.

Two tables, with the published constants of the two reference generators
(Hendrycks & Dietterich, ICLR 2019, https://github.com/hendrycks/robustness):

``imagenet``
    ImageNet-C's generator (``make_imagenet_c.py``) for 224x224 images, as
    packaged by ``imagecorruptions`` (Michaelis et al. 2019; 1.1.2 and its
    maintained fork ``imagecorruptions-imaug`` 1.1.5 have the same constants).
    Read from that package's source. Where ``imagecorruptions`` changed the
    original generator we follow the package, because it is the oracle our
    tests compare with, and say so below:

    * ``elastic_transform``: the package's form (a smooth random displacement
      field of amplitude ``0.005 * side`` scaled by 12.5 ... 30, smoothed with
      sigma ``0.01 * side``); the original ImageNet-C generator also applied a
      random affine warp and used other constants (written with a 244 that
      should have been 224).
    * ``pixelate``: box-filter down, **nearest** up (the original used a box
      filter both ways; for upscaling the two differ only in which pixel wins
      at block edges).
    * ``frost``: the package picks one of 6 frost photographs (the original 6)
      and crops it at about 1.1x its size.

``cifar10``
    CIFAR-10-C's generator (``make_cifar_c.py``) for 32x32 images. The
    ``imagecorruptions`` package does not contain these constants; they are
    the values of ``ImageNet-C/create_c/make_cifar_c.py`` in the robustness
    repository (checked value by value against commit ca36008). Where that
    generator differs in form from the package (``elastic_transform``'s random
    affine warp, ``pixelate``'s box filter up, ``frost`` photographs shrunk to
    0.2x and the first 5 of them) the record says so.

Units: noise scales, brightness offsets and contrast factors in [0,1] pixel
units; blur radii and sigmas in pixels (applied unscaled at every image size,
as both generators do); zoom factors are ratios; JPEG qualities are libjpeg
quality numbers (1-100). ``elastic_transform``'s lengths are fractions of the
image side, so one table fits any size.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from errorset.errors import ConfigError, UnknownNameError
from errorset.registry import Registry

# --- parameter records (one per multi-valued corruption) --------------------


class GlassBlur(NamedTuple):
    sigma: float  #: Gaussian blur before and after the shuffle, pixels
    max_delta: int  #: pixels are replaced by one at most this far away (pixels)
    iterations: int  #: passes of the local shuffle


class DefocusBlur(NamedTuple):
    radius: float  #: disk radius, pixels
    alias_blur: float  #: sigma of the 3x3 (5x5 above radius 8) Gaussian that anti-aliases the disk


class MotionBlur(NamedTuple):
    radius: int  #: kernel half-width: 2 * radius + 1 taps along the line, pixels
    sigma: float  #: Gaussian fall-off of the tap weights, pixels


class ZoomBlur(NamedTuple):
    start: float  #: np.arange(start, stop, step) zoom factors, averaged with the image
    stop: float
    step: float

    def factors(self) -> np.ndarray:
        return np.arange(self.start, self.stop, self.step)


class Snow(NamedTuple):
    mean: float  #: of the Gaussian snow field
    std: float
    zoom: float  #: the field is zoomed (bilinear) by this factor about the centre
    threshold: float  #: field values below are set to 0
    radius: int  #: motion blur of the flakes (see MotionBlur)
    sigma: float
    image_weight: float  #: x -> w * x + (1 - w) * max(x, 1.5 * gray(x) + 0.5)


class Frost(NamedTuple):
    image_weight: float  #: out = image_weight * x + frost_weight * frost
    frost_weight: float
    texture_scale: float  #: size of frost features relative to the reference photographs
    sheets: int  #: how many of the reference frost photographs' colour statistics are drawn from


class Fog(NamedTuple):
    strength: float  #: x + strength * plasma, renormalised by max / (max + strength)
    wibble_decay: float  #: roughness of the plasma fractal (larger = smoother)


class Spatter(NamedTuple):
    mean: float  #: of the Gaussian liquid field
    std: float
    sigma: float  #: its smoothing, pixels
    threshold: float  #: field values below are dry
    intensity: float  #: water: strength of the coloured layer; mud: sigma of the mud mask blur
    mud: int  #: 0 = water (pale turquoise), 1 = mud (brown)


class Saturate(NamedTuple):
    scale: float  #: HSV saturation -> clip(scale * s + offset)
    offset: float


class Pixelate(NamedTuple):
    factor: float  #: box-filter down to int(side * factor), then back up
    upsample: str  #: "box" (CIFAR-10-C) or "nearest" (imagecorruptions)


class ElasticTransform(NamedTuple):
    amplitude: float  #: uniform displacement in +-amplitude * side before smoothing
    sigma: float  #: smoothing of the displacement field, fraction of the side (0 = none)
    affine: float  #: random affine warp: corner points moved by up to affine * side (0 = none)


# --- the tables ---------------------------------------------------------------

SeverityRow = tuple[Any, Any, Any, Any, Any]


def _zooms(*ranges: tuple[float, float, float]) -> SeverityRow:
    return tuple(ZoomBlur(*r) for r in ranges)  # type: ignore[return-value]


def _elastic_cifar(alpha: float, sigma: float, affine: float, side: int = 32) -> ElasticTransform:
    """make_cifar_c.py writes (alpha, sigma, affine) in pixels of a 32-pixel image."""
    return ElasticTransform(alpha / side, sigma / side, affine / side)


def _elastic_package(alpha: float) -> ElasticTransform:
    """imagecorruptions: alpha * smooth(U(-0.005 side, 0.005 side)), sigma 0.01 side, no affine."""
    return ElasticTransform(alpha * 0.005, 0.01, 0.0)


IMAGENET: dict[str, SeverityRow] = {
    "gaussian_noise": (0.08, 0.12, 0.18, 0.26, 0.38),
    "shot_noise": (60, 25, 12, 5, 3),
    "impulse_noise": (0.03, 0.06, 0.09, 0.17, 0.27),
    "defocus_blur": tuple(DefocusBlur(*c) for c in ((3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5))),  # type: ignore[dict-item]
    "glass_blur": tuple(GlassBlur(*c) for c in ((0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2))),  # type: ignore[dict-item]
    "motion_blur": tuple(MotionBlur(*c) for c in ((10, 3), (15, 5), (15, 8), (15, 12), (20, 15))),  # type: ignore[dict-item]
    "zoom_blur": _zooms((1, 1.11, 0.01), (1, 1.16, 0.01), (1, 1.21, 0.02), (1, 1.26, 0.02), (1, 1.31, 0.03)),
    "snow": tuple(  # type: ignore[dict-item]
        Snow(*c)
        for c in (
            (0.1, 0.3, 3, 0.5, 10, 4, 0.8),
            (0.2, 0.3, 2, 0.5, 12, 4, 0.7),
            (0.55, 0.3, 4, 0.9, 12, 8, 0.7),
            (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65),
            (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55),
        )
    ),
    "frost": tuple(  # type: ignore[dict-item]
        Frost(a, b, 1.1, 6) for a, b in ((1, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75))
    ),
    "fog": tuple(Fog(*c) for c in ((1.5, 2), (2.0, 2), (2.5, 1.7), (2.5, 1.5), (3.0, 1.4))),  # type: ignore[dict-item]
    "brightness": (0.1, 0.2, 0.3, 0.4, 0.5),
    "contrast": (0.4, 0.3, 0.2, 0.1, 0.05),
    "elastic_transform": tuple(
        _elastic_package(a) for a in (250 * 0.05, 250 * 0.065, 250 * 0.085, 250 * 0.1, 250 * 0.12)
    ),  # type: ignore[dict-item]
    "pixelate": tuple(Pixelate(f, "nearest") for f in (0.6, 0.5, 0.4, 0.3, 0.25)),  # type: ignore[dict-item]
    "jpeg_compression": (25, 18, 15, 10, 7),
    "speckle_noise": (0.15, 0.2, 0.35, 0.45, 0.6),
    "gaussian_blur": (1, 2, 3, 4, 6),
    "spatter": tuple(  # type: ignore[dict-item]
        Spatter(*c)
        for c in (
            (0.65, 0.3, 4, 0.69, 0.6, 0),
            (0.65, 0.3, 3, 0.68, 0.6, 0),
            (0.65, 0.3, 2, 0.68, 0.5, 0),
            (0.65, 0.3, 1, 0.65, 1.5, 1),
            (0.67, 0.4, 1, 0.65, 1.5, 1),
        )
    ),
    "saturate": tuple(Saturate(*c) for c in ((0.3, 0), (0.1, 0), (2, 0), (5, 0.1), (20, 0.2))),  # type: ignore[dict-item]
}

CIFAR10: dict[str, SeverityRow] = {
    "gaussian_noise": (0.04, 0.06, 0.08, 0.09, 0.10),
    "shot_noise": (500, 250, 100, 75, 50),
    "impulse_noise": (0.01, 0.02, 0.03, 0.05, 0.07),
    "defocus_blur": tuple(DefocusBlur(*c) for c in ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1))),  # type: ignore[dict-item]
    "glass_blur": tuple(GlassBlur(*c) for c in ((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2))),  # type: ignore[dict-item]
    "motion_blur": tuple(MotionBlur(*c) for c in ((6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5))),  # type: ignore[dict-item]
    "zoom_blur": _zooms((1, 1.06, 0.01), (1, 1.11, 0.01), (1, 1.16, 0.01), (1, 1.21, 0.01), (1, 1.26, 0.01)),
    "snow": tuple(  # type: ignore[dict-item]
        Snow(*c)
        for c in (
            (0.1, 0.2, 1, 0.6, 8, 3, 0.95),
            (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
            (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
            (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
            (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8),
        )
    ),
    # make_cifar_c.py shrinks the frost photographs to 0.2x and uses the first 5
    "frost": tuple(  # type: ignore[dict-item]
        Frost(a, b, 0.2, 5) for a, b in ((1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45))
    ),
    "fog": tuple(Fog(*c) for c in ((0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75))),  # type: ignore[dict-item]
    "brightness": (0.05, 0.1, 0.15, 0.2, 0.3),
    "contrast": (0.75, 0.5, 0.4, 0.3, 0.15),
    # make_cifar_c.py's (alpha, sigma, affine) = 32 * (0, 0, .08), (.05, .2, .07), (.08, .06, .06), ...
    "elastic_transform": tuple(  # type: ignore[dict-item]
        _elastic_cifar(32 * a, 32 * s, 32 * f)
        for a, s, f in ((0, 0, 0.08), (0.05, 0.2, 0.07), (0.08, 0.06, 0.06), (0.1, 0.04, 0.05), (0.1, 0.03, 0.03))
    ),
    "pixelate": tuple(Pixelate(f, "box") for f in (0.95, 0.9, 0.85, 0.75, 0.65)),  # type: ignore[dict-item]
    "jpeg_compression": (80, 65, 58, 50, 40),
    "speckle_noise": (0.06, 0.1, 0.12, 0.16, 0.2),
    "gaussian_blur": (0.4, 0.6, 0.7, 0.8, 1.0),
    "spatter": tuple(  # type: ignore[dict-item]
        Spatter(*c)
        for c in (
            (0.62, 0.1, 0.7, 0.7, 0.5, 0),
            (0.65, 0.1, 0.8, 0.7, 0.5, 0),
            (0.65, 0.3, 1, 0.69, 0.5, 0),
            (0.65, 0.1, 0.7, 0.69, 0.6, 1),
            (0.65, 0.1, 0.5, 0.68, 0.6, 1),
        )
    ),
    "saturate": tuple(Saturate(*c) for c in ((0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2))),  # type: ignore[dict-item]
}

#: JPEG quality of the released ImageNet-C files (make_imagenet_c.py saves with PIL at quality 85);
#: CIFAR-10-C is released as lossless uint8 .npy arrays.
IMAGENET_C_JPEG_QUALITY = 85

SEVERITIES = (1, 2, 3, 4, 5)


def check_severity(severity: object, parameter: str = "severity") -> int:
    """Return ``severity`` if it is an integer 1-5, else raise a clear error."""
    if isinstance(severity, bool) or not isinstance(severity, (int, np.integer)) or not 1 <= severity <= 5:
        raise ConfigError(f"{parameter}: expected an integer from 1 to 5, got {severity!r}")
    return int(severity)


@dataclass(frozen=True)
class SeverityTable:
    """One generator's constants: corruption name -> the parameters of severities 1-5.

    Attributes:
        name: registry name (``"cifar10"``, ``"imagenet"``).
        image_size: the image side the generator was made for.
        rows: corruption name -> its 5 severities' parameters.
    """

    name: str
    image_size: int
    rows: Mapping[str, SeverityRow]

    def __getitem__(self, corruption: str) -> SeverityRow:
        return self.rows[corruption]

    def params(self, corruption: str, severity: int) -> Any:
        """The constants of ``corruption`` at ``severity``."""
        return self.rows[corruption][check_severity(severity) - 1]


#: table name -> :class:`SeverityTable` (``TABLES.create("cifar10")["gaussian_noise"]``)
TABLES: Registry[SeverityTable] = Registry("severity table", "table")


def _register(table: SeverityTable) -> None:
    TABLES.register(table.name)(lambda: table)


_register(SeverityTable("cifar10", 32, CIFAR10))
_register(SeverityTable("imagenet", 224, IMAGENET))

#: the ``table`` setting that picks a table by image size (:func:`resolve_table`)
AUTO = "auto"


def check_table_setting(table: object, parameter: str = "table") -> str:
    """Return ``table`` if it is ``auto`` or a severity table, else raise an error listing the valid settings."""
    if table != AUTO and table not in TABLES:
        raise UnknownNameError(
            f"{parameter}: unknown severity table {table!r}; valid tables: {', '.join([AUTO, *TABLES.names()])}"
        )
    return table  # type: ignore[return-value]


def resolve_table(table: str, image_side: int) -> str:
    """``auto`` -> ``cifar10`` for images up to 64 pixels on a side, else ``imagenet``; others unchanged."""
    if check_table_setting(table) != AUTO:
        return table
    return "cifar10" if image_side <= 64 else "imagenet"


def severity_params(table: str, name: str, severity: int) -> Any:
    """The constants of corruption ``name`` at ``severity`` in ``table``."""
    return TABLES.create(table).params(name, severity)
