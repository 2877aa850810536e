"""Agreement with the reference implementation (``imagecorruptions``, the ImageNet-C generator's code).

The reference runs here as a test-time oracle (``pip install imagecorruptions-imaug``,
in the ``dev`` extra); the tests skip without it, and the CIFAR-10 ones skip
without the shared CIFAR-10 copy. For the CIFAR-10-C constants, which the
package does not have, the reference outputs are rebuilt from
``make_cifar_c.py``'s formulas with the package's helpers.

* Deterministic corruptions: mean absolute difference from the reference at
  most 2/255, per corruption and severity, on CIFAR-10 images (both tables)
  and 224x224 photographs (ImageNet-C table).
* Random corruptions: the statistics of the corrupted images (noise standard
  deviation, fraction of impulse pixels, mean absolute change, gradient
  energy, brightening) within 5% of the reference's, except where a test
  says how much and why ours differs (frost, spatter's water drops).
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from errorset.corruptions import corrupt, severity_params

from .corruption_helpers import cifar_images, photos_224, to_levels, to_tensor

ic = pytest.importorskip("imagecorruptions", reason="the reference package (pip install imagecorruptions-imaug)")
reference_helpers = pytest.importorskip("imagecorruptions.corruptions")

DETERMINISTIC = (
    "defocus_blur",
    "zoom_blur",
    "brightness",
    "contrast",
    "pixelate",
    "jpeg_compression",
    "gaussian_blur",
    "saturate",
)
SEVERITIES = (1, 2, 3, 4, 5)


def cifar_reference(name: str, severity: int, img: np.ndarray) -> np.ndarray:
    """make_cifar_c.py's formula for a deterministic corruption, with its constants (uint8 HWC in and out)."""
    import cv2
    import skimage
    from PIL import Image

    p = severity_params("cifar10", name, severity)
    x = img / 255.0
    if name == "pixelate":
        small = int(32 * p.factor)
        return np.asarray(Image.fromarray(img).resize((small, small), Image.BOX).resize((32, 32), Image.BOX))
    if name == "jpeg_compression":
        import io

        buf = io.BytesIO()
        Image.fromarray(img).save(buf, "JPEG", quality=p)
        return np.asarray(Image.open(buf))
    if name == "gaussian_blur":
        out = skimage.filters.gaussian(x, sigma=p, channel_axis=-1)
    elif name == "defocus_blur":
        k = reference_helpers.disk(radius=p.radius, alias_blur=p.alias_blur)
        out = np.stack([cv2.filter2D(x[..., d], -1, k) for d in range(3)], axis=-1)
    elif name == "zoom_blur":
        acc = np.zeros_like(x)
        for z in p.factors():
            acc += reference_helpers.clipped_zoom(x, z)[:32, :32]
        out = (x + acc) / (len(p.factors()) + 1)
    elif name == "contrast":
        m = x.mean(axis=(0, 1), keepdims=True)
        out = (x - m) * p + m
    elif name in ("brightness", "saturate"):
        hsv = skimage.color.rgb2hsv(x)
        if name == "brightness":
            hsv[..., 2] = np.clip(hsv[..., 2] + p, 0, 1)
        else:
            hsv[..., 1] = np.clip(hsv[..., 1] * p.scale + p.offset, 0, 1)
        out = skimage.color.hsv2rgb(hsv)
    else:
        raise KeyError(name)
    return np.uint8(np.clip(out, 0, 1) * 255)


@functools.cache
def reference_outputs(images: str, table: str, name: str, severity: int, repeats: int = 1) -> np.ndarray:
    """The reference's corrupted images (float64 NHWC levels) for a named image set."""
    imgs = _image_set(images, repeats)
    np.random.seed(severity)
    if table == "cifar10":
        return np.stack([cifar_reference(name, severity, im) for im in imgs]).astype(np.float64)
    return np.stack([ic.corrupt(im, severity, name) for im in imgs]).astype(np.float64)


#: CIFAR-10 images per comparison: deterministic corruptions need few; random ones whose effect varies
#: most between images get more
CIFAR_IMAGES = {"fog": 128, "motion_blur": 128, "frost": 128, "snow": 128, "spatter": 256}


def _image_set(images: str, repeats: int = 1) -> np.ndarray:
    if images.startswith("cifar"):
        n = int(images.removeprefix("cifar") or 64)
        return np.concatenate([cifar_images(256)[:n]] * repeats)
    n = int(images.removeprefix("photos") or 4)
    return np.concatenate([photos_224()[:n]] * repeats)


