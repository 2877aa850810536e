"""Adversarial attacks on classifiers taking images in [0,1]."""

from errorset.attacks.pgd import NORMS, pgd, project, random_in_ball

__all__ = ["NORMS", "pgd", "project", "random_in_ball"]
