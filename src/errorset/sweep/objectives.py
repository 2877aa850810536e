"""Sweep objectives by name, each measured on the held-out images of a trained trial model.

All are maximised:

``clean_accuracy``       accuracy on the held-out images
``noise_accuracy``       accuracy under Gaussian noise of ``sweep.noise_sigma`` (one draw)
``pgd_accuracy``         accuracy under PGD (``sweep.pgd``: norm, eps, steps)
``median_sigma``         median sigma(x0, ``sweep.mu``) ([0,1] pixel units; 0 for misclassified images)
``corruption_accuracy``  mean accuracy under the common corruptions (needs ``errorset.data.corruptions``)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from errorset.config import Config
from errorset.errors import ConfigError
from errorset.registry import Registry

#: measure(model, x (uint8), y, cfg, generator) -> value
Measure = Callable[[torch.nn.Module, torch.Tensor, torch.Tensor, Config, torch.Generator], float]


@dataclass(frozen=True)
class Objective:
    name: str
    measure: Measure
    direction: str = "maximize"
    #: cheap enough to evaluate after every epoch for pruning
    per_epoch: bool = True


OBJECTIVES: Registry[Objective] = Registry("objective", "sweep.objectives")


def _register(objective: Objective) -> None:
    OBJECTIVES.register(objective.name)(objective)


def _clean(model, x, y, cfg, generator) -> float:
    from errorset.train.loop import accuracy

    return accuracy(model, x, y)


def _noise(model, x, y, cfg, generator) -> float:
    from errorset.noise import accuracy_in_noise

    return float(accuracy_in_noise(model, x, y, [cfg.sweep.noise_sigma], 1, generator=generator).mean[0])


def _pgd(model, x, y, cfg, generator) -> float:
    from errorset.attacks.robustness import robust_accuracy

    p = cfg.sweep.pgd
    return robust_accuracy(
        model, x, y, norm=p.norm, eps=p.eps, steps=p.steps, step_size=2.5 * p.eps / p.steps, generator=generator
    )


def _median_sigma(model, x, y, cfg, generator) -> float:
    from errorset.noise import sigma_at_error_rate

    s = cfg.sweep
    return float(sigma_at_error_rate(model, x, y, s.mu, s.sigma_samples, generator=generator).median())


def _corruption(model, x, y, cfg, generator) -> float:
    raise ConfigError(
        "sweep.objectives: corruption_accuracy needs the corruption benchmark (errorset.data.corruptions), "
        "which this installation does not have; choose among clean_accuracy, noise_accuracy, pgd_accuracy, "
        "median_sigma"
    )


_register(Objective("clean_accuracy", _clean))
_register(Objective("noise_accuracy", _noise))
_register(Objective("pgd_accuracy", _pgd))
_register(Objective("median_sigma", _median_sigma))
_register(Objective("corruption_accuracy", _corruption, per_epoch=False))


def available(name: str) -> None:
    """Raise a clear error now if objective ``name`` cannot be measured in this installation."""
    OBJECTIVES.check(name)
    if name == "corruption_accuracy":
        try:
            import errorset.data.corruptions  # noqa: F401
        except ImportError:
            _corruption(None, None, None, None, None)
