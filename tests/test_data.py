from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from errorset.data import (
    CIFAR10_CLASSES,
    DATASETS,
    file_md5,
    load_arrays,
    load_dataset,
    prepare_dataset,
    random_flip_crop,
    seeded_subset,
)
from errorset.errors import DataError
from errorset.resolve import load_config

from .conftest import SHARED_CIFAR
from .imagefolders import tar_tree, write_tree


def data_cfg(tmp_path, *overrides):
    return load_config(None, [f"data.root={tmp_path / 'data'}", *overrides]).data


def test_registry_lists_the_three_datasets():
    assert DATASETS.names() == ["cifar10", "digits", "imagefolder"]


def test_digits_is_a_stratified_uint8_split(tmp_path):
    data = load_dataset(data_cfg(tmp_path, "data.name=digits"), progress=False)
    assert data.x_train.shape == (1437, 1, 8, 8) and data.x_test.shape == (360, 1, 8, 8)
    assert data.x_train.dtype == np.uint8 and data.x_train.max() == 255
    assert np.bincount(data.y_test).min() >= 35  # every class is in the test split
    assert data.classes == [str(i) for i in range(10)]
    x = data.x_train / 255.0
    assert data.mean[0] == pytest.approx(x.mean(), abs=1e-6)
    assert data.std[0] == pytest.approx(x.std(), abs=1e-6)


@pytest.mark.parametrize("packed", [False, True], ids=["folder", "tar.gz"])
def test_imagefolder_reads_pixels_and_labels_exactly(tmp_path, packed):
    tree = tmp_path / "tree"
    truth = write_tree(tree, ["b_cat", "a_dog"], {"train": 3, "val": 2}, size=(10, 6))
    path = tar_tree(tree, tmp_path / "set.tar.gz", prefix="myset") if packed else tree
    data = load_dataset(data_cfg(tmp_path, "data.name=imagefolder", f"data.imagefolder.path={path}"), progress=False)
    # classes sorted: a_dog = 0, b_cat = 1; write_tree wrote b_cat first
    assert data.classes == ["a_dog", "b_cat"]
    np.testing.assert_array_equal(data.x_train[:3], truth["train"][3:])
    np.testing.assert_array_equal(data.x_train[3:], truth["train"][:3])
    np.testing.assert_array_equal(data.y_train, [0, 0, 0, 1, 1, 1])
    np.testing.assert_array_equal(data.x_test[:2], truth["val"][2:])
    assert data.source["test_split"] == "val"
    assert data.input_shape == (3, 6, 10)


def test_imagefolder_resizes_when_asked_and_refuses_mixed_sizes(tmp_path):
    tree = tmp_path / "tree"
    write_tree(tree, ["x"], {"train": 2, "test": 1}, size=(40, 20))
    write_tree(tree, ["y"], {"train": 2, "test": 1}, size=(20, 40), seed=1)
    cfg = data_cfg(tmp_path, "data.name=imagefolder", f"data.imagefolder.path={tree}")
    with pytest.raises(DataError, match=r"set data\.imagefolder\.image_size"):
        prepare_dataset(cfg, progress=False)
    cfg = data_cfg(tmp_path, "data.name=imagefolder", f"data.imagefolder.path={tree}", "data.imagefolder.image_size=16")
    assert load_dataset(cfg, progress=False).x_train.shape == (4, 3, 16, 16)


def test_grayscale_folders_stay_one_channel(tmp_path):
    tree = tmp_path / "tree"
    write_tree(tree, ["0", "1"], {"train": 2, "test": 1}, size=(8, 8), mode="L")
    data = load_dataset(data_cfg(tmp_path, "data.name=imagefolder", f"data.imagefolder.path={tree}"), progress=False)
    assert data.input_shape == (1, 8, 8)


@pytest.fixture
def fake_cifar(tmp_path):
    """A CIFAR-10-layout archive: 10 classes, 2 train and 1 test image each."""
    tree = tmp_path / "cifar"
    truth = write_tree(tree, CIFAR10_CLASSES, {"train": 2, "test": 1})
    return tar_tree(tree, tmp_path / "cifar10.tar.gz"), truth


