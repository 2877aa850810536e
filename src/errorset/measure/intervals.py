"""Confidence intervals for the measurements: binomial rates, quantiles, medians over images.

All intervals are two-sided at ``level`` (default 0.95) and returned as
``(lo, hi)`` NumPy arrays (or floats for scalar input).

``clopper_pearson``
    Exact binomial interval of an error rate ``k / n`` (scipy.stats.beta).
``quantile_interval``
    Distribution-free interval of the q-quantile of a sample from its order
    statistics: the ranks ``(l, u)`` with ``P[X_(l) <= xi_q <= X_(u)] >= level``
    under Binomial(n, q) -- the same binomial inversion as Clopper-Pearson.
``bootstrap_median``
    Percentile bootstrap of the median over images (seeded).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import stats

from errorset.errors import ConfigError

DEFAULT_LEVEL = 0.95


def _check_level(level: float) -> float:
    if not 0 < level < 1:
        raise ConfigError(f"level: expected a confidence level in (0, 1), got {level!r}")
    return (1 - level) / 2


def clopper_pearson(k: Any, n: Any, level: float = DEFAULT_LEVEL) -> tuple[Any, Any]:
    """Exact (Clopper-Pearson) interval of a binomial rate from ``k`` successes in ``n`` trials.

    ``lo = Beta(alpha/2; k, n - k + 1)`` (0 for k = 0) and
    ``hi = Beta(1 - alpha/2; k + 1, n - k)`` (1 for k = n).
    """
    a = _check_level(level)
    kk, nn = np.asarray(k, dtype=np.float64), np.asarray(n, dtype=np.float64)
    if np.any(nn < 1) or np.any(kk < 0) or np.any(kk > nn):
        raise ConfigError(f"k, n: expected 0 <= k <= n and n >= 1, got k={k!r}, n={n!r}")
    with np.errstate(invalid="ignore", divide="ignore"):
        lo = np.where(kk > 0, stats.beta.ppf(a, np.maximum(kk, 1), nn - kk + 1), 0.0)
        hi = np.where(kk < nn, stats.beta.ppf(1 - a, kk + 1, np.maximum(nn - kk, 1)), 1.0)
    if np.ndim(lo) == 0:
        return float(lo), float(hi)
    return lo, hi


def quantile_ranks(n: int, q: float, level: float = DEFAULT_LEVEL) -> tuple[int, int]:
    """1-based ranks ``(l, u)`` of the order statistics bracketing the q-quantile of ``n`` values.

    ``l`` is the largest rank with ``P[B <= l - 1] <= alpha/2`` and ``u`` the
    smallest with ``P[B >= u] <= alpha/2``, B ~ Binomial(n, q), so that
    ``[X_(l), X_(u)]`` covers the quantile with probability >= level (each
    side at most alpha/2). ``l = 0`` means minus infinity (no lower bound is
    possible with so few values) and ``u = n + 1`` plus infinity.
    """
    a = _check_level(level)
    if not 0 < q < 1:
        raise ConfigError(f"q: expected a quantile in (0, 1), got {q!r}")
    if n < 1:
        return 0, n + 1
    # P[X_(l) > xi_q] = P[B <= l - 1] and P[X_(u) < xi_q] = P[B >= u]
    ranks = np.arange(0, n + 2)
    below = stats.binom.cdf(ranks - 1, n, q)  # P[B <= r - 1]
    above = stats.binom.sf(ranks - 1, n, q)  # P[B >= r]
    l_rank = int(ranks[below <= a].max())
    u_rank = int(ranks[above <= a].min()) if (above <= a).any() else n + 1
    return l_rank, min(u_rank, n + 1)


def quantile_interval(values: np.ndarray, q: float, level: float = DEFAULT_LEVEL, axis: int = -1) -> tuple[Any, Any]:
    """Order-statistic interval of the q-quantile of ``values`` along ``axis`` (infinite where unbounded)."""
    v = np.sort(np.asarray(values, dtype=np.float64), axis=axis)
    n = v.shape[axis]
    l_rank, u_rank = quantile_ranks(n, q, level)
    shape = list(v.shape)
    shape.pop(axis % v.ndim)
    lo = np.take(v, l_rank - 1, axis=axis) if l_rank >= 1 else np.full(shape, -math.inf)
    hi = np.take(v, u_rank - 1, axis=axis) if u_rank <= n else np.full(shape, math.inf)
    if np.ndim(lo) == 0:
        return float(lo), float(hi)
    return lo, hi


def bootstrap_median(
    values: np.ndarray, level: float = DEFAULT_LEVEL, *, resamples: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """The median of ``values`` and its percentile-bootstrap interval: ``(median, lo, hi)``.

    NaN entries are left out; an empty input gives NaNs. ``seed`` makes the
    interval reproducible. Infinite values are kept (a median at infinity
    stays infinite).
    """
    a = _check_level(level)
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    if len(v) == 0:
        return math.nan, math.nan, math.nan
    rng = np.random.default_rng(seed)
    medians = np.median(v[rng.integers(0, len(v), size=(resamples, len(v)))], axis=1)
    lo, hi = np.quantile(medians, [a, 1 - a])
    return float(np.median(v)), float(lo), float(hi)
