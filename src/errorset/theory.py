"""Closed forms from Ford et al. (2019): linear models and the Gaussian isoperimetric inequality.

All distances are in the same units as sigma (L2, [0,1] pixel units for images).
Every function broadcasts and accepts Python numbers, NumPy arrays or torch
tensors; the result has the type of the inputs (a float for plain numbers).

Equation 1 (linear model)
    A point at distance ``d`` from the decision boundary of a linear classifier
    is misclassified under ``x + N(0, sigma^2 I)`` with probability
    ``mu = Phi(-d / sigma)``; so ``d = -sigma * Phi^-1(mu)``.

Gaussian isoperimetric inequality (Section 5)
    For *any* error set ``E`` with ``P[x in E] = mu`` under ``x ~ N(x0, sigma^2 I)``,
    the q-quantile ``eps*_q`` of the distance ``d(x, E)`` satisfies
    ``eps*_q <= sigma * (Phi^-1(q) - Phi^-1(mu))``, with equality for half spaces.
    For the median (q = 1/2): ``eps* <= -sigma * Phi^-1(mu)``, and 0 once mu >= 1/2.
"""

from __future__ import annotations

from typing import Any, TypeVar

import numpy as np
import torch
from scipy import special

from errorset.errors import ConfigError

ArrayLike = TypeVar("ArrayLike", float, np.ndarray, torch.Tensor)


def _is_torch(*values: Any) -> bool:
    return any(isinstance(v, torch.Tensor) for v in values)


def _ndtri(p: Any) -> Any:
    return torch.special.ndtri(p) if isinstance(p, torch.Tensor) else special.ndtri(p)


def _ndtr(z: Any) -> Any:
    return torch.special.ndtr(z) if isinstance(z, torch.Tensor) else special.ndtr(z)


def _prepare(*values: Any) -> tuple[Any, ...]:
    """Promote to one array type (torch if any input is a tensor, else float64 NumPy)."""
    if _is_torch(*values):
        ref = next(v for v in values if isinstance(v, torch.Tensor))
        dtype = ref.dtype if ref.is_floating_point() else torch.float64
        return tuple(torch.as_tensor(v, dtype=dtype, device=ref.device) for v in values)
    return tuple(np.asarray(v, dtype=np.float64) for v in values)


def _out(result: Any, *inputs: Any) -> Any:
    if not _is_torch(*inputs) and all(np.ndim(v) == 0 for v in inputs):
        return float(result)
    return result


def _check(name: str, ok: Any, expected: str, value: Any) -> None:
    if not bool(ok.all() if hasattr(ok, "all") else ok):
        raise ConfigError(f"{name}: expected {expected}, got {value!r}")


def linear_distance(sigma: ArrayLike, mu: ArrayLike) -> ArrayLike:
    """Equation 1: the distance ``-sigma * Phi^-1(mu)`` to the error set of a linear model.

    Args:
        sigma: Gaussian noise scale (> 0).
        mu: error rate under that noise, in [0, 1]. mu < 1/2 gives a positive
            distance (a correctly classified point), mu = 1/2 zero, mu > 1/2 a
            negative (signed) distance; mu = 0 gives infinity.
    """
    s, m = _prepare(sigma, mu)
    _check("sigma", s > 0, "values > 0", sigma)
    _check("mu", (m >= 0) & (m <= 1), "error rates in [0, 1]", mu)
    return _out(-s * _ndtri(m), sigma, mu)


def error_rate_at_distance(d: ArrayLike, sigma: ArrayLike) -> ArrayLike:
    """The inverse of :func:`linear_distance`: ``mu = Phi(-d / sigma)``."""
    dd, s = _prepare(d, sigma)
    _check("sigma", s > 0, "values > 0", sigma)
    return _out(_ndtr(-dd / s), d, sigma)


def isoperimetric_bound(sigma: ArrayLike, mu: ArrayLike, q: float = 0.5) -> ArrayLike:
    """Upper bound on the q-quantile of the distance from ``x ~ N(x0, sigma^2 I)`` to the error set.

    ``max(0, sigma * (Phi^-1(q) - Phi^-1(mu)))``; for the median (q = 1/2) this is
    ``-sigma * Phi^-1(mu)`` for mu < 1/2 and 0 for mu >= 1/2. Equality holds
    when the error set is a half space.
    """
    s, m = _prepare(sigma, mu)
    _check("sigma", s > 0, "values > 0", sigma)
    _check("mu", (m >= 0) & (m <= 1), "error rates in [0, 1]", mu)
    if not 0 < q < 1:
        raise ConfigError(f"q: expected a quantile in (0, 1), got {q!r}")
    bound = s * (float(special.ndtri(q)) - _ndtri(m))
    bound = bound.clamp_min(0.0) if isinstance(bound, torch.Tensor) else np.maximum(bound, 0.0)
    return _out(bound, sigma, mu)
