"""The per-image measurements of ``errorset analyze`` and their per-model summaries, with intervals.

:func:`measure` gives the columns of the per-image table ``analysis.csv``
(Ford et al. 2019, Sections 4-5); :func:`summarize` the medians of
``analysis.json``; :func:`flat_metrics` the same as MLflow metrics.

Per image (``_lo`` / ``_hi`` columns: two-sided intervals at ``analyze.level``)
    ``sigma_at_mu``: sigma(x0, mu) from :func:`~errorset.measure.search_sigma_at_error_rate`,
    its interval the crossings at the Clopper-Pearson ranks of its
    common-random-numbers step function. Misclassified clean images: 0 (the
    paper's convention). Images that do not reach mu below :data:`SIGMA_MAX`:
    ``sigma_capped``, sigma = SIGMA_MAX.
    ``error_rate_sigma_<s>``: the error rate in noise at s, Clopper-Pearson interval.
    ``nearest_distance``: d(x0, E) (0 for misclassified images; eps_max, with
    ``nearest_found`` 0, when no error was found within ``analyze.nearest.eps_max``).
    ``linear_distance``: what a linear model with the same sigma(x0, mu) would
    have, ``-sigma Phi^-1(mu)`` (:func:`errorset.theory.linear_distance`).
    ``eps_star``: eps*_q on the first ``analyze.noisy.images`` *correctly
    classified* images (NaN for the others), with its order-statistic interval;
    ``noisy_error_rate`` the fraction of those same noisy samples that are
    misclassified (Clopper-Pearson interval), and ``isoperimetric_bound`` the
    Gaussian isoperimetric bound at that rate, whose interval is the bound at the
    ends of the rate's interval (the bound decreases with the rate).

Per model (:func:`median_summary` records)
    Medians with percentile-bootstrap intervals (seeded) over the images a
    quantity is defined for. Censored values -- a distance with no error found
    (counted at eps_max), a capped sigma (counted at its cap) -- stay in, at
    their cap; their fraction is reported, and where it exceeds 1/2 the median
    is only a lower bound (``bound: "lower"``, printed ``>= cap``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from errorset.measure.intervals import bootstrap_median, clopper_pearson, quantile_interval
from errorset.theory import isoperimetric_bound, linear_distance

if TYPE_CHECKING:
    from errorset.config import Config

#: sigma(x0, mu) is searched below this ([0,1] pixel units); images that do not reach mu get it, capped
SIGMA_MAX = 10.0
#: bootstrap resamples of every per-model median
RESAMPLES = 2000


def error_rate_column(sigma: float) -> str:
    return f"error_rate_sigma_{sigma:g}"


def linear_distance_of(sigma: np.ndarray, mu: float) -> np.ndarray:
    """:func:`errorset.theory.linear_distance` per image, 0 where sigma is 0 (misclassified images)."""
    sigma = np.asarray(sigma, dtype=np.float64)
    positive = sigma > 0
    return np.where(positive, linear_distance(np.where(positive, sigma, 1.0), mu), 0.0)


def bound_interval(sigma: float, rate_lo: np.ndarray, rate_hi: np.ndarray, q: float) -> tuple[np.ndarray, np.ndarray]:
    """The isoperimetric bound's interval from an interval of the error rate (the bound decreases with the rate)."""
    return isoperimetric_bound(sigma, rate_hi, q=q), isoperimetric_bound(sigma, rate_lo, q=q)


