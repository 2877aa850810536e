"""epsilon*_q: how far noisy copies of an image are from their nearest errors (Ford et al. 2019, Section 5).

For a clean image x0, draw ``x ~ N(x0, sigma^2 I)`` and measure ``d(x, E)``, the
L2 distance from x to the nearest misclassified point (0 if x itself is
misclassified). ``epsilon*_q`` is the q-quantile of d(x, E) over the noise
(q = 1/2: the median). The Gaussian isoperimetric inequality bounds it by the
image's error rate at sigma, ``mu``: ``epsilon*_q <= sigma (Phi^-1(q) - Phi^-1(mu))``
(:func:`errorset.theory.isoperimetric_bound`), with equality for half spaces.
A model whose median lies far below the bound has error sets much closer to
noisy points than its error rate in noise requires.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from errorset.attacks.nearest import nearest_error
from errorset.data.batches import check_unit_images, to_float
from errorset.errors import ConfigError
from errorset.measure.common import eval_mode
from errorset.progress import counter


@dataclass
class NoisyDistance:
    """Per clean image: the q-quantile of d(x, E) over noisy x, and the error rate at sigma (CPU tensors)."""

    #: (N,) epsilon*_q
    quantile: torch.Tensor
    #: (N,) fraction of the noisy samples that are misclassified
    error_rate: torch.Tensor
    #: (N, S) distance of every noisy sample to its nearest error found (0 if misclassified)
    distances: torch.Tensor
    #: (N, S) an error was found within eps_max (else the distance is eps_max)
    found: torch.Tensor
    sigma: float
    q: float

    @property
    def median(self) -> torch.Tensor:
        return self.quantile


def median_noisy_distance(
    model: nn.Module,
    x0: torch.Tensor,
    y: torch.Tensor,
    sigma: float,
    n_samples: int = 1000,
    steps: int = 200,
    *,
    q: float = 0.5,
    eps_max: float = 4.0,
    batch_size: int = 512,
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> NoisyDistance:
    """Per clean image, the q-quantile (median) over ``x ~ N(x0, sigma^2 I)`` of the L2 distance to the nearest error.

    The nearest error of every noisy sample is searched with
    :func:`errorset.attacks.nearest_error` (L2, ``steps`` gradient steps, no
    clipping to [0,1]: noisy points live in all of R^n, as in the theory).

    Args:
        model: maps images to logits (evaluated in eval mode).
        x0: (N, C, H, W) clean images (uint8, or float in [0,1]).
        y: (N,) labels; a noisy sample is an error when its prediction differs.
        sigma: noise scale in [0,1] pixel units.
        n_samples: noisy samples per image.
        steps: gradient steps of the nearest-error search per sample.
        q: the quantile (0.5: the median, the paper's epsilon*).
        eps_max: search radius; samples with no error found count as eps_max.
        batch_size: noisy samples searched at once.
        generator: noise source on the model's device, for reproducible results.
    """
    check_unit_images(x0, "x0")

    if not sigma > 0:
        raise ConfigError(f"sigma: expected a number > 0, got {sigma!r}")
    if not isinstance(n_samples, int) or n_samples < 1:
        raise ConfigError(f"n_samples: expected an integer >= 1, got {n_samples!r}")
    if not 0 < q < 1:
        raise ConfigError(f"q: expected a quantile in (0, 1), got {q!r}")
    with eval_mode(model) as device:
        gdev = generator.device if generator is not None else device
        n = x0.shape[0]
        distances = torch.empty(n, n_samples)
        found = torch.empty(n, n_samples, dtype=torch.bool)
        total = n * n_samples
        owner = torch.arange(n).repeat_interleave(n_samples)
        bar = counter(total=total, desc="eps*_q", enabled=progress, unit=" samples")
        flat_d, flat_f = distances.view(-1), found.view(-1)
        for start in range(0, total, batch_size):
            idx = owner[start : start + batch_size]
            clean = to_float(x0[idx].to(device))
            noise = torch.randn(clean.shape, generator=generator, device=gdev).to(device)
            result = nearest_error(
                model, clean + sigma * noise, y[idx].to(device), norm="l2", eps_max=eps_max, steps=steps, clip=False
            )
            flat_d[start : start + len(idx)] = result.distance.cpu()
            flat_f[start : start + len(idx)] = result.found.cpu()
            bar.update(len(idx))
    bar.close()
    return NoisyDistance(
        quantile=torch.quantile(distances, q, dim=1),
        error_rate=(distances == 0).float().mean(1),
        distances=distances,
        found=found,
        sigma=float(sigma),
        q=float(q),
    )
