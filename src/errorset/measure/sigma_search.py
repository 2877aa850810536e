"""sigma(x0, mu): the noise scale at which an image's error rate in noise reaches mu (Ford et al. 2019, Section 4).

The estimator
-------------
For each image, ``n_samples`` standard normal directions ``z_j`` are drawn once
and reused at every sigma tried (common random numbers), so the empirical error
rate ``f(sigma) = #{j : model(x0 + sigma z_j) != y} / n`` is a fixed step
function of sigma. The estimate is the sigma where ``f`` first reaches ``mu``
(at least ``ceil(mu n)`` errors), found to a relative tolerance ``rtol``:

1. *Bracketing by the linear model.* For a linear classifier
   ``Phi^-1(f(sigma)) = -d / sigma`` (Equation 1), so one evaluation at sigma
   predicts ``sigma * Phi^-1(f) / Phi^-1(mu)``. Each step jumps there (at most
   4x up or down; 4x up when no error was seen, 4x down when all were errors)
   until one sigma below and one above the target are known.
2. *Refining* the bracket ``[lo, hi]`` by regula falsi on ``Phi^-1(f)`` against
   ``1/sigma`` -- exact for linear models -- with the Illinois modification,
   which guarantees that both ends move, until ``hi / lo <= 1 + tol``. The
   estimate is ``sqrt(lo * hi)``. ``tol`` is ``rtol``, or a fifth of the
   estimate's statistical error (below) when that is larger: a bracket much
   narrower than the sampling noise buys nothing.

Each step costs ``n_samples`` forward passes per image; a typical image needs
4 to 8 steps, where a grid search at the same resolution needs hundreds (see
``benchmarks/noise_measurements.py``). Images whose clean point is already
misclassified get sigma = 0 (as in the paper) after one forward pass; images
that never reach ``mu`` below ``sigma_max`` get ``sigma_max`` and are flagged.

Error of the estimate: the search error is below ``rtol``; the statistical
error comes from estimating a rate ``mu`` with ``n`` samples. For a linear
model the relative standard error of sigma is
``sqrt(mu (1 - mu) / n) / (phi(t) |t|)`` with ``t = Phi^-1(mu)``: 5% for
mu = 0.01 and n = 1000, 1.6% for n = 10,000 (:func:`relative_std_error`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from scipy import special
from torch import nn

from errorset.data.batches import to_float
from errorset.errors import ConfigError
from errorset.measure.common import eval_mode, image_batches, misclassified


@dataclass
class SigmaSearch:
    """The result of :func:`search_sigma_at_error_rate`, one entry per image (CPU tensors)."""

    sigma: torch.Tensor
    #: empirical error rate at the upper end of the final bracket (>= mu unless capped)
    error_rate: torch.Tensor
    #: the clean image was classified correctly (else sigma = 0)
    clean_correct: torch.Tensor
    #: mu was not reached below sigma_max (sigma = sigma_max)
    capped: torch.Tensor
    #: model evaluations spent on each image
    forward_passes: torch.Tensor
    mu: float
    n_samples: int

    @property
    def relative_std_error(self) -> float:
        return relative_std_error(self.mu, self.n_samples)


def relative_std_error(mu: float, n_samples: int) -> float:
    """Relative standard error of sigma(x0, mu) estimated with ``n_samples`` noise draws (linear model)."""
    t = special.ndtri(mu)
    phi = math.exp(-t * t / 2) / math.sqrt(2 * math.pi)
    return math.sqrt(mu * (1 - mu) / n_samples) / (phi * abs(t))


def sigma_at_error_rate(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, mu: float = 0.01, n_samples: int = 1000, **kwargs
) -> torch.Tensor:
    """Per-image sigma(x0, mu) in [0,1] pixel units; 0 for misclassified clean images.

    See the module docstring for the estimator and its error, and
    :func:`search_sigma_at_error_rate` for the keyword arguments.
    """
    return search_sigma_at_error_rate(model, x, y, mu, n_samples, **kwargs).sigma


@torch.no_grad()
def search_sigma_at_error_rate(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    mu: float = 0.01,
    n_samples: int = 1000,
    *,
    sigma_init: float = 0.1,
    sigma_max: float = 10.0,
    rtol: float = 0.02,
    max_steps: int = 60,
    batch_size: int = 1024,
    clip: bool = False,
    generator: torch.Generator | None = None,
    memory_budget: int = 2**27,
    progress: bool = False,
) -> SigmaSearch:
    """Estimate sigma(x0, mu) for every image, with diagnostics.

    Args:
        model: maps images in [0,1] to logits (evaluated in eval mode).
        x: (N, C, H, W) clean images (uint8, or float in [0,1]).
        y: (N,) labels.
        mu: target error rate in (0, 1/2).
        n_samples: noise directions per image (>= 1/mu).
        sigma_init: first sigma tried.
        sigma_max: give up (and report sigma_max) above this.
        rtol: relative width of the final bracket (at least a fifth of the
            statistical error, see the module docstring).
        batch_size: noisy images per forward pass.
        clip: clip noisy images to [0,1] (off: the paper's noise is unclipped).
        generator: noise source on the model's device, for reproducible results.
        memory_budget: at most this many noise values are held at once
            (images are processed in groups that fit).
    """
    from tqdm.auto import tqdm

    if not 0 < mu < 0.5:
        raise ConfigError(f"mu: expected an error rate in (0, 0.5), got {mu!r}")
    if not isinstance(n_samples, int) or n_samples < math.ceil(1 / mu):
        raise ConfigError(f"n_samples: expected an integer >= 1/mu = {math.ceil(1 / mu)}, got {n_samples!r}")
    if not 0 < sigma_init < sigma_max:
        raise ConfigError(f"sigma_init, sigma_max: expected 0 < sigma_init < sigma_max, got {sigma_init}, {sigma_max}")
    if not 0 < rtol < 1:
        raise ConfigError(f"rtol: expected a number in (0, 1), got {rtol!r}")
    n = x.shape[0]
    out = {
        "sigma": torch.zeros(n),
        "error_rate": torch.zeros(n),
        "clean_correct": torch.zeros(n, dtype=torch.bool),
        "capped": torch.zeros(n, dtype=torch.bool),
        "forward_passes": torch.zeros(n, dtype=torch.long),
    }
    with eval_mode(model) as device:
        gdev = generator.device if generator is not None else device
        for sl in tqdm(
            image_batches(n, x[0].numel(), n_samples, memory_budget),
            desc="sigma(x0, mu)",
            leave=False,
            disable=not progress,
        ):
            xb = to_float(x[sl].to(device))
            yb = y[sl].to(device)
            noise = torch.randn((xb.shape[0], n_samples, *xb.shape[1:]), generator=generator, device=gdev).to(device)
            result = _search_batch(model, xb, yb, noise, mu, sigma_init, sigma_max, rtol, max_steps, batch_size, clip)
            for key, value in result.items():
                out[key][sl] = value.cpu()
    return SigmaSearch(**out, mu=mu, n_samples=n_samples)


def _probit(count: torch.Tensor, n: int) -> torch.Tensor:
    return torch.special.ndtri(count.double().clamp(0.5, n - 0.5) / n)


def _search_batch(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    noise: torch.Tensor,
    mu: float,
    sigma_init: float,
    sigma_max: float,
    rtol: float,
    max_steps: int,
    batch_size: int,
    clip: bool,
) -> dict[str, torch.Tensor]:
    b, n = noise.shape[:2]
    dev = x.device
    need = math.ceil(mu * n - 1e-9)  # errors needed for the empirical rate to reach mu
    target = float(special.ndtri(mu))
    rtol = max(rtol, relative_std_error(mu, n) / 5)
    min_step = max(2 * rtol, relative_std_error(mu, n))
    f64 = {"dtype": torch.float64, "device": dev}

    clean_correct = model(x).argmax(1) == y
    passes = torch.ones(b, dtype=torch.long, device=dev)
    active = clean_correct.clone()
    sigma = torch.full((b,), sigma_init, **f64)
    lo, hi = torch.zeros(b, **f64), torch.full((b,), math.inf, **f64)
    g_lo, g_hi = torch.zeros(b, **f64), torch.zeros(b, **f64)
    count_hi = torch.zeros(b, dtype=torch.long, device=dev)
    last_side = torch.zeros(b, dtype=torch.long, device=dev)  # +1: hi moved last, -1: lo moved last
    capped = torch.zeros(b, dtype=torch.bool, device=dev)

    for _ in range(max_steps):
        if not active.any():
            break
        idx = active.nonzero().squeeze(1)
        counts = torch.zeros(b, dtype=torch.long, device=dev)
        wrong = misclassified(model, x, y, sigma.float(), noise, images=idx, batch_size=batch_size, clip=clip)
        counts[idx] = wrong.sum(1)
        passes[idx] += n
        g = _probit(counts, n) - target
        reached = active & (counts >= need)
        below = active & ~reached
        # Illinois: an end kept twice in a row has its value halved, so the next point moves towards it.
        g_lo = torch.where(reached & (last_side == 1), g_lo / 2, g_lo)
        g_hi = torch.where(below & (last_side == -1), g_hi / 2, g_hi)
        hi, g_hi, count_hi = (
            torch.where(reached, sigma, hi),
            torch.where(reached, g, g_hi),
            torch.where(reached, counts, count_hi),
        )
        lo, g_lo = torch.where(below, sigma, lo), torch.where(below, g, g_lo)
        last_side = torch.where(reached, 1, torch.where(below, -1, last_side))

        bracketed = (lo > 0) & torch.isfinite(hi)
        converged = bracketed & (hi <= lo * (1 + rtol))
        at_floor = torch.isfinite(hi) & (hi < 1e-6)
        capped |= active & ~torch.isfinite(hi) & (sigma >= sigma_max)
        active &= ~(converged | at_floor | capped)

        # next sigma: the linear-model jump from the last point, or regula falsi inside the bracket
        z = _probit(counts, n)
        ratio = torch.where(z < 0, z / target, torch.zeros_like(z)).clamp(0.25, 4.0)
        ratio = torch.where(counts == 0, 4.0, torch.where(counts >= n // 2, 0.25, ratio))
        # without a bracket, always move past the current point by at least the estimate's own noise level
        ratio = torch.where(reached, ratio.clamp(max=1 / (1 + min_step)), ratio.clamp(min=1 + min_step))
        jump = (sigma * ratio).clamp(max=sigma_max)
        u_lo, u_hi = 1 / lo.clamp_min(1e-300), 1 / hi
        u = u_hi + (u_lo - u_hi) * g_hi / (g_hi - g_lo).clamp_min(1e-12)
        falsi = (1 / u).clamp(lo * (1 + rtol / 4), hi / (1 + rtol / 4))
        sigma = torch.where(active, torch.where(bracketed, falsi, jump), sigma)

    sigma = torch.where(torch.isfinite(hi) & (lo > 0), (lo * hi).sqrt(), torch.where(torch.isfinite(hi), hi, sigma))
    sigma = torch.where(capped, torch.full_like(sigma, sigma_max), sigma)
    sigma = torch.where(clean_correct, sigma, torch.zeros_like(sigma))
    rate = torch.where(clean_correct, count_hi.double() / n, torch.ones_like(sigma))
    return {
        "sigma": sigma.float(),
        "error_rate": rate.float(),
        "clean_correct": clean_correct,
        "capped": capped & clean_correct,
        "forward_passes": passes,
    }
