"""Training modes by name: what is done to a clean batch before the loss.

``clean``
    nothing.
``gaussian``
    :func:`~errorset.train.augment.gaussian_augment` with ``train.sigma_max``.
``adversarial``
    Madry et al.'s PGD adversarial training: replace the batch by PGD
    adversarial examples (``train.adversarial``: L-inf eps 8/255, 7 steps of
    2/255 with a random start by default; L2 as an option). The attack is
    generated with the model in eval mode (``train.adversarial.attack_mode:
    eval``, as MadryLab's robustness library does) and train mode is restored
    for the update, so BatchNorm's running statistics move once per step, on
    the adversarial batch; ``attack_mode: train`` keeps the old behaviour
    (the attack's ``steps`` forward passes update them too).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from errorset.attacks import pgd
from errorset.config import TrainConfig
from errorset.registry import Registry
from errorset.train.augment import gaussian_augment

#: transform(model, x, y, generator) -> the batch the loss is computed on
InputTransform = Callable[[nn.Module, torch.Tensor, torch.Tensor, torch.Generator], torch.Tensor]

MODES: Registry[InputTransform] = Registry("training mode", "train.mode")

#: train.adversarial.attack_mode: the model's mode while PGD runs
ATTACK_MODES = ("eval", "train")


@MODES.register("clean")
def clean(cfg: TrainConfig) -> InputTransform:
    return lambda model, x, y, generator: x


@MODES.register("gaussian")
def gaussian(cfg: TrainConfig) -> InputTransform:
    def transform(model: nn.Module, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return gaussian_augment(x, cfg.sigma_max, generator=generator, clip=cfg.gaussian_clip)[0]

    return transform


@MODES.register("adversarial")
def adversarial(cfg: TrainConfig) -> InputTransform:
    a = cfg.adversarial
    assert a.eps is not None and a.step_size is not None, "resolve the config first"

    def transform(model: nn.Module, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        was_training = model.training
        if a.attack_mode == "eval":
            model.eval()
        try:
            return pgd(
                model,
                x,
                y,
                norm=a.norm,
                eps=a.eps,
                steps=a.steps,
                step_size=a.step_size,
                random_start=a.random_start,
                generator=generator,
            )
        finally:
            model.train(was_training)

    return transform


def describe_mode(cfg: TrainConfig) -> str:
    """A short readable label: ``clean``, ``gaussian-0.4``, ``adversarial-linf-0.0314``."""
    if cfg.mode == "gaussian":
        return f"gaussian-{cfg.sigma_max:g}"
    if cfg.mode == "adversarial":
        a = cfg.adversarial
        return f"adversarial-{a.norm}-{a.eps:.3g}"
    return cfg.mode
