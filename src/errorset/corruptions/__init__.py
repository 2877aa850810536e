"""The common-corruption benchmark (Hendrycks & Dietterich 2019) as batched torch operations.

19 corruptions, each at severities 1-5, on float N x C x H x W batches in
[0,1] on any device::

    from errorset.corruptions import corrupt, BENCHMARK_CORRUPTIONS
    y = corrupt(x, "glass_blur", 3, table="cifar10", generator=torch.Generator().manual_seed(0))

Layout (one module per family, as the benchmark groups them):

``catalog``   the corruptions' names and families, :class:`Corruption`, the :data:`CORRUPTIONS` registry
``apply``     :func:`corrupt`: input checks, per-image randomness, chunks of large batches
``tables``    the severity constants of the CIFAR-10-C and ImageNet-C generators (the :data:`TABLES` registry)
``noise``     gaussian_noise, shot_noise, impulse_noise, speckle_noise
``blur``      defocus_blur, glass_blur, motion_blur, zoom_blur, gaussian_blur
``weather``   snow, frost, fog, spatter
``digital``   brightness, contrast, saturate, pixelate, jpeg_compression, elastic_transform
``ops``       shared building blocks (separable filters, zoom, resizing, motion taps, plasma fractal)
``jpeg``      a libjpeg-like JPEG round trip in torch
``rng``       per-image random streams (determinism across batch sizes and devices)
``formats``   how corrupted images are stored (the :data:`~errorset.corruptions.formats.FORMATS` registry):
              in memory, PNG, JPEG round trips
``released``  loaders of the released CIFAR-10-C / ImageNet-C files, and a CIFAR-10-C-format writer
"""

from errorset.corruptions import blur, digital, noise, weather  # noqa: F401  (register the corruptions)
from errorset.corruptions.apply import check_images, corrupt
from errorset.corruptions.catalog import (
    ALL_CORRUPTIONS,
    BENCHMARK_CORRUPTIONS,
    CORRUPTIONS,
    EXTRA_CORRUPTIONS,
    Corruption,
    check_corruption,
    expand_corruptions,
)
from errorset.corruptions.tables import (
    SEVERITIES,
    TABLES,
    check_severity,
    check_table_setting,
    resolve_table,
    severity_params,
)

__all__ = [
    "ALL_CORRUPTIONS",
    "BENCHMARK_CORRUPTIONS",
    "CORRUPTIONS",
    "EXTRA_CORRUPTIONS",
    "SEVERITIES",
    "TABLES",
    "Corruption",
    "check_corruption",
    "check_images",
    "check_severity",
    "check_table_setting",
    "corrupt",
    "expand_corruptions",
    "resolve_table",
    "severity_params",
]
