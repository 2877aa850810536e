"""The corruption API: every corruption's contract, determinism, bad input, and the building blocks."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
import torch

from errorset.corruptions import (
    ALL_CORRUPTIONS,
    BENCHMARK_CORRUPTIONS,
    CORRUPTIONS,
    EXTRA_CORRUPTIONS,
    TABLES,
    corrupt,
    expand_corruptions,
)
from errorset.errors import ConfigError, ErrorsetError, UnknownNameError


def smooth_images(n: int, c: int = 3, h: int = 32, w: int = 32, seed: int = 0) -> torch.Tensor:
    """Natural-looking test images: upsampled random colours (no flat regions, no saturation)."""
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(n, c, max(h // 4, 2), max(w // 4, 2), generator=g) * 0.8 + 0.1
    return torch.nn.functional.interpolate(base, size=(h, w), mode="bilinear", align_corners=False)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_registry_holds_the_19_corruptions():
    assert len(BENCHMARK_CORRUPTIONS) == 15 and len(EXTRA_CORRUPTIONS) == 4
    assert set(CORRUPTIONS.names()) == set(ALL_CORRUPTIONS) == set(BENCHMARK_CORRUPTIONS) | set(EXTRA_CORRUPTIONS)
    assert EXTRA_CORRUPTIONS == ("speckle_noise", "gaussian_blur", "spatter", "saturate")
    families = {CORRUPTIONS.get(n).family for n in ALL_CORRUPTIONS}
    assert families == {"noise", "blur", "weather", "digital"}
    for name in TABLES:
        table = TABLES.create(name)
        assert set(table.rows) == set(ALL_CORRUPTIONS)
        assert all(len(row) == 5 for row in table.rows.values())


def test_tables_hold_the_published_constants():
    # spot checks against make_imagenet_c.py / imagecorruptions and make_cifar_c.py
    assert TABLES.create("imagenet")["gaussian_noise"] == (0.08, 0.12, 0.18, 0.26, 0.38)
    assert TABLES.create("cifar10")["gaussian_noise"] == (0.04, 0.06, 0.08, 0.09, 0.10)
    assert TABLES.create("imagenet")["jpeg_compression"] == (25, 18, 15, 10, 7)
    assert TABLES.create("cifar10")["jpeg_compression"] == (80, 65, 58, 50, 40)
    assert TABLES.create("imagenet")["glass_blur"][4] == (1.5, 4, 2)
    assert TABLES.create("cifar10")["glass_blur"][4] == (0.4, 1, 2)
    assert TABLES.create("cifar10")["shot_noise"] == (500, 250, 100, 75, 50)
    assert len(TABLES.create("imagenet")["zoom_blur"][4].factors()) == 11
    assert [tuple(r) for r in TABLES.create("cifar10")["motion_blur"]] == [(6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)]
    assert tuple(TABLES.create("cifar10")["elastic_transform"][1]) == pytest.approx((0.05, 0.2, 0.07))


def test_families_expand_to_their_benchmark_corruptions():
    names = expand_corruptions(["noise", "blur", "fog", "contrast", "shot_noise", "saturate"])
    assert names == [
        "gaussian_noise",
        "shot_noise",
        "impulse_noise",
        "defocus_blur",
        "glass_blur",
        "motion_blur",
        "zoom_blur",
        "fog",
        "contrast",
        "saturate",
    ]
    everything = expand_corruptions(["noise", "blur", "weather", "digital"])
    assert sorted(everything) == sorted(BENCHMARK_CORRUPTIONS)
    with pytest.raises(UnknownNameError, match=r"sweep\.names\[0\]: unknown corruption or family 'haze'"):
        expand_corruptions(["haze"], "sweep.names")
    with pytest.raises(ConfigError, match=r"names: expected a non-empty list"):
        expand_corruptions([])


@pytest.mark.parametrize("name", ALL_CORRUPTIONS)
def test_every_corruption_keeps_shape_dtype_and_range_and_changes_the_images(name):
    x = smooth_images(6, h=32, w=40)
    for table in ("cifar10", "imagenet"):
        for severity in (1, 5):
            y = corrupt(x, name, severity, table, gen(1))
            assert y.shape == x.shape and y.dtype == x.dtype and y.device == x.device
            assert float(y.min()) >= 0 and float(y.max()) <= 1
            assert torch.isfinite(y).all()
    # severity 5 changes the images more than severity 1 (imagenet table, on average)
    d1 = (corrupt(x, name, 1, "imagenet", gen(2)) - x).abs().mean()
    d5 = (corrupt(x, name, 5, "imagenet", gen(2)) - x).abs().mean()
    assert d5 > 0.002 and d5 >= 0.8 * d1, (float(d1), float(d5))


@pytest.mark.parametrize("name", ALL_CORRUPTIONS)
def test_determinism_across_seeds_batch_sizes_and_chunks(name):
    x = smooth_images(20, seed=3)
    a = corrupt(x[:10], name, 3, "cifar10", gen(7))
    b = corrupt(x[:20], name, 3, "cifar10", gen(7))[:10]
    chunks = torch.cat([corrupt(x[i : i + 3], name, 3, "cifar10", gen(7), start_index=i) for i in range(0, 9, 3)])
    assert torch.equal(a, b)
    assert torch.equal(a[:9], chunks)
    assert torch.equal(a, corrupt(x[:10], name, 3, "cifar10", gen(7)))
    assert torch.equal(x, smooth_images(20, seed=3))  # the input is not modified
    if CORRUPTIONS.get(name).random:
        assert not torch.equal(a, corrupt(x[:10], name, 3, "cifar10", gen(8)))
        # images get independent randomness: the same image twice is corrupted differently
        twin = corrupt(x[:1].expand(2, -1, -1, -1).contiguous(), name, 3, "cifar10", gen(7))
        assert not torch.equal(twin[0], twin[1])


def test_one_generator_draw_per_call():
    g = gen(5)
    first = corrupt(smooth_images(2), "gaussian_noise", 2, "cifar10", g)
    second = corrupt(smooth_images(2), "gaussian_noise", 2, "cifar10", g)
    assert not torch.equal(first, second)  # the generator advanced
    assert torch.equal(first, corrupt(smooth_images(2), "gaussian_noise", 2, "cifar10", gen(5)))


def test_dtypes_and_one_channel_images():
    x = smooth_images(3)
    for dtype in (torch.float64, torch.float16, torch.bfloat16):
        y = corrupt(x.to(dtype), "glass_blur", 2, "cifar10", gen())
        assert y.dtype == dtype
        assert (y.float() - corrupt(x, "glass_blur", 2, "cifar10", gen())).abs().max() < 0.02
    gray = smooth_images(3, c=1, h=8, w=8)  # digits-sized
    for name in ALL_CORRUPTIONS:
        y = corrupt(gray, name, 5, "cifar10", gen())
        assert y.shape == gray.shape and float(y.min()) >= 0 and float(y.max()) <= 1
    # a gray image corrupted as RGB: contrast acts on the one channel as on each of three
    assert torch.allclose(
        corrupt(gray, "contrast", 3, "cifar10"),
        corrupt(gray.expand(-1, 3, -1, -1), "contrast", 3, "cifar10")[:, :1],
        atol=1e-6,
    )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("name", ALL_CORRUPTIONS)
def test_gpu_gives_the_cpu_result(name):
    x = smooth_images(8)
    cpu = corrupt(x, name, 4, "cifar10", gen(1))
    gpu = corrupt(x.cuda(), name, 4, "cifar10", gen(1))
    assert gpu.device.type == "cuda"
    assert (gpu.cpu() - cpu).abs().mean() < 1e-4


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (
            lambda x: corrupt(x, "sepia", 1),
            UnknownNameError,
            r"name: unknown corruption 'sepia'; valid corruptions: gaussian_noise, shot_noise",
        ),
        (lambda x: corrupt(x, "fog", 0), ConfigError, r"severity: expected an integer from 1 to 5, got 0"),
        (lambda x: corrupt(x, "fog", 6), ConfigError, r"severity: expected an integer from 1 to 5, got 6"),
        (lambda x: corrupt(x, "fog", 2.5), ConfigError, r"severity: expected an integer from 1 to 5, got 2\.5"),
        (lambda x: corrupt(x, "fog", True), ConfigError, r"severity: expected an integer from 1 to 5, got True"),
        (
            lambda x: corrupt(x, "fog", 1, "tiny"),
            UnknownNameError,
            r"table: unknown severity table 'tiny'; valid severity tables: cifar10, imagenet",
        ),
        (
            lambda x: corrupt((x * 255).to(torch.uint8), "fog", 1),
            ConfigError,
            r"x: expected floating-point images in \[0,1\], got dtype torch\.uint8 \(use x\.float\(\) / 255\)",
        ),
        (
            lambda x: corrupt(x[0], "fog", 1),
            ConfigError,
            r"x: expected an N x C x H x W batch, got shape \(3, 32, 32\)",
        ),
        (lambda x: corrupt(x[:, :2], "fog", 1), ConfigError, r"x: expected 1 or 3 channels, got 2"),
        (
            lambda x: corrupt(x[..., :4, :4], "fog", 1),
            ConfigError,
            r"x: expected images of at least 8 x 8 pixels, got 4 x 4",
        ),
        (
            lambda x: corrupt(x * 2, "fog", 1),
            ConfigError,
            r"x: expected values in \[0,1\], got values from 0\.\d+ to 1\.\d+",
        ),
        (lambda x: corrupt(x - 0.5, "fog", 1), ConfigError, r"x: expected values in \[0,1\], got values from -0\.\d+"),
        (lambda x: corrupt(x.numpy(), "fog", 1), ConfigError, r"x: expected a torch\.Tensor of images, got ndarray"),
    ],
)
def test_bad_input_gets_one_clear_error(call, error, message):
    x = smooth_images(2)
    with pytest.raises(error, match=message) as info:
        call(x)
    assert isinstance(info.value, ErrorsetError)
    assert "\n" not in str(info.value)


def test_nan_values_are_refused():
    x = smooth_images(2)
    x[0, 0, 0, 0] = float("nan")
    with pytest.raises(ConfigError, match=r"x: expected values in \[0,1\], got values from nan"):
        corrupt(x, "contrast", 1)


# --- building blocks ----------------------------------------------------------------------


def _sequential_shuffle(img: np.ndarray, delta: int, offsets: np.ndarray) -> np.ndarray:
    """The reference glass blur's loop, verbatim in order, with the view-aliasing "swap" (a copy)."""
    x = img.copy()
    h, w = x.shape[:2]
    for it in range(offsets.shape[0]):
        for a, hh in enumerate(range(h - delta, delta, -1)):
            for b, ww in enumerate(range(w - delta, delta, -1)):
                dy, dx = offsets[it, a, b]
                x[hh, ww] = x[hh + dy, ww + dx]
    return x


