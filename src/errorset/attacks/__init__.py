"""Adversarial attacks on classifiers taking images in [0,1]: PGD and the nearest-error search."""

from errorset.attacks.nearest import NearestError, logit_margin, margin_loss, nearest_error
from errorset.attacks.pgd import NORMS, pgd, project, random_in_ball

__all__ = ["NORMS", "NearestError", "logit_margin", "margin_loss", "nearest_error", "pgd", "project", "random_in_ball"]
