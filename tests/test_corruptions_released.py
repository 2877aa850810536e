"""Released-data loaders (CIFAR-10-C, ImageNet-C layouts), the CIFAR-10-C-format writer, storage formats."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from errorset.corruptions import corrupt
from errorset.corruptions.formats import FORMATS, png_round_trip, store, to_uint8
from errorset.corruptions.released import cifar10c_corruptions, load_cifar10c, load_imagenet_c, write_cifar10c
from errorset.errors import DataError, UnknownNameError

from .test_corruptions import smooth_images


def write_release_like_cifar10c(root, n=6, names=("fog", "contrast"), seed=0):
    """Files exactly as the CIFAR-10-C release lays them out: <name>.npy (5n, 32, 32, 3) uint8, labels.npy."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for name in names:
        a = rng.integers(0, 256, (5 * n, 32, 32, 3), dtype=np.uint8)
        np.save(root / f"{name}.npy", a)
        arrays[name] = a
    labels = np.tile(rng.integers(0, 10, n).astype(np.uint8), 5)
    np.save(root / "labels.npy", labels)
    return arrays, labels


def test_cifar10c_loader_reads_each_severity(tmp_path):
    arrays, labels = write_release_like_cifar10c(tmp_path / "CIFAR-10-C", n=6)
    root = tmp_path / "CIFAR-10-C"
    assert cifar10c_corruptions(root) == ["fog", "contrast"]
    for severity in (1, 3, 5):
        x, y = load_cifar10c(root, "fog", severity)
        assert x.dtype == torch.uint8 and tuple(x.shape) == (6, 3, 32, 32)
        want = arrays["fog"][(severity - 1) * 6 : severity * 6]
        assert np.array_equal(x.permute(0, 2, 3, 1).numpy(), want)
        assert y.dtype == torch.int64 and np.array_equal(y.numpy(), labels[:6])
    x, _ = load_cifar10c(root, "contrast", 2, limit=4)
    assert x.shape[0] == 4 and np.array_equal(x.permute(0, 2, 3, 1).numpy(), arrays["contrast"][6:10])