@pytest.mark.parametrize(
    ("delta", "iterations", "size"), [(1, 2, (12, 15)), (2, 3, (16, 16)), (4, 2, (13, 20)), (3, 5, (24, 21))]
)
def test_vectorised_glass_shuffle_equals_the_sequential_loop(delta, iterations, size):
    from errorset.corruptions.blur import local_shuffle

    h, w = size
    g = torch.Generator().manual_seed(delta)
    x = torch.rand(3, 2, h, w, generator=g)
    offsets = torch.randint(-delta, delta, (3, iterations, h - 2 * delta, w - 2 * delta, 2), generator=g)
    got = local_shuffle(x, delta, iterations, offsets)
    for i in range(3):
        want = _sequential_shuffle(x[i].permute(1, 2, 0).numpy(), delta, offsets[i].numpy())
        assert np.array_equal(got[i].permute(1, 2, 0).numpy(), want)


def test_jpeg_codec_equals_pillow():
    from PIL import Image

    from errorset.corruptions.jpeg import jpeg_round_trip

    for h, w in ((48, 40), (32, 32), (33, 27), (17, 50)):
        x = (smooth_images(4, h=h, w=w, seed=2) * 255).round()
        x[:, :, ::7] = 255 - x[:, :, ::7]  # edges, so that high frequencies matter
        x[3] = torch.randint(0, 256, x[3].shape, generator=gen(h)).float()  # noise: every coefficient
        for quality in (7, 25, 80, 95):
            ours = jpeg_round_trip(x, quality)
            for i in range(4):
                buf = io.BytesIO()
                Image.fromarray(x[i].permute(1, 2, 0).numpy().astype(np.uint8)).save(buf, "JPEG", quality=quality)
                pil = torch.from_numpy(np.asarray(Image.open(buf)).astype(np.float32)).permute(2, 0, 1)
                assert torch.equal(ours[i], pil), (h, w, quality, float((ours[i] - pil).abs().mean()))


