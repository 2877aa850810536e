"""Datasets as uint8 arrays, prepared once into one file each, and batch utilities."""

from errorset.data.arrays import ImageArrays, file_md5, load_arrays, save_arrays
from errorset.data.batches import batch_indices, holdout_split, random_flip_crop, seeded_subset, to_float
from errorset.data.datasets import (
    CIFAR10_CLASSES,
    DATASETS,
    load_dataset,
    prepare_dataset,
    prepared_path,
)

__all__ = [
    "CIFAR10_CLASSES",
    "DATASETS",
    "ImageArrays",
    "batch_indices",
    "file_md5",
    "holdout_split",
    "load_arrays",
    "load_dataset",
    "prepare_dataset",
    "prepared_path",
    "random_flip_crop",
    "save_arrays",
    "seeded_subset",
    "to_float",
]
