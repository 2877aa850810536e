"""Attack steps per norm, in the style of MadryLab's ``robustness`` (``attack_steps.py``).

Each step class knows its norm: how to measure a perturbation, project it onto
the eps-ball, draw a uniform random start inside it, and take one ascent step
along a gradient (the gradient's dual direction). PGD and the nearest-error
search create one from :data:`STEPS` by the norm's name, so no caller branches
on the norm.
"""

from __future__ import annotations

import torch

from errorset.registry import Registry

#: the ratio in Madry et al.'s step-size rule: ``step_size = 2.5 * eps / steps``
STEP_RULE = 2.5


def per_image_view(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A per-image vector ``t`` (N,) shaped to broadcast over a batch ``like`` (N, C, H, W)."""
    return t.view(-1, *([1] * (like.ndim - 1)))


def default_step_size(norm: str, eps, steps: int):
    """The default PGD step for ``steps`` steps in the ``norm`` ball of radius ``eps``: ``2.5 * eps / steps``.

    Madry et al.'s rule, the same for every norm; ``eps`` may be a number or a tensor.
    """
    STEPS.check(norm)
    return STEP_RULE * eps / max(steps, 1)


class AttackStep:
    """One norm's geometry for PGD: ``norm``, ``size``, ``project``, ``random_start``, ``step``.

    ``eps`` and ``step_size`` are per-image tensors shaped (N, 1, 1, ...) to broadcast over the batch.
    """

    norm: str
    #: (eps, step_size) for adversarial training, in [0,1] pixel units (Madry et al.'s CIFAR-10 settings)
    train_defaults: tuple[float, float]

    def size(self, delta: torch.Tensor) -> torch.Tensor:
        """The norm of each image's perturbation, (N,)."""
        raise NotImplementedError

    def project(self, delta: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """``delta`` projected onto the ball of radius ``eps``."""
        raise NotImplementedError

    def random_start(
        self, x: torch.Tensor, eps: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """A perturbation drawn uniformly from the ball of radius ``eps`` (per image)."""
        raise NotImplementedError

    def direction(self, grad: torch.Tensor) -> torch.Tensor:
        """The unit-norm direction that most increases a loss with gradient ``grad`` (its dual direction)."""
        raise NotImplementedError

    def step(self, x: torch.Tensor, grad: torch.Tensor, step_size: torch.Tensor) -> torch.Tensor:
        """``x`` moved by ``step_size`` along the ascent direction of ``grad``."""
        return x + step_size * self.direction(grad)


STEPS: Registry[AttackStep] = Registry("norm", "norm")


def _device(x: torch.Tensor, generator: torch.Generator | None) -> torch.device:
    return generator.device if generator is not None else x.device


@STEPS.register("linf")
class LinfStep(AttackStep):
    """L-inf: clamp each coordinate to [-eps, eps]; steps along the gradient's sign."""

    norm = "linf"
    train_defaults = (8 / 255, 2 / 255)

    def size(self, delta: torch.Tensor) -> torch.Tensor:
        return delta.flatten(1).abs().amax(1)

    def project(self, delta: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        return torch.maximum(torch.minimum(delta, eps), -eps)

    def random_start(self, x, eps, generator=None):
        u = torch.rand(x.shape, generator=generator, device=_device(x, generator), dtype=x.dtype).to(x.device)
        return (2 * u - 1) * eps

    def direction(self, grad: torch.Tensor) -> torch.Tensor:
        return grad.sign()


@STEPS.register("l2")
class L2Step(AttackStep):
    """L2: rescale perturbations longer than eps; steps along the normalised gradient."""

    norm = "l2"
    train_defaults = (0.5, 0.1)

    def size(self, delta: torch.Tensor) -> torch.Tensor:
        return delta.flatten(1).norm(dim=1)

    def _flat_norm(self, t: torch.Tensor) -> torch.Tensor:
        return per_image_view(self.size(t), t)

    def project(self, delta: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        scale = torch.clamp(eps / self._flat_norm(delta).clamp_min(1e-12), max=1.0)
        return delta * scale

    def random_start(self, x, eps, generator=None):
        dev = _device(x, generator)
        d = x[0].numel()
        direction = torch.randn(x.shape, generator=generator, device=dev, dtype=x.dtype).to(x.device)
        direction = direction / self._flat_norm(direction).clamp_min(1e-12)
        radius = torch.rand(x.shape[0], generator=generator, device=dev, dtype=x.dtype).to(x.device) ** (1.0 / d)
        return direction * per_image_view(radius, x) * eps

    def direction(self, grad: torch.Tensor) -> torch.Tensor:
        return grad / self._flat_norm(grad).clamp_min(1e-12)