def test_pixelate_matches_pillow_box_resizing():
    from PIL import Image

    from errorset.corruptions import severity_params

    x = smooth_images(3, seed=4)
    x[:, :, ::3] = 1 - x[:, :, ::3]
    for severity in (1, 3, 5):
        y = corrupt(x, "pixelate", severity, "cifar10")
        factor = severity_params("cifar10", "pixelate", severity).factor
        for i in range(3):
            im = Image.fromarray((x[i].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
            small = int(32 * factor)
            want = np.asarray(im.resize((small, small), Image.BOX).resize((32, 32), Image.BOX)).astype(np.float64)
            got = y[i].permute(1, 2, 0).numpy() * 255
            assert np.abs(got - want).mean() < 0.6  # Pillow rounds between passes


def test_poisson_sampler_matches_the_poisson_moments():
    from errorset.corruptions.noise import poisson

    g = torch.Generator().manual_seed(0)
    n = 200_000
    for lam in (0.2, 1.5, 2.99, 3.0, 7.0, 40.0):
        lam_t = torch.full((n,), lam)
        k = poisson(lam_t, torch.randn(n, generator=g))
        assert torch.all(k == k.round()) and k.min() >= 0
        assert abs(float(k.mean()) - lam) < 0.02 * lam + 0.01
        assert abs(float(k.var()) - lam) < 0.04 * lam + 0.01
        if lam < 3:  # exact: P(0) = exp(-lam)
            assert abs(float((k == 0).float().mean()) - np.exp(-lam)) < 0.005


def test_error_names_the_parameter_for_registry_lookups():
    with pytest.raises(UnknownNameError, match=re.escape("corruptions.names[2]: unknown corruption 'rain'")):
        from errorset.corruptions import check_corruption

        check_corruption("rain", "corruptions.names[2]")


def test_truncated_distance_equals_scipys_distance_transform():
    from scipy import ndimage

    from errorset.corruptions.weather import truncated_distance

    g = torch.Generator().manual_seed(0)
    edges = torch.rand(5, 1, 32, 40, generator=g) < torch.tensor([0.0, 0.002, 0.01, 0.05, 0.3]).view(5, 1, 1, 1)
    got = truncated_distance(edges, 20)
    for i in range(5):
        e = edges[i, 0].numpy()
        want = np.minimum(ndimage.distance_transform_edt(~e), 20) if e.any() else np.full(e.shape, 20.0)
        np.testing.assert_allclose(got[i, 0].numpy(), want, atol=1e-5)


@pytest.mark.parametrize("mode", ["reflect", "mirror"])
def test_bilinear_sample_equals_scipys_map_coordinates(mode):
    from scipy import ndimage

    from errorset.corruptions.ops import bilinear_sample

    g = torch.Generator().manual_seed(1)
    img = torch.rand(2, 3, 12, 15, generator=g, dtype=torch.float64)
    y = torch.rand(2, 9, 11, generator=g, dtype=torch.float64) * 30 - 9
    x = torch.rand(2, 9, 11, generator=g, dtype=torch.float64) * 36 - 11
    got = bilinear_sample(img, y, x, mode)
    for i in range(2):
        for c in range(3):
            want = ndimage.map_coordinates(img[i, c].numpy(), [y[i].numpy(), x[i].numpy()], order=1, mode=mode)
            np.testing.assert_allclose(got[i, c].numpy(), want, atol=1e-9)


@pytest.mark.parametrize("table", ["cifar10", "imagenet"])
def test_zoom_blur_as_one_sparse_operator_equals_the_sum_of_zooms(table):
    from errorset.corruptions.ops import clipped_zoom, zoom_sum
    from errorset.corruptions.tables import severity_params

    x = smooth_images(3, h=32, w=24).double()
    for severity in range(1, 6):
        factors = tuple(float(z) for z in severity_params(table, "zoom_blur", severity).factors())
        want = (x + sum(clipped_zoom(x, z) for z in factors)) / (len(factors) + 1)
        assert torch.allclose(zoom_sum(x, factors), want, atol=1e-12)
    big = smooth_images(2, h=80, w=72)  # clipped_zoom resamples large images with interpolate
    factors = (1.0, 1.07, 1.19)
    want = (big + sum(clipped_zoom(big, z) for z in factors)) / 4
    assert torch.allclose(zoom_sum(big, factors), want, atol=1e-5)


def test_displaced_sampling_equals_scipys_map_coordinates():
    from scipy import ndimage

    from errorset.corruptions.ops import sample_displaced

    g = torch.Generator().manual_seed(2)
    img = torch.rand(2, 3, 12, 15, generator=g, dtype=torch.float64)
    field = torch.randn(2, 2, 12, 15, generator=g, dtype=torch.float64) * 6
    got = sample_displaced(img, field)
    yy, xx = np.meshgrid(np.arange(12), np.arange(15), indexing="ij")
    for i in range(2):
        coords = [yy + field[i, 1].numpy(), xx + field[i, 0].numpy()]
        for c in range(3):
            want = ndimage.map_coordinates(img[i, c].numpy(), coords, order=1, mode="reflect")
            np.testing.assert_allclose(got[i, c].numpy(), want, atol=1e-9)