def measure(
    cfg: Config,
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    device: torch.device,
    *,
    progress: bool = False,
) -> dict[str, np.ndarray]:
    """All per-image measurements of ``analyze`` for images ``x`` (uint8 or float), as table columns."""
    from errorset.attacks import nearest_error
    from errorset.data.batches import to_float
    from errorset.measure import error_rate_in_noise, search_sigma_at_error_rate
    from errorset.measure.clean_accuracy import predict
    from errorset.measure.common import eval_mode
    from errorset.runtime import make_generator

    a = cfg.analyze
    assert a.samples and a.nearest.steps and a.noisy.samples and a.noisy.steps, "resolve the config first"
    gen = make_generator(cfg.seed, device)
    pred = predict(model, x).cpu()
    search = search_sigma_at_error_rate(
        model,
        x,
        y,
        a.mu,
        a.samples,
        sigma_max=SIGMA_MAX,
        rtol=a.rtol,
        level=a.level,
        batch_size=a.batch_size,
        generator=gen,
        progress=progress,
    )
    correct = search.clean_correct.numpy()
    sigma = search.sigma.double().numpy()
    columns: dict[str, np.ndarray] = {
        "label": y.numpy(),
        "prediction": pred.numpy(),
        "clean_correct": correct,
        "sigma_at_mu": sigma,
        "sigma_at_mu_lo": search.sigma_lo.double().numpy(),
        "sigma_at_mu_hi": search.sigma_hi.double().numpy(),
        "sigma_capped": search.capped.numpy(),
        "sigma_forward_passes": search.forward_passes.numpy(),
        "linear_distance": linear_distance_of(sigma, a.mu),
    }
    for s in a.error_rate_sigmas:
        rates = error_rate_in_noise(
            model, x, y, s, a.samples, batch_size=a.batch_size, generator=gen, progress=progress
        ).double()
        lo, hi = clopper_pearson(np.rint(rates.numpy() * a.samples), a.samples, a.level)
        key = error_rate_column(s)
        columns[key], columns[f"{key}_lo"], columns[f"{key}_hi"] = rates.numpy(), lo, hi
    with eval_mode(model):  # the attack itself leaves the model's mode and precision alone
        near = nearest_error(
            model,
            to_float(x).to(device),
            y.to(device),
            norm=a.nearest.norm,
            eps_max=a.nearest.eps_max,
            steps=a.nearest.steps,
            batch_size=a.batch_size,
            generator=gen,
        )
    columns["nearest_distance"] = near.distance.double().cpu().numpy()
    columns["nearest_found"] = near.found.cpu().numpy()
    columns.update(_noisy_columns(cfg, model, x, y, correct, gen, progress))
    return columns


def _noisy_columns(cfg, model, x, y, correct, gen, progress) -> dict[str, np.ndarray]:
    """eps*_q, its noisy error rate and bound, with intervals, on the first ``noisy.images`` correct images."""
    from errorset.measure import median_noisy_distance

    a, nz = cfg.analyze, cfg.analyze.noisy
    names = ("eps_star", "noisy_error_rate", "isoperimetric_bound")
    out = {f"{n}{e}": np.full(len(x), math.nan) for n in names for e in ("", "_lo", "_hi")}
    idx = np.flatnonzero(correct)[: nz.images or 0]
    if len(idx) == 0:
        return out
    t = torch.as_tensor(idx)
    noisy = median_noisy_distance(
        model,
        x[t],
        y[t],
        nz.sigma,
        nz.samples,
        nz.steps,
        q=nz.q,
        eps_max=nz.eps_max,
        batch_size=a.batch_size,
        generator=gen,
        progress=progress,
    )
    # the error rate and the distances come from the same noisy samples (a sample in E has distance 0)
    distances = noisy.distances.double().numpy()
    errors = (distances == 0).sum(1)
    rate = errors / nz.samples
    rate_lo, rate_hi = clopper_pearson(errors, nz.samples, a.level)
    eps_lo, eps_hi = quantile_interval(distances, nz.q, a.level, axis=1)
    bound_lo, bound_hi = bound_interval(nz.sigma, rate_lo, rate_hi, nz.q)
    for name, values in (
        ("eps_star", noisy.quantile.double().numpy()),
        ("eps_star_lo", eps_lo),
        ("eps_star_hi", eps_hi),
        ("noisy_error_rate", rate),
        ("noisy_error_rate_lo", rate_lo),
        ("noisy_error_rate_hi", rate_hi),
        ("isoperimetric_bound", isoperimetric_bound(nz.sigma, rate, q=nz.q)),
        ("isoperimetric_bound_lo", bound_lo),
        ("isoperimetric_bound_hi", bound_hi),
    ):
        out[name][idx] = values
    return out


# --- per-model summaries -------------------------------------------------------------------------


def median_summary(
    values: np.ndarray,
    censored: np.ndarray | None = None,
    cap: float | None = None,
    *,
    level: float = 0.95,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> dict[str, Any]:
    """The median of ``values`` with its seeded percentile-bootstrap interval, and how much of it is censored.

    ``values`` hold censored entries at their cap (right-censored: the true
    value is at least that); NaNs are left out. Where more than half are
    censored the median itself is censored: it is reported as a lower bound
    (``bound: "lower"``, ``median`` = ``cap`` when given, ``hi`` = inf).

    Returns ``{"median", "lo", "hi", "n", "censored_fraction", "bound", "level", "resamples", "seed"}``.
    """
    v = np.asarray(values, dtype=np.float64)
    c = np.zeros(v.shape, dtype=bool) if censored is None else np.asarray(censored, dtype=bool)
    keep = ~np.isnan(v)
    v, c = v[keep], c[keep]
    median, lo, hi = bootstrap_median(v, level, resamples=resamples, seed=seed)
    fraction = float(c.mean()) if len(v) else math.nan
    bound = None
    if len(v) and fraction > 0.5:
        bound = "lower"
        if cap is not None:
            median = lo = float(cap)
        hi = math.inf
    return {
        "median": median,
        "lo": lo,
        "hi": hi,
        "n": len(v),
        "censored_fraction": fraction,
        "bound": bound,
        "level": level,
        "resamples": resamples,
        "seed": seed,
    }


def format_median(record: dict[str, Any], digits: int = 3) -> str:
    """A median record as text: ``0.123 [0.101, 0.140]``, ``>= 1`` (a lower bound) or ``n/a`` (no images)."""

    def num(v: Any) -> str:
        return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}g}"

    if record.get("bound") == "lower":
        return f">= {num(record['median'])}"
    if not record.get("n"):
        return "n/a"
    return f"{num(record['median'])} [{num(record['lo'])}, {num(record['hi'])}]"


