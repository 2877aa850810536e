"""The paper's figures of per-image measurements, one series per model.

Every function takes ``{model label: per-image columns}`` (the columns of an
``analysis.csv`` written by ``errorset analyze``, as NumPy arrays) and returns a
matplotlib Figure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from errorset.plots.style import new_figure
from errorset.theory import error_rate_at_distance, isoperimetric_bound, linear_distance

if TYPE_CHECKING:
    from matplotlib.figure import Figure

Columns = Mapping[str, np.ndarray]
Summaries = Mapping[str, Mapping]


def _record(summaries: Summaries | None, label: str, key: str) -> Mapping | None:
    """The median record ``key`` of ``label``'s analysis.json summary, if it has one with a finite median."""
    rec = (summaries or {}).get(label, {}).get(key)
    if isinstance(rec, Mapping) and rec.get("median") is not None and np.isfinite(rec["median"]):
        return rec
    return None


def _bar(rec: Mapping) -> tuple[list[float], list[float]]:
    """Error bar lengths below and above a record's median (to the plot's edge for an open end)."""
    m = float(rec["median"])
    lo = m if rec.get("lo") is None else float(rec["lo"])
    hi = m if rec.get("hi") is None or not np.isfinite(rec["hi"]) else float(rec["hi"])
    return [max(m - lo, 0.0)], [max(hi - m, 0.0)]


def _median_text(rec: Mapping | None) -> str:
    from errorset.measure.analysis import format_median

    return format_median(dict(rec)) if rec else "n/a"


def _axis_end(samples: list[np.ndarray], bar_tops: list[np.ndarray]) -> float:
    """1.1 x the largest of each model's 90th percentile and its groups' upper bars (1 when there are none)."""
    ends = (max(float(np.percentile(v, 90)), float(t.max())) for v, t in zip(samples, bar_tops, strict=True))
    return 1.1 * max(ends, default=1.0) or 1.0


def _grouped(x: np.ndarray, y: np.ndarray, size: int) -> tuple[np.ndarray, ...]:
    """Sort by x, cut into consecutive groups of ``size``; medians and 25/75 percentiles of both."""
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    groups = [slice(i, i + size) for i in range(0, len(x) - size + 1, size)] or [slice(0, len(x))]
    stats = np.array([[np.percentile(v[g], p) for v in (x, y) for p in (50, 25, 75)] for g in groups if len(x[g])])
    return tuple(stats.T) if len(stats) else tuple(np.empty(0) for _ in range(6))


