"""The storage formats and severity tables are registries: every entry works, unknown names list the valid ones."""

from __future__ import annotations

import pytest
import torch

from errorset.corruptions import ALL_CORRUPTIONS, CORRUPTIONS, SEVERITIES, check_table_setting, resolve_table
from errorset.corruptions.formats import FORMATS, StorageFormat, store
from errorset.corruptions.tables import TABLES, SeverityTable, severity_params
from errorset.errors import ConfigError, UnknownNameError

#: mean absolute error (in 8-bit steps) a JPEG round trip at quality 85 may leave on smooth images
JPEG_MEAN_ERROR_BOUND = 4.0


def uint8_batch(n: int = 3, side: int = 32, seed: int = 0) -> torch.Tensor:
    """Smooth 8-bit images (JPEG's error is small on them), N x 3 x side x side."""
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(n, 3, side // 8, side // 8, generator=g) * 200 + 20
    smooth = torch.nn.functional.interpolate(base, size=(side, side), mode="bilinear", align_corners=False)
    return smooth.round().to(torch.uint8)


def test_the_formats_are_listed_lossless_first():
    assert FORMATS.names() == ["memory", "png", "jpeg"]
    assert list(FORMATS) == ["memory", "png", "jpeg"]


@pytest.mark.parametrize("name", FORMATS.names())
def test_every_format_round_trips_an_8bit_batch_with_its_documented_error(name):
    fmt = FORMATS.create(name)
    assert isinstance(fmt, StorageFormat) and fmt.name == name
    u8 = uint8_batch()
    x = u8.float() / 255
    y = fmt.store(x, jpeg_quality=85)
    assert y.shape == x.shape and y.dtype == x.dtype and y.device == x.device
    assert float(y.min()) >= 0 and float(y.max()) <= 1
    assert torch.equal(store(x, name, jpeg_quality=85), y)
    error = (y * 255 - u8.float()).abs()
    if fmt.exact_8bit:
        assert float(error.max()) < 1e-3, name  # memory: the floats themselves; png: the same 8-bit values
        if name == "memory":
            assert torch.equal(y, x)
    else:
        assert name == "jpeg"
        assert 0 < float(error.mean()) < JPEG_MEAN_ERROR_BOUND


@pytest.mark.parametrize("name", TABLES.names())
def test_every_severity_table_has_5_severities_of_every_corruption(name):
    table = TABLES.create(name)
    assert isinstance(table, SeverityTable) and table.name == name and table.image_size in (32, 224)
    covered = [c for c in CORRUPTIONS if c in table.rows]
    assert covered == sorted(ALL_CORRUPTIONS)
    for corruption in covered:
        assert len(table[corruption]) == len(SEVERITIES) == 5, (name, corruption)
        for severity in SEVERITIES:
            assert severity_params(name, corruption, severity) == table.params(corruption, severity)


def test_auto_picks_a_registered_table_by_image_size():
    assert resolve_table("auto", 32) == "cifar10" and resolve_table("auto", 224) == "imagenet"
    assert {resolve_table("auto", 32), resolve_table("auto", 224)} <= set(TABLES)
    for name in TABLES:
        assert check_table_setting(name) == name and resolve_table(name, 32) == name


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: FORMATS.create("webp"), r"format: unknown format 'webp'; valid formats: memory, png, jpeg$"),
        (
            lambda: FORMATS.check("gif", "corruptions.formats[1]"),
            r"corruptions\.formats\[1\]: unknown format 'gif'; valid formats: memory, png, jpeg$",
        ),
        (lambda: store(torch.zeros(1, 3, 8, 8), "bmp"), r"format: unknown format 'bmp'; valid formats: memory, png"),
        (
            lambda: TABLES.create("tiny"),
            r"table: unknown severity table 'tiny'; valid severity tables: cifar10, imagenet$",
        ),
        (
            lambda: severity_params("cifar100", "fog", 1),
            r"table: unknown severity table 'cifar100'; valid severity tables: cifar10, imagenet$",
        ),
        (
            lambda: check_table_setting("tiny", "corruptions.table"),
            r"corruptions\.table: unknown severity table 'tiny'; valid tables: auto, cifar10, imagenet$",
        ),
    ],
)
def test_an_unknown_name_lists_the_valid_ones(call, message):
    with pytest.raises(UnknownNameError, match=message) as info:
        call()
    assert isinstance(info.value, ConfigError)
