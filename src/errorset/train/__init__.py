"""The paper's three training procedures: clean, Gaussian augmentation, PGD adversarial training."""

from errorset.train.augment import gaussian_augment
from errorset.train.loop import EpochStats, Precision, train_epoch
from errorset.train.modes import MODES

__all__ = [
    "MODES",
    "EpochStats",
    "Precision",
    "gaussian_augment",
    "train_epoch",
]