def figure2(
    series: Mapping[str, Columns], *, mu: float, group_size: int = 50, summaries: Summaries | None = None
) -> Figure:
    """sigma(x0, mu) against d(x0, E) (Ford et al. 2019, Figure 2).

    Points are groups of ``group_size`` correctly classified images sorted by
    their distance to the nearest error: the median of each group, with bars
    from the 25th to the 75th percentile in both directions. The dashed line is
    what a linear model would give, ``d = -sigma Phi^-1(mu)``; points below it
    have nearer errors than their error rate in noise implies for a linear model.
    A large cross per model (with ``summaries``, the analysis.json of each) marks
    the median of each quantity over all images with its bootstrap interval.
    The histograms show both quantities over all images, misclassified ones at
    0 (the paper's convention: a misclassified image has sigma = 0); the axes end a little
    past the 90th percentile of each and the groups' bars (larger values are
    counted in the histograms' last bins).
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8.5, 6.5), layout="constrained")
    grid = fig.add_gridspec(2, 2, width_ratios=(3, 1), height_ratios=(1, 3))
    ax = fig.add_subplot(grid[1, 0])
    top = fig.add_subplot(grid[0, 0], sharex=ax)
    right = fig.add_subplot(grid[1, 1], sharey=ax)
    kept, every = {}, {}
    for label, cols in series.items():
        ok = cols["clean_correct"].astype(bool)
        every[label] = (cols["nearest_distance"], cols["sigma_at_mu"])
        if ok.any():
            kept[label] = (cols["nearest_distance"][ok], cols["sigma_at_mu"][ok])
    # a few images far from any error (sigma searches that hit their cap, distances at eps_max) would
    # stretch the axes over empty space: the axes end past the 90th percentile and the groups' bars,
    # larger values are counted in the histograms' last bins
    groups = {label: _grouped(d, s, group_size) for label, (d, s) in kept.items()}
    dmax = _axis_end([d for d, _ in kept.values()], [g[2] for g in groups.values()])
    smax = _axis_end([s for _, s in kept.values()], [g[5] for g in groups.values()])
    for label, (d_all, s_all) in every.items():
        color = None
        if label in kept:
            d = kept[label][0]
            dm, d25, d75, sm, s25, s75 = groups[label]
            bars = ax.errorbar(
                dm,
                sm,
                xerr=[dm - d25, d75 - dm],
                yerr=[sm - s25, s75 - sm],
                fmt="o",
                ms=4,
                capsize=2,
                label=f"{label} ({len(d)} correct of {len(d_all)} images)",
            )
            color = bars[0].get_color()
        rd, rs = _record(summaries, label, "nearest_distance"), _record(summaries, label, "sigma_at_mu")
        if rd and rs:
            ax.errorbar(
                [min(rd["median"], dmax)],
                [min(rs["median"], smax)],
                xerr=_bar(rd),
                yerr=_bar(rs),
                fmt="P",
                ms=10,
                capsize=4,
                lw=2,
                color=color,
                label=f"{label} median: d {_median_text(rd)}, sigma {_median_text(rs)}",
            )
        top.hist(np.minimum(d_all, dmax), bins=30, range=(0, dmax), alpha=0.5, color=color)
        right.hist(np.minimum(s_all, smax), bins=30, range=(0, smax), alpha=0.5, orientation="horizontal", color=color)
    sigmas = np.linspace(smax / 100, smax, 50)
    ax.plot(
        linear_distance(sigmas, mu),
        sigmas,
        "k--",
        lw=1,
        label=f"linear model: d = {linear_distance(1.0, mu):.2f} sigma",
    )
    ax.set_xlim(0, dmax)
    ax.set_ylim(0, smax)
    ax.set_xlabel("d(x0, E): L2 distance to the nearest error found")
    ax.set_ylabel(f"sigma(x0, {mu:g}): noise scale of a {mu:.0%} error rate")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    top.set_ylabel("images")
    right.set_xlabel("images")
    top.tick_params(labelbottom=False)
    right.tick_params(labelleft=False)
    fig.suptitle("Distance to the nearest error vs. error rate in noise (Figure 2)")
    return fig


def figure4(
    series: Mapping[str, Columns], *, sigma: float, q: float, mu: float, summaries: Summaries | None = None
) -> Figure:
    """epsilon*_q against the error rate at sigma and against sigma(x0, mu) (Ford et al. 2019, Figure 4).

    Left: each clean image's error rate under N(0, sigma^2 I) (x, log scale)
    and the q-quantile of its noisy copies' distance to the nearest error (y),
    with their intervals (Clopper-Pearson and order-statistic; the ``_lo`` /
    ``_hi`` columns) as error bars; the curve is the Gaussian isoperimetric
    bound ``sigma (Phi^-1(q) - Phi^-1(mu))`` (:func:`errorset.theory.isoperimetric_bound`),
    met with equality by half spaces. Right: the same epsilon*_q against
    sigma(x0, mu) with both intervals, and the line a half-space error set would
    give. The legend carries each model's median eps*_q / bound with its
    bootstrap interval (``summaries``: the analysis.json of each).
    """
    fig, (left, right) = new_figure(2, width=5.0, height=4.0)
    rates = np.logspace(-4, np.log10(0.5), 200)
    left.plot(rates, isoperimetric_bound(sigma, rates, q=q), "k--", lw=1, label="isoperimetric bound")
    largest = 0.0
    for label, cols in series.items():
        have = np.isfinite(cols["eps_star"])
        if not have.any():
            continue
        eps = cols["eps_star"][have]
        rate = np.clip(cols["noisy_error_rate"][have], 1e-4, None)
        ratio = _record(summaries, label, "eps_star_over_bound")
        name = f"{label}; median eps*/bound {_median_text(ratio)}" if ratio else label

        def bars(key: str, centre: np.ndarray, floor: float = 0.0, cols=cols, have=have):
            if f"{key}_lo" not in cols:
                return None
            lo = np.clip(cols[f"{key}_lo"][have], floor, None)
            hi = cols[f"{key}_hi"][have]
            top = np.nanmax(np.where(np.isfinite(hi), hi, centre)) if len(hi) else 0.0
            hi = np.where(np.isfinite(hi), hi, max(top, float(np.max(centre))) * 1.2)
            return [np.maximum(centre - lo, 0), np.maximum(hi - centre, 0)]

        pts = left.errorbar(
            rate,
            eps,
            xerr=bars("noisy_error_rate", rate, 1e-4),
            yerr=bars("eps_star", eps),
            fmt="o",
            ms=4,
            alpha=0.7,
            capsize=2,
            label=name,
        )
        s_mu = cols["sigma_at_mu"][have]
        right.errorbar(
            s_mu,
            eps,
            xerr=bars("sigma_at_mu", s_mu),
            yerr=bars("eps_star", eps),
            fmt="o",
            ms=4,
            alpha=0.7,
            capsize=2,
            color=pts[0].get_color(),
            label=label,
        )
        largest = max(largest, float(np.nanmax(s_mu)))
    left.set_xscale("log")
    left.set_xlabel(f"error rate in noise at sigma = {sigma:g} (floored at 1e-4)")
    left.set_ylabel(f"epsilon*_{q:g}: distance of noisy points to the error set")
    grid = np.linspace((largest or 1.0) / 100, largest or 1.0, 50)
    # a half space at the linear-model distance d of sigma(x0, mu), seen from noise at sigma
    half_space = isoperimetric_bound(sigma, error_rate_at_distance(linear_distance(grid, mu), sigma), q=q)
    right.plot(grid, half_space, "k--", lw=1, label="half-space error set")
    right.set_xlabel(f"sigma(x0, {mu:g})")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"Noisy points and their nearest errors, sigma = {sigma:g} (Figure 4)")
    return fig


def figure20(series: Mapping[str, Columns], sigmas: Sequence[float]) -> Figure:
    """Empirical CDF over test images of the per-image error rate in Gaussian noise (Figure 20).

    One panel per sigma, one curve per model: a point (r, p) says that a
    fraction p of the images have an error rate of at most r. Curves further
    up and left mean fewer errors in noise.
    """
    fig, axes = new_figure(len(sigmas), width=3.8, height=3.4)
    for ax, sigma in zip(axes, sigmas, strict=True):
        for label, cols in series.items():
            key = f"error_rate_sigma_{sigma:g}"
            if key not in cols:
                continue
            r = np.sort(cols[key])
            ax.step(r, np.arange(1, len(r) + 1) / len(r), where="post", label=label)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_title(f"sigma = {sigma:g}")
        ax.set_xlabel("error rate in noise")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("fraction of images")
    axes[0].legend(fontsize=7)
    fig.suptitle("Per-image error rates in Gaussian noise (Figure 20)")
    return fig


def figure10(sigmas: Sequence[float], dimension: int) -> Figure:
    """The optimal curves of Appendix F (Figure 10, top): how close errors must be, given an error rate.

    Left: for each sigma, the distance ``-sigma Phi^-1(mu)`` from a point to a
    half-space error set with error rate mu under N(0, sigma^2 I): by the
    isoperimetric inequality no error set with that error rate can be farther
    from the median noisy point. Right: the same distance relative to the
    typical length ``sigma sqrt(n)`` of the noise in ``n = dimension``
    dimensions -- errors at a few percent of the noise's size follow from
    small error rates in noise.
    """
    fig, (left, right) = new_figure(2, width=4.8, height=3.8)
    rates = np.logspace(-6, np.log10(0.5), 300)
    for sigma in sigmas:
        left.plot(rates, linear_distance(sigma, rates), label=f"sigma = {sigma:g}")
    right.plot(rates, linear_distance(1.0, rates) / np.sqrt(dimension), label=f"n = {dimension}")
    for ax in (left, right):
        ax.set_xscale("log")
        ax.set_xlabel("error rate in noise mu")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    left.set_ylabel("largest possible distance to the error set")
    right.set_ylabel("distance / (sigma sqrt(n))")
    fig.suptitle("Optimal error-rate-to-distance curves (Appendix F, Figure 10)")
    return fig


def lp_robustness(results: Mapping[str, Mapping[str, Sequence[Mapping[str, float]]]]) -> Figure:
    """Accuracy under PGD against eps, one panel per norm, one line per model (Figure 6, bottom).

    Args:
        results: model label -> norm -> rows of ``{"eps", "accuracy"}``.
    """
    norms = sorted({norm for per_model in results.values() for norm in per_model})
    fig, axes = new_figure(max(1, len(norms)), width=4.2, height=3.4)
    for ax, norm in zip(axes, norms, strict=False):
        for label, per_model in results.items():
            rows = per_model.get(norm, [])
            ax.plot([r["eps"] for r in rows], [r["accuracy"] for r in rows], marker="o", ms=3, label=label)
        ax.set_title(f"PGD, {'L-inf' if norm == 'linf' else 'L2'}")
        ax.set_xlabel("eps ([0,1] pixel units)")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("accuracy")
    axes[0].legend(fontsize=7)
    fig.suptitle("Robustness to worst-case Lp perturbations")
    return fig
