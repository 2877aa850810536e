"""Adversarial attacks on classifiers taking images in [0,1]: PGD and the nearest-error search, over per-norm steps."""

from errorset.attacks.nearest import NearestError, logit_margin, margin_loss, nearest_error
from errorset.attacks.pgd import pgd, project, random_in_ball
from errorset.attacks.steps import STEPS, AttackStep, L2Step, LinfStep, default_step_size

__all__ = [
    "STEPS",
    "AttackStep",
    "L2Step",
    "LinfStep",
    "NearestError",
    "default_step_size",
    "logit_margin",
    "margin_loss",
    "nearest_error",
    "pgd",
    "project",
    "random_in_ball",
]
