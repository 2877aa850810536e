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
from errorset.registry import Registry
from errorset.train.augment import gaussian_augment

#: transform(model, x, y, generator) -> the batch the loss is computed on
InputTransform = Callable[[nn.Module, torch.Tensor, torch.Tensor, torch.Generator], torch.Tensor]

#: training-mode factories by name; each takes its settings as plain keyword arguments
#: (the config layer, :func:`errorset.jobs.train.training_transform`, maps config keys to them)
MODES: Registry[InputTransform] = Registry("training mode", "train.mode")

#: attack_mode of adversarial training: the model's mode while PGD runs
ATTACK_MODES = ("eval", "train")


@MODES.register("clean")
def clean() -> InputTransform:
    """The batch as it is."""
    return lambda model, x, y, generator: x


@MODES.register("gaussian")
def gaussian(sigma_max: float, clip: bool = False) -> InputTransform:
    """Gaussian augmentation: per-image sigma ~ U(0, ``sigma_max``) ([0,1] pixel units); ``clip`` to [0,1]."""
    if not sigma_max >= 0:
        raise ValueError(f"sigma_max: expected a number >= 0, got {sigma_max!r}")

    def transform(model: nn.Module, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return gaussian_augment(x, sigma_max, generator=generator, clip=clip)[0]

    return transform


@MODES.register("adversarial")
def adversarial(
    norm: str,
    eps: float,
    steps: int,
    step_size: float,
    random_start: bool = True,
    attack_mode: str = "eval",
) -> InputTransform:
    """PGD adversarial training: the batch replaced by PGD examples of radius ``eps`` in ``norm``.

    ``attack_mode`` is the model's mode while the attack runs (``eval`` or ``train``).
    """
    if attack_mode not in ATTACK_MODES:
        raise ValueError(f"attack_mode: unknown mode {attack_mode!r}; valid modes: {', '.join(ATTACK_MODES)}")

    def transform(model: nn.Module, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        was_training = model.training
        if attack_mode == "eval":
            model.eval()
        try:
            return pgd(
                model,
                x,
                y,
                norm=norm,
                eps=eps,
                steps=steps,
                step_size=step_size,
                random_start=random_start,
                generator=generator,
            )
        finally:
            model.train(was_training)

    return transform