def test_cifar10c_loader_errors(tmp_path):
    root = tmp_path / "c"
    write_release_like_cifar10c(root, n=4)
    with pytest.raises(DataError, match=r"corruptions\.released: .* has no snow\.npy; it has fog, contrast"):
        load_cifar10c(root, "snow", 1)
    with pytest.raises(DataError, match=r"corruptions\.released: no such folder"):
        load_cifar10c(tmp_path / "nowhere", "fog", 1)
    with pytest.raises(UnknownNameError, match=r"corruption: unknown corruption 'rain'"):
        load_cifar10c(root, "rain", 1)
    data = (root / "fog.npy").read_bytes()
    (root / "fog.npy").write_bytes(data[: len(data) // 2])  # a truncated download
    with pytest.raises(DataError, match=r"fog\.npy is not a readable \.npy array \(\d+ bytes; truncated or corrupt"):
        load_cifar10c(root, "fog", 1)
    (root / "labels.npy").unlink()
    with pytest.raises(DataError, match=r"corruptions\.released: no such file .*labels\.npy"):
        load_cifar10c(root, "contrast", 1)
    np.save(root / "labels.npy", np.zeros(7, dtype=np.uint8))
    with pytest.raises(DataError, match=r"labels\.npy has shape \(7,\), but .*contrast\.npy has 20 images"):
        load_cifar10c(root, "contrast", 1)
    np.save(root / "contrast.npy", np.zeros((21, 32, 32, 3), dtype=np.uint8))
    with pytest.raises(DataError, match=r"has 21 images, not 5 severities"):
        load_cifar10c(root, "contrast", 1)


def test_imagenet_c_loader_reads_the_jpeg_tree(tmp_path):
    from PIL import Image

    root = tmp_path / "ImageNet-C"
    classes = ["n01440764", "n01443537", "n01484850"]
    rng = np.random.default_rng(0)
    for severity in (1, 2):
        for c in classes:
            d = root / "glass_blur" / str(severity) / c
            d.mkdir(parents=True)
            for i in range(2):
                Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(
                    d / f"ILSVRC2012_val_{i:08d}.JPEG", quality=85
                )
    x, y, names = load_imagenet_c(root, "glass_blur", 2)
    assert names == classes and tuple(x.shape) == (6, 3, 24, 24) and x.dtype == torch.uint8
    assert y.tolist() == [0, 0, 1, 1, 2, 2]
    # the model's own class order wins: label i is the folder classes[i]
    x1, y1, _ = load_imagenet_c(root, "glass_blur", 1)
    x2, y2, names2 = load_imagenet_c(root, "glass_blur", 1, classes=classes[::-1])
    assert names2 == classes[::-1] and y2.tolist() == [0, 0, 1, 1, 2, 2]
    assert torch.equal(x2[y2 == 0], x1[y1 == 2])
    x3, _, _ = load_imagenet_c(root, "glass_blur", 1, limit=3)
    assert x3.shape[0] == 3
    with pytest.raises(DataError, match=r"no such folder .*glass_blur/5"):
        load_imagenet_c(root, "glass_blur", 5)
    (root / "glass_blur" / "1" / classes[0] / "ILSVRC2012_val_00000000.JPEG").write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match=r"is not a readable image"):
        load_imagenet_c(root, "glass_blur", 1)


def test_writer_makes_the_release_layout_from_the_in_memory_corruptions(tmp_path):
    images = (smooth_images(7, seed=5) * 255).round().to(torch.uint8)
    labels = torch.arange(7) % 3
    root = write_cifar10c(
        tmp_path / "made", images, labels, ["gaussian_noise", "pixelate"], table="cifar10", seed=4, batch_size=3
    )
    assert sorted(p.name for p in root.iterdir()) == [
        "errorset.json",
        "gaussian_noise.npy",
        "labels.npy",
        "pixelate.npy",
    ]
    arr = np.load(root / "gaussian_noise.npy")
    assert arr.dtype == np.uint8 and arr.shape == (35, 32, 32, 3)
    assert np.array_equal(np.load(root / "labels.npy"), np.tile(labels.numpy().astype(np.uint8), 5))
    assert json.loads((root / "errorset.json").read_text())["seed"] == 4
    for severity in (1, 4):
        x, y = load_cifar10c(root, "gaussian_noise", severity)
        # the file holds exactly the 8-bit truncation of the in-memory corruption with the same seed
        want = to_uint8(
            corrupt(images.float() / 255, "gaussian_noise", severity, "cifar10", torch.Generator().manual_seed(4))
        )
        assert torch.equal(x, want)
        assert torch.equal(y, labels)


def test_png_round_trip_is_lossless_at_8_bits():
    x = corrupt(smooth_images(5, seed=1), "shot_noise", 5, "cifar10", torch.Generator().manual_seed(0))
    u8 = to_uint8(x)
    assert torch.equal(png_round_trip(x), u8)
    assert torch.equal(store(x, "png"), u8.float() / 255)
    # truncation, as np.uint8 in the reference generators; whole levels survive float error
    levels = torch.arange(256, dtype=torch.float32).view(1, 1, 16, 16).expand(1, 3, 16, 16) / 255
    assert torch.equal(to_uint8(levels)[0, 0].flatten(), torch.arange(256, dtype=torch.uint8))
    assert int(to_uint8(torch.full((1, 1, 1, 1), 0.99 / 255))) == 0


def test_jpeg_storage_is_pillows_lossy_round_trip():
    import io

    from PIL import Image

    x = smooth_images(2, seed=3)
    y = store(x, "jpeg", jpeg_quality=50)
    assert not torch.equal(y, store(x, "png"))
    buf = io.BytesIO()
    Image.fromarray(to_uint8(x)[0].permute(1, 2, 0).numpy()).save(buf, "JPEG", quality=50)
    assert torch.equal(
        (y[0] * 255).round().to(torch.uint8).permute(1, 2, 0), torch.from_numpy(np.array(Image.open(buf)))
    )
    # JPEG loses less as its quality rises: the round-trip error falls strictly over qualities 10, 50, 90
    u8 = to_uint8(x).float()
    errors = [float((store(x, "jpeg", jpeg_quality=q) * 255 - u8).abs().mean()) for q in (10, 50, 90)]
    assert errors[0] > errors[1] > errors[2] > 0, errors
    assert errors[0] > 2 * errors[2]  # not a rounding-level difference
    # the lossless formats give back any 8-bit image exactly (the full range, edges and noise included)
    exact = torch.randint(0, 256, (3, 3, 16, 16), generator=torch.Generator().manual_seed(4), dtype=torch.uint8)
    assert torch.equal(png_round_trip(exact.float() / 255), exact)
    for fmt in FORMATS:
        back = (store(exact.float() / 255, fmt) * 255).round().to(torch.uint8)
        assert torch.equal(back, exact) is (fmt != "jpeg"), fmt
    with pytest.raises(UnknownNameError, match=r"format: unknown format 'webp'; valid formats: memory, png, jpeg"):
        store(x, "webp")