def _images_for(name: str, images: str) -> str:
    if name in DETERMINISTIC:
        return {"cifar": "cifar32", "photos": "photos2"}.get(images, images)
    return f"cifar{CIFAR_IMAGES.get(name, 64)}" if images == "cifar" else images


def ours(images: str, table: str, name: str, severity: int, repeats: int = 1) -> np.ndarray:
    x = to_tensor(_image_set(images, repeats))
    return to_levels(corrupt(x, name, severity, table, torch.Generator().manual_seed(severity)))


# --- deterministic corruptions: at most 2/255 from the reference ------------------------------


@pytest.mark.parametrize("name", DETERMINISTIC)
@pytest.mark.parametrize(("images", "table"), [("cifar", "cifar10"), ("cifar", "imagenet"), ("photos", "imagenet")])
def test_deterministic_corruptions_match_the_reference(images, table, name):
    images = _images_for(name, images)
    for severity in SEVERITIES:
        mad = np.abs(ours(images, table, name, severity) - reference_outputs(images, table, name, severity)).mean()
        assert mad <= 2.0, f"{name} severity {severity} ({table} table, {images}): {mad:.2f}/255 from the reference"


# --- random corruptions: matching statistics ----------------------------------------------------


def statistics(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Statistics of corrupted images ``y`` of clean images ``x`` (NHWC gray levels)."""
    d = y - x
    mid = (x > 40) & (x < 215)  # away from clipping
    return {
        "noise_std": float(d[mid].std()),
        "impulse_fraction": float(((y <= 0) | (y >= 255)).mean() - ((x <= 0) | (x >= 255)).mean()),
        "mad": float(np.abs(d).mean()),
        "mean_shift": float(d.mean()),
        "gradient": float(np.abs(np.diff(y, axis=2)).mean()),
    }


RANDOM_STATS = {
    "gaussian_noise": ("noise_std",),
    "shot_noise": ("noise_std",),
    "impulse_noise": ("impulse_fraction",),
    "speckle_noise": ("noise_std",),
    "glass_blur": ("mad", "gradient"),
    "motion_blur": ("mad", "gradient"),
    "snow": ("mean_shift", "noise_std"),
    "fog": ("mad",),
    "elastic_transform": ("mad", "gradient"),
    "spatter": ("mad",),
}


def _relative_differences(
    images: str, name: str, severity: int, keys: tuple[str, ...], repeats: int = 1
) -> dict[str, float]:
    images = _images_for(name, images)
    x = _image_set(images, repeats).astype(np.float64)
    ref = reference_outputs(images, "imagenet", name, severity, repeats)
    got = ours(images, "imagenet", name, severity, repeats)
    # the reference turns an image black (0/0 -> NaN -> 0) when a small image gets no water drops at all
    keep = ~((ref == 0).all(axis=(1, 2, 3)) & (x > 0).any(axis=(1, 2, 3)))
    a, b = statistics(x[keep], ref[keep]), statistics(x[keep], got[keep])
    return {k: (b[k] - a[k]) / abs(a[k]) for k in keys}


@pytest.mark.parametrize("name", list(RANDOM_STATS))
def test_random_corruptions_match_the_reference_statistics_on_cifar(name):
    for severity in SEVERITIES:
        if name == "spatter" and severity <= 3:
            continue  # water drops: see test_spatter_water_differs_by_a_documented_amount
        diff = _relative_differences("cifar", name, severity, RANDOM_STATS[name])
        assert all(abs(v) <= 0.05 for v in diff.values()), f"{name} severity {severity}: {diff}"


@pytest.mark.parametrize(
    "name",
    ["gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise", "glass_blur", "snow", "elastic_transform"],
)
def test_random_corruptions_match_the_reference_statistics_on_photos(name):
    for severity in (1, 5):
        diff = _relative_differences("photos", name, severity, RANDOM_STATS[name], repeats=2)
        assert all(abs(v) <= 0.05 for v in diff.values()), f"{name} severity {severity}: {diff}"


@pytest.mark.parametrize("angle", [-44.9, -30.0, -7.5, 0.0, 12.0, 44.0, -100.0, -135.0])
def test_motion_blur_kernel_equals_the_reference_at_a_fixed_angle(angle):
    """Given the angle, motion blur is deterministic: ours equals the reference's ``_motion_blur``."""
    from errorset.corruptions.ops import motion_taps, shift_sum

    for images, (radius, sigma) in (("cifar", (10, 3)), ("photos", (20, 15)), ("cifar", (12, 3))):
        imgs = _image_set(images)[:4].astype(np.float32)
        want = np.stack([reference_helpers._motion_blur(im, radius=radius, sigma=sigma, angle=angle) for im in imgs])
        x = torch.from_numpy(imgs).permute(0, 3, 1, 2)
        dy, dx, w = motion_taps(radius, sigma, torch.full((4,), angle), x.shape[2], x.shape[3])
        got = shift_sum(x, dy, dx, w).permute(0, 2, 3, 1).numpy()
        assert np.abs(got - want).mean() < 0.01, (images, angle)


def test_plasma_fractal_matches_the_reference_distribution():
    """Fog's random field (at ImageNet size, where 4 photographs are too few to compare fog itself)."""
    from errorset.corruptions.ops import plasma_fractal, plasma_uniform_count
    from errorset.corruptions.rng import ImageRNG

    def describe(maps: np.ndarray) -> np.ndarray:
        lags = (1, maps.shape[1] // 8)
        lag = [np.mean([np.corrcoef(m[:, :-s].ravel(), m[:, s:].ravel())[0, 1] for m in maps]) for s in lags]
        return np.array([maps.mean(), maps.std(axis=(1, 2)).mean(), *lag])

    for size, decay, n in ((256, 1.4, 96), (256, 2.0, 96), (32, 3.0, 200)):
        np.random.seed(0)
        ref = np.stack([reference_helpers.plasma_fractal(mapsize=size, wibbledecay=decay) for _ in range(n)])
        rng = ImageRNG.create(n, 0, "plasma")
        got = plasma_fractal(rng.uniform((plasma_uniform_count(size),), 0, -1.0, 1.0), size, decay).numpy()
        a, b = describe(ref), describe(got)
        assert np.all(np.abs(b - a) <= 0.05 * np.abs(a) + 0.02), (size, decay, a, b)


# --- documented differences --------------------------------------------------------------------


def test_frost_differs_by_a_documented_amount():
    """Our frost is synthetic (the reference overlays photographs we do not copy).

    Measured here: the mean brightening and mean absolute change of the
    images are within 10% of the reference's at severities 1, 3, 5 on CIFAR-10
    images (the choice among 6 frost sheets makes them vary from image to
    image); our crystals are finer, so the images' gradient energy is up to
    25% higher. On ImageNet-sized photographs the change is within 20%.
    """
    worst = {"mad": 0.0, "mean_shift": 0.0, "gradient": 0.0}
    for severity in (1, 3, 5):
        diff = _relative_differences("cifar", "frost", severity, ("mad", "mean_shift", "gradient"))
        for k, v in diff.items():
            worst[k] = max(worst[k], abs(v))
    assert worst["mad"] <= 0.10 and worst["mean_shift"] <= 0.10, worst
    assert worst["gradient"] <= 0.30, worst
    photo = [_relative_differences("photos", "frost", s, ("mad",), repeats=3)["mad"] for s in (1, 5)]
    assert abs(float(np.mean(photo))) <= 0.20, photo


def test_spatter_water_differs_by_a_documented_amount():
    """Spatter's water drops are shaded as in the reference but with the drops' outline in place of
    OpenCV's Canny edges and an exact Euclidean distance in place of its 5x5-mask approximation.

    Measured (water, severities 1-3): the mean absolute change is within 10%
    of the reference's on photographs and on CIFAR-10 images, except for the
    ImageNet-C severity 1 on 32x32 images, whose few drops are only 1-3
    pixels wide and which we shade about 25% more lightly (the outline takes
    a larger share of a tiny drop). The mud drops (4-5) follow the
    reference's arithmetic and are within 5% (tested with the other random
    corruptions).
    """
    for severity in (2, 3):
        diff = _relative_differences("photos", "spatter", severity, ("mad",), repeats=2)["mad"]
        assert abs(diff) <= 0.10, (severity, diff)
    for severity, tolerance in ((1, 0.30), (2, 0.10), (3, 0.10)):
        diff = _relative_differences("cifar", "spatter", severity, ("mad",))["mad"]
        assert abs(diff) <= tolerance, (severity, diff)
