"""Projected gradient descent (Madry et al. 2018) in L-inf and L2, on whole batches.

Images live in [0,1]; ``eps`` and ``step_size`` are in the same pixel units.
Every iterate stays inside the eps-ball around ``x`` *and* (unless
``clip=False``) inside the image domain [0,1]. The model's mode (train/eval) is left as the caller set it, and
parameter gradients are never touched: gradients are taken with respect to the
input only.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from errorset.attacks.steps import STEPS, default_step_size, per_image_view
from errorset.data.batches import check_unit_images
from errorset.errors import ConfigError

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _per_image(value: float | torch.Tensor, x: torch.Tensor, name: str) -> torch.Tensor:
    """A scalar or per-image (N,) value as an (N, 1, 1, ...) tensor on x's device."""
    t = torch.as_tensor(value, dtype=x.dtype, device=x.device)
    if t.ndim == 0:
        t = t.expand(x.shape[0])
    if t.shape != (x.shape[0],):
        raise ConfigError(
            f"{name}: expected a number or one value per image ({x.shape[0]}), got shape {tuple(t.shape)}"
        )
    if (t < 0).any() or not torch.isfinite(t).all():
        raise ConfigError(f"{name}: expected values >= 0, got {value!r}")
    return per_image_view(t, x)


def project(delta: torch.Tensor, eps: torch.Tensor, norm: str) -> torch.Tensor:
    """Project perturbations ``delta`` onto the ``norm`` ball of (per-image) radius ``eps``."""
    return STEPS.create(norm).project(delta, eps)


def random_in_ball(
    x: torch.Tensor, eps: torch.Tensor, norm: str, generator: torch.Generator | None = None
) -> torch.Tensor:
    """A perturbation drawn uniformly from the ``norm`` ball of radius ``eps`` (per image)."""
    return STEPS.create(norm).random_start(x, eps, generator)


def pgd(
    model: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    norm: str = "linf",
    eps: float | torch.Tensor,
    steps: int,
    step_size: float | torch.Tensor | None = None,
    random_start: bool = True,
    targeted: bool = False,
    target: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    loss_fn: LossFn | None = None,
    clip: bool = True,
    return_broken: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Return adversarial images within ``eps`` of ``x`` that (try to) change the prediction.

    Untargeted PGD ascends the loss of the true labels ``y``; targeted PGD
    (``targeted=True``) descends the loss of ``target``. Each step moves by
    ``step_size`` along the sign of the gradient (L-inf) or the normalised
    gradient (L2), then projects onto the eps-ball and clips to [0,1].

    Args:
        model: maps images in [0,1] to logits.
        x: clean images, float N x ... in [0,1].
        y: true labels (N,).
        norm: a name in :data:`~errorset.attacks.steps.STEPS` (``"linf"``, ``"l2"``).
        eps: radius in [0,1] pixel units; a number or one value per image.
        steps: number of gradient steps (>= 0).
        step_size: per step; default :func:`~errorset.attacks.steps.default_step_size`,
            2.5 * eps / steps (Madry et al.'s rule).
        random_start: start from a uniform random point of the ball.
        generator: for the random start (reproducible attacks).
        loss_fn: ``loss_fn(logits, labels)`` summed over the batch; default cross-entropy.
        clip: keep iterates in the image domain [0,1] (turn off for inputs that
            are not images, e.g. Gaussian-noised points).
        return_broken: also return, per example, whether *any* iterate (the
            random start, every step, the last one) was misclassified
            (prediction != ``y``). Those forward passes are the ones the
            gradient steps make anyway, plus one for the last iterate.

    Returns:
        Adversarial images, detached, with the dtype and device of ``x``. With
        ``return_broken``: ``(images, broken)``, where a broken example's image
        is its first misclassified iterate (the others: the last iterate).
    """
    if clip:  # inputs that are not images (noisy points) may leave [0,1]
        check_unit_images(x, "x", allow_uint8=False)
    attack_step = STEPS.create(norm)
    if not isinstance(steps, int) or steps < 0:
        raise ConfigError(f"steps: expected an integer >= 0, got {steps!r}")
    if targeted and target is None:
        raise ConfigError("target: targeted PGD needs target labels")
    if not x.is_floating_point():
        raise ConfigError(f"x: expected float images in [0,1], got dtype {x.dtype}")
    eps_t = _per_image(eps, x, "eps")
    if step_size is None:
        step_t = default_step_size(norm, eps_t, steps)
    else:
        step_t = _per_image(step_size, x, "step_size")
    labels = target if targeted else y
    loss_fn = loss_fn or (lambda logits, t: F.cross_entropy(logits, t, reduction="sum"))

    x = x.detach()
    delta = attack_step.random_start(x, eps_t, generator) if random_start else torch.zeros_like(x)
    low, high = (0.0, 1.0) if clip else (-math.inf, math.inf)
    x_adv = (x + delta).clamp(low, high)
    broken = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
    first = x_adv.clone() if return_broken else x_adv
    for _ in range(steps):
        x_adv.requires_grad_(True)
        with torch.enable_grad():
            logits = model(x_adv)
            loss = loss_fn(logits, labels)
            (grad,) = torch.autograd.grad(loss, x_adv)
        with torch.no_grad():
            if return_broken:
                new = (logits.argmax(1) != y) & ~broken
                first = torch.where(per_image_view(new, x), x_adv.detach(), first)
                broken |= new
            grad = grad.to(x.dtype)
            if targeted:
                grad = -grad
            x_adv = attack_step.step(x_adv.detach(), grad, step_t)
            x_adv = (x + attack_step.project(x_adv - x, eps_t)).clamp(low, high)
    x_adv = x_adv.detach()
    if not return_broken:
        return x_adv
    with torch.no_grad():
        new = (model(x_adv).argmax(1) != y) & ~broken
        broken |= new
        out = torch.where(per_image_view(broken, x), first, x_adv)
        out = torch.where(per_image_view(new, x), x_adv, out)
    return out, broken
