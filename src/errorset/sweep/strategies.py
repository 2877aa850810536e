"""Optuna's samplers and pruners by the names ``sweep.sampler`` and ``sweep.pruner`` use."""

from __future__ import annotations

from typing import Any

from errorset.registry import Registry

#: sampler factories: seed -> an Optuna sampler (each worker seeds its own: seed + worker)
SAMPLERS: Registry[Any] = Registry("sampler", "sweep.sampler")
#: pruner factories: () -> an Optuna pruner (Optuna's pruners judge one objective only)
PRUNERS: Registry[Any] = Registry("pruner", "sweep.pruner")


@SAMPLERS.register("tpe")
def tpe(seed: int) -> Any:
    """Optuna's tree-structured Parzen estimator (its default sampler)."""
    import optuna

    return optuna.samplers.TPESampler(seed=seed)


@SAMPLERS.register("random")
def random(seed: int) -> Any:
    """Independent uniform draws from the space."""
    import optuna

    return optuna.samplers.RandomSampler(seed=seed)


@PRUNERS.register("median")
def median() -> Any:
    """Stop a trial whose per-epoch objective falls below the median of earlier trials at the same epoch,
    once two trials have finished and after its first epoch."""
    import optuna

    return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1)


@PRUNERS.register("none")
def none() -> Any:
    """Never prune."""
    import optuna

    return optuna.pruners.NopPruner()