def summarize(columns: dict[str, np.ndarray], cfg: Config) -> dict[str, Any]:
    """Per-model medians of a per-image analysis table, each a :func:`median_summary` record.

    ``sigma_at_mu`` and ``nearest_distance``: over all images (misclassified
    ones at 0, as in the paper; below 50% accuracy their median is 0);
    ``sigma_at_mu_correct`` and ``nearest_distance_correct``: the same over the
    correctly classified images; ``distance_ratio`` (d(x0, E) over the linear
    model's distance; 1 for a linear model): over all correctly classified
    images; ``eps_star`` and ``eps_star_over_bound``: over the correctly
    classified images measured whose noisy error rate is below 1/2 (the ratio
    also needs a finite bound: at least one noisy error seen).
    """
    a, nz = cfg.analyze, cfg.analyze.noisy
    ok = columns["clean_correct"].astype(bool)
    found = columns["nearest_found"].astype(bool)
    capped = columns["sigma_capped"].astype(bool)
    not_found = ok & ~found

    def med(values, censored=None, cap=None):
        return median_summary(values, censored, cap, level=a.level, seed=cfg.seed)

    d, lin = columns["nearest_distance"], columns["linear_distance"]
    eps, bound, rate = columns["eps_star"], columns["isoperimetric_bound"], columns["noisy_error_rate"]
    measured = ok & np.isfinite(eps)
    below_half = measured & (rate < 0.5)
    finite = below_half & np.isfinite(bound) & (bound > 0)
    eps_capped = eps >= nz.eps_max
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = d / lin
        eps_ratio = eps / bound
    return {
        "images": len(ok),
        "clean_accuracy": float(ok.mean()) if len(ok) else math.nan,
        "mu": a.mu,
        "level": a.level,
        "sigma_max": SIGMA_MAX,
        "sigma_at_mu": med(columns["sigma_at_mu"], capped, SIGMA_MAX),
        "nearest_distance": med(d, not_found, a.nearest.eps_max),
        # the same over correctly classified images only: what a model's accuracy does not already say
        "sigma_at_mu_correct": med(columns["sigma_at_mu"][ok], capped[ok], SIGMA_MAX),
        "nearest_distance_correct": med(d[ok], not_found[ok], a.nearest.eps_max),
        # 1 for a linear model; below 1: errors nearer than the error rate in noise implies for a linear model
        "distance_ratio": med(ratio[ok], (not_found | capped)[ok]),
        "sigma_forward_passes_per_image": float(columns["sigma_forward_passes"].mean()) if len(ok) else math.nan,
        "mean_error_rate": {f"{s:g}": float(columns[error_rate_column(s)].mean()) for s in a.error_rate_sigmas},
        "noisy_sigma": nz.sigma,
        "noisy_q": nz.q,
        "noisy_images": int(measured.sum()),
        "noisy_images_below_half": int(below_half.sum()),
        "eps_star": med(eps[below_half], eps_capped[below_half], nz.eps_max),
        # 1 where the error set near noisy points looks like a half space; below 1: closer than the bound
        "eps_star_over_bound": med(eps_ratio[finite], eps_capped[finite]),
    }


MEDIAN_FIELDS = ("median", "lo", "hi", "n", "censored_fraction")


def is_median_record(value: Any) -> bool:
    return isinstance(value, dict) and "median" in value and "censored_fraction" in value


def flat_metrics(summary: dict[str, Any]) -> dict[str, float]:
    """The summary as MLflow metrics: median records become ``<key>/median``, ``/lo``, ``/hi``, ``/n``,
    ``/censored_fraction``; other nested dicts ``<key>/sigma_<s>``; NaNs, infinities and text are left out."""
    out: dict[str, float] = {}
    for key, value in summary.items():
        if is_median_record(value):
            out.update({f"{key}/{f}": float(value[f]) for f in MEDIAN_FIELDS if value[f] is not None})
        elif isinstance(value, dict):
            out.update({f"{key}/sigma_{s}": float(v) for s, v in value.items()})
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[key] = float(value)
    return {k: v for k, v in out.items() if math.isfinite(v)}