def test_cifar10_from_the_archive_parameter(tmp_path, fake_cifar):
    archive, truth = fake_cifar
    data = load_dataset(data_cfg(tmp_path, f"data.cifar10.archive={archive}"), progress=False)
    np.testing.assert_array_equal(data.x_train, truth["train"])
    np.testing.assert_array_equal(data.y_test, np.arange(10))
    assert data.classes == CIFAR10_CLASSES


def test_a_file_made_from_a_local_copy_is_not_downloaded_over(tmp_path, fake_cifar, monkeypatch, caplog):
    """dvc repro with $ERRORSET_CIFAR10_ARCHIVE, then a notebook without it: the DVC-tracked file stays."""
    archive, truth = fake_cifar
    monkeypatch.setenv("ERRORSET_CIFAR10_ARCHIVE", str(archive))
    path = prepare_dataset(data_cfg(tmp_path), progress=False)
    before = file_md5(path)
    monkeypatch.delenv("ERRORSET_CIFAR10_ARCHIVE")
    with caplog.at_level("WARNING"):
        data = load_dataset(data_cfg(tmp_path), progress=False)  # would download (and fail: no network)
    np.testing.assert_array_equal(data.x_train, truth["train"])
    assert file_md5(path) == before
    assert "prepared from a local copy (cifar10.tar.gz)" in caplog.text
    # an explicitly configured other source is still prepared anew
    other = tmp_path / "other"
    truth2 = write_tree(other, CIFAR10_CLASSES, {"train": 1, "test": 1})
    data = load_dataset(data_cfg(tmp_path, f"data.cifar10.archive={other}"), progress=False)
    np.testing.assert_array_equal(data.x_train, truth2["train"])


def test_cifar10_from_the_environment_variable(tmp_path, fake_cifar, monkeypatch):
    archive, truth = fake_cifar
    monkeypatch.setenv("ERRORSET_CIFAR10_ARCHIVE", str(archive))
    data = load_dataset(data_cfg(tmp_path), progress=False)
    np.testing.assert_array_equal(data.x_test, truth["test"])


def test_cifar10_archive_with_wrong_classes_is_refused(tmp_path):
    tree = tmp_path / "t"
    write_tree(tree, ["cat", "dog"], {"train": 1, "test": 1})
    with pytest.raises(DataError, match=r"data\.cifar10\.archive: .* has classes \['cat', 'dog'\], expected"):
        prepare_dataset(data_cfg(tmp_path, f"data.cifar10.archive={tree}"), progress=False)


def test_missing_archive_names_the_parameter(tmp_path, monkeypatch):
    with pytest.raises(DataError, match=r"data\.cifar10\.archive: no such file or folder '.*nope\.tar\.gz'"):
        prepare_dataset(data_cfg(tmp_path, f"data.cifar10.archive={tmp_path / 'nope.tar.gz'}"), progress=False)
    monkeypatch.setenv("ERRORSET_CIFAR10_ARCHIVE", str(tmp_path / "gone.tgz"))
    with pytest.raises(DataError, match=r"\$ERRORSET_CIFAR10_ARCHIVE: no such file or folder"):
        prepare_dataset(data_cfg(tmp_path), progress=False)


def test_corrupt_archives_are_reported_and_nothing_is_written(tmp_path, fake_cifar):
    archive, _ = fake_cifar
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(os.urandom(4096))
    cfg = data_cfg(tmp_path, f"data.cifar10.archive={junk}")
    with pytest.raises(DataError, match=r"data\.cifar10\.archive: .*junk\.tar\.gz is not a readable archive"):
        prepare_dataset(cfg, progress=False)
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    cfg = data_cfg(tmp_path, f"data.cifar10.archive={truncated}")
    with pytest.raises(DataError, match=r"data\.cifar10\.archive: archive .* is truncated or corrupt"):
        prepare_dataset(cfg, progress=False)
    assert not (tmp_path / "data" / "cifar10.npz").exists()


def test_undecodable_image_names_the_file(tmp_path):
    tree = tmp_path / "t"
    write_tree(tree, ["a"], {"train": 1, "test": 1})
    (tree / "train" / "a" / "broken.png").write_bytes(b"\x89PNG garbage")
    cfg = data_cfg(tmp_path, "data.name=imagefolder", f"data.imagefolder.path={tree}")
    with pytest.raises(DataError, match=r"data\.imagefolder\.path: cannot decode image train/a/broken\.png"):
        prepare_dataset(cfg, progress=False)


