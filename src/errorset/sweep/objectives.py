"""Sweep objectives by name, each measured on the held-out images of a trained trial model.

All are maximised:

``clean_accuracy``       accuracy on the held-out images
``noise_accuracy``       accuracy under Gaussian noise of ``sweep.noise_sigma`` (one draw)
``pgd_accuracy``         accuracy under PGD (``sweep.pgd``: norm, eps, steps)
``median_sigma``         median sigma(x0, ``sweep.mu``) ([0,1] pixel units; 0 for misclassified images)
``corruption_accuracy``  the paper's "All" under the common corruptions ``sweep.corruptions`` (names or
                         families, severities, table, storage format): the mean over the benchmark
                         corruptions among them other than gaussian_noise (Ford et al., Section 6)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from errorset.config import Config
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
    from errorset.measure.clean_accuracy import accuracy

    return accuracy(model, x, y)


def _noise(model, x, y, cfg, generator) -> float:
    from errorset.measure import accuracy_in_noise

    return float(accuracy_in_noise(model, x, y, [cfg.sweep.noise_sigma], 1, generator=generator).mean[0])


def _pgd(model, x, y, cfg, generator) -> float:
    from errorset.attacks import default_step_size
    from errorset.measure.robustness import robust_accuracy

    p = cfg.sweep.pgd
    return robust_accuracy(
        model,
        x,
        y,
        norm=p.norm,
        eps=p.eps,
        steps=p.steps,
        step_size=default_step_size(p.norm, p.eps, p.steps),
        generator=generator,
    )


def _median_sigma(model, x, y, cfg, generator) -> float:
    from errorset.measure import sigma_at_error_rate

    s = cfg.sweep
    return float(sigma_at_error_rate(model, x, y, s.mu, s.sigma_samples, generator=generator).median())


def corruption_names(cfg: Config) -> list[str]:
    """The corruptions of ``sweep.corruptions.names`` (families expanded; null = the 15 benchmark ones)."""
    from errorset.corruptions import BENCHMARK_CORRUPTIONS, expand_corruptions

    return expand_corruptions(cfg.sweep.corruptions.names, "sweep.corruptions.names", default=BENCHMARK_CORRUPTIONS)


def _corruption(model, x, y, cfg, generator) -> float:
    from errorset.corruptions import resolve_table
    from errorset.measure.corruption_accuracy import evaluate_corruptions, summarize

    c = cfg.sweep.corruptions
    # corrupted with the run's seed, not the trial's generator: every trial sees the same corrupted images
    results = evaluate_corruptions(
        model,
        x,
        y,
        corruptions=corruption_names(cfg),
        severities=c.severities,
        formats=[c.format],
        table=resolve_table(c.table, max(x.shape[2:])),
        seed=cfg.seed,
        batch_size=cfg.corruptions.batch_size,
        jpeg_quality=cfg.corruptions.jpeg_quality,
    )
    return summarize(results.accuracy[c.format]).all


_register(Objective("clean_accuracy", _clean))
_register(Objective("noise_accuracy", _noise))
_register(Objective("pgd_accuracy", _pgd))
_register(Objective("median_sigma", _median_sigma))
_register(Objective("corruption_accuracy", _corruption, per_epoch=False))
