"""The paper's three training procedures: clean, Gaussian augmentation, PGD adversarial training."""

from errorset.train.augment import gaussian_augment
from errorset.train.loop import EpochStats, Precision, accuracy, predict, train_epoch
from errorset.train.modes import MODES, describe_mode

__all__ = [
    "MODES",
    "EpochStats",
    "Precision",
    "accuracy",
    "describe_mode",
    "gaussian_augment",
    "predict",
    "train_epoch",
]