def test_download_failure_points_to_the_archive(tmp_path, monkeypatch):
    import torchvision.datasets

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    with pytest.raises(DataError, match=r"could not download CIFAR-10 .*set data\.cifar10\.archive"):
        prepare_dataset(data_cfg(tmp_path), progress=False)
    with pytest.raises(DataError, match=r"data\.cifar10\.download is false"):
        prepare_dataset(data_cfg(tmp_path, "data.cifar10.download=false"), progress=False)


def test_prepared_file_is_reused_until_the_source_changes(tmp_path, fake_cifar):
    archive, _ = fake_cifar
    cfg = data_cfg(tmp_path, "data.name=imagefolder", f"data.imagefolder.path={archive}")
    path = prepare_dataset(cfg, progress=False)
    md5, mtime = file_md5(path), path.stat().st_mtime_ns
    assert prepare_dataset(cfg, progress=False) == path and path.stat().st_mtime_ns == mtime
    resized = data_cfg(
        tmp_path, "data.name=imagefolder", f"data.imagefolder.path={archive}", "data.imagefolder.image_size=16"
    )
    prepare_dataset(resized, progress=False)
    assert load_arrays(path).input_shape == (3, 16, 16) and file_md5(path) != md5


def test_preparation_is_deterministic(tmp_path, fake_cifar):
    archive, _ = fake_cifar
    a = prepare_dataset(data_cfg(tmp_path / "a", f"data.cifar10.archive={archive}"), progress=False)
    b = prepare_dataset(data_cfg(tmp_path / "b", f"data.cifar10.archive={archive}"), progress=False)
    assert file_md5(a) == file_md5(b)  # so DVC's hash of the prepared file is stable


def test_corrupt_prepared_file_is_remade(tmp_path):
    cfg = data_cfg(tmp_path, "data.name=digits")
    path = prepare_dataset(cfg, progress=False)
    good = file_md5(path)
    path.write_bytes(b"half a file")
    assert file_md5(prepare_dataset(cfg, progress=False)) == good


def test_flip_crop_is_a_flipped_shifted_window_of_the_padded_image():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(64, 3, 8, 8)
    out = random_flip_crop(x, torch.Generator().manual_seed(0), pad=2)
    assert out.shape == x.shape
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    flips = torch.rand(64, generator=g) < 0.5
    oy = torch.randint(0, 5, (64,), generator=g)
    ox = torch.randint(0, 5, (64,), generator=g)
    for i in range(64):
        src = torch.nn.functional.pad(x[i].flip(2) if flips[i] else x[i], (2, 2, 2, 2))
        torch.testing.assert_close(out[i], src[:, oy[i] : oy[i] + 8, ox[i] : ox[i] + 8])
    assert 16 < int(flips.sum()) < 48
    assert not torch.equal(padded[:, :, 2:10, 2:10], out)


def test_seeded_subset():
    a = seeded_subset(100, 10, seed=3)
    assert torch.equal(a, seeded_subset(100, 10, seed=3)) and len(a.unique()) == 10
    assert not torch.equal(a, seeded_subset(100, 10, seed=4))
    assert torch.equal(seeded_subset(5, 0, seed=0), torch.arange(5))


@pytest.mark.cifar
@pytest.mark.skipif(not SHARED_CIFAR.exists(), reason="the CIFAR-10 copy in ../shared/datasets is not here")
def test_real_cifar10_copy(tmp_path):
    data = load_dataset(data_cfg(tmp_path, f"data.cifar10.archive={SHARED_CIFAR}"), progress=False)
    assert data.x_train.shape == (50000, 3, 32, 32) and data.x_test.shape == (10000, 3, 32, 32)
    assert np.bincount(data.y_train).tolist() == [5000] * 10
    assert np.bincount(data.y_test).tolist() == [1000] * 10
    # the README of the copy: decoded train channel means [0.4913 0.4821 0.4465]
    np.testing.assert_allclose(data.mean, [0.4913, 0.4821, 0.4465], atol=2e-4)
