"""Noise corruptions: gaussian_noise, shot_noise, impulse_noise, speckle_noise.

Each pixel and channel gets independent noise, as in the reference; the
result is clipped to [0,1].
"""

from __future__ import annotations

import torch

from errorset.data.corruptions.registry import register
from errorset.data.corruptions.rng import ImageRNG


@register("gaussian_noise", "noise", random=True)
def gaussian_noise(x: torch.Tensor, sigma: float, rng: ImageRNG) -> torch.Tensor:
    """``x + N(0, sigma^2)``, sigma in [0,1] pixel units."""
    return (x + sigma * rng.normal(x.shape[1:], 0)).clamp_(0, 1)


#: below this mean, Poisson counts are drawn exactly (inverse CDF); from it on, by a Cornish-Fisher expansion
POISSON_EXACT_BELOW = 3.0


def _poisson_inverse(lam: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Exact Poisson(lam) counts by inverting the CDF at ``u``; every element walks k = 0, 1, ...

    After a few steps only the few elements still walking are kept (most
    counts of a small mean are 0-3), so the cost is a few passes over the data.
    """
    p = torch.exp(-lam)
    cdf = p.clone()
    k = torch.zeros_like(lam)
    for i in range(1, 4):
        k += u > cdf
        p.mul_(lam).mul_(1.0 / i)
        cdf.add_(p)
    walking = torch.nonzero(u > cdf).squeeze(1)
    lam_w, u_w, p_w, cdf_w = lam[walking], u[walking], p[walking], cdf[walking]
    k_w = k[walking]
    for i in range(4, 128):
        if not bool((u_w > cdf_w).any()):
            break
        k_w += u_w > cdf_w
        p_w.mul_(lam_w).mul_(1.0 / i)
        cdf_w.add_(p_w)
    k[walking] = k_w
    return k


def poisson(lam: torch.Tensor, u: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Poisson(lam) counts from one uniform ``u`` and one standard normal ``z`` per element.

    Means below :data:`POISSON_EXACT_BELOW` are sampled exactly. Larger means
    use the Cornish-Fisher expansion of the Poisson quantile,
    ``round(lam + sqrt(lam) z + (z^2 - 1) / 6 + (z^3 - 7 z) / (72 sqrt(lam)))``:
    its distribution is within 1.3% (total variation) of the Poisson at mean 3
    and within 0.5% from mean 8 on, with the variance right to 1%, at a few
    passes over the data instead of one per count.
    """
    root = lam.sqrt()
    z2 = z * z
    out = lam + root * z + (z2 - 1) / 6 + (z2 * z - 7 * z) / (72 * root.clamp_min(1e-6))
    out = torch.floor(out + 0.5).clamp_(min=0)
    small = lam < POISSON_EXACT_BELOW
    idx = torch.nonzero(small.reshape(-1)).squeeze(1)
    if idx.numel():
        flat = out.reshape(-1)
        flat[idx] = _poisson_inverse(lam.reshape(-1)[idx], u.reshape(-1)[idx])
    return out


@register("shot_noise", "noise", random=True)
def shot_noise(x: torch.Tensor, photons: float, rng: ImageRNG) -> torch.Tensor:
    """``Poisson(x * photons) / photons``: photon noise with ``photons`` counts at full intensity."""
    lam = x * photons
    counts = poisson(lam, rng.uniform(x.shape[1:], 0), rng.normal(x.shape[1:], 1))
    return (counts / photons).clamp_(0, 1)


@register("impulse_noise", "noise", random=True)
def impulse_noise(x: torch.Tensor, amount: float, rng: ImageRNG) -> torch.Tensor:
    """Salt and pepper: each value becomes 1 with probability amount/2 and 0 with probability amount/2."""
    u = rng.uniform(x.shape[1:], 0)
    out = torch.where(u < amount, torch.zeros_like(x), x)
    return torch.where(u < amount / 2, torch.ones_like(x), out)


@register("speckle_noise", "noise", random=True)
def speckle_noise(x: torch.Tensor, sigma: float, rng: ImageRNG) -> torch.Tensor:
    """``x + x * N(0, sigma^2)``: multiplicative noise."""
    return (x + x * (sigma * rng.normal(x.shape[1:], 0))).clamp_(0, 1)
