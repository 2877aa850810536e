"""errorset.measure.analysis: per-image intervals, censored medians, and the precision check of validate."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from errorset.errors import ConfigError
from errorset.measure.analysis import (
    SIGMA_MAX,
    flat_metrics,
    format_median,
    measure,
    median_summary,
    summarize,
)
from errorset.resolve import load_config
from errorset.theory import error_rate_at_distance, isoperimetric_bound, linear_distance

from .conftest import make_config
from .linear_models import BinaryLinear


def config(*overrides: str):
    return load_config(None, ["profile=smoke", "device=cpu", *overrides])


# --- median_summary ------------------------------------------------------------------------------


def test_median_summary_keeps_censored_values_at_their_cap():
    values = np.array([0.1, 0.2, 0.3, 1.0, 1.0])  # two not found within eps_max = 1
    censored = np.array([False, False, False, True, True])
    rec = median_summary(values, censored, 1.0, seed=3)
    assert rec["median"] == 0.3 and rec["n"] == 5 and rec["censored_fraction"] == pytest.approx(0.4)
    assert rec["bound"] is None and rec["lo"] <= 0.3 <= rec["hi"]
    assert set(rec) == {"median", "lo", "hi", "n", "censored_fraction", "bound", "level", "resamples", "seed"}
    # dropping the censored images (today's summary) would give 0.2
    assert format_median(rec) == f"0.3 [{rec['lo']:.3g}, {rec['hi']:.3g}]"


def test_median_summary_is_a_lower_bound_when_more_than_half_are_censored():
    rec = median_summary(np.array([0.2, 1.0, 1.0]), np.array([False, True, True]), 1.0)
    assert rec["bound"] == "lower" and rec["median"] == 1.0 and rec["hi"] == math.inf
    assert format_median(rec) == ">= 1"
    assert format_median(median_summary(np.array([]))) == "n/a"


def test_bootstrap_intervals_are_seeded():
    v = np.random.default_rng(0).normal(size=101)
    a, b, c = (median_summary(v, seed=s) for s in (1, 1, 2))
    assert a == b and (a["lo"], a["hi"]) != (c["lo"], c["hi"])
    assert a["seed"] == 1 and a["resamples"] == 2000


# --- summarize -----------------------------------------------------------------------------------


def _columns(n: int = 8) -> dict[str, np.ndarray]:
    nan = np.full(n, math.nan)
    return {
        "clean_correct": np.array([0, 1, 1, 1, 1, 1, 1, 1]),
        "sigma_at_mu": np.array([0.0, 0.1, 0.2, 0.3, 0.4, 0.5, SIGMA_MAX, 0.6]),
        "sigma_capped": np.array([0, 0, 0, 0, 0, 0, 1, 0]),
        "sigma_forward_passes": np.ones(n),
        "nearest_distance": np.array([0.0, 0.2, 0.4, 0.6, 1.0, 1.0, 1.0, 1.0]),
        "nearest_found": np.array([1, 1, 1, 1, 0, 0, 0, 0]),
        "linear_distance": linear_distance(np.array([1e-9, 0.1, 0.2, 0.3, 0.4, 0.5, SIGMA_MAX, 0.6]), 0.01),
        "error_rate_sigma_0.1": np.zeros(n),
        "eps_star": np.array([nan[0], 0.0, 0.05, 0.1, 0.12, nan[0], nan[0], nan[0]]),
        "noisy_error_rate": np.array([nan[0], 0.6, 0.2, 0.05, 0.0, nan[0], nan[0], nan[0]]),
        "isoperimetric_bound": isoperimetric_bound(0.1, np.array([0.5, 0.6, 0.2, 0.05, 0.0, 0.5, 0.5, 0.5])),
    }


def test_summaries_follow_the_papers_conventions():
    cfg = config("analyze.error_rate_sigmas=[0.1]")
    s = summarize(_columns(), cfg)
    # a misclassified clean image has sigma = 0 and counts (the median of all 8 images, the capped one at its cap)
    assert s["sigma_at_mu"]["median"] == pytest.approx(0.35) and s["sigma_at_mu"]["n"] == 8
    assert s["sigma_at_mu"]["censored_fraction"] == pytest.approx(1 / 8)
    # over the 7 correct images only: 0.1 0.2 0.3 0.4 0.5 0.6 and the cap
    assert s["sigma_at_mu_correct"]["median"] == pytest.approx(0.4) and s["sigma_at_mu_correct"]["n"] == 7
    assert s["nearest_distance_correct"]["median"] == pytest.approx(1.0)
    assert s["nearest_distance_correct"]["censored_fraction"] == pytest.approx(4 / 7)
    assert s["nearest_distance_correct"]["bound"] == "lower"
    # the ratio is over all 7 correctly classified images; 4 of them censored (no error within eps_max)
    ratio = s["distance_ratio"]
    assert ratio["n"] == 7 and ratio["censored_fraction"] == pytest.approx(4 / 7) and ratio["bound"] == "lower"
    assert s["nearest_distance"]["censored_fraction"] == pytest.approx(4 / 8)
    # eps*_q: correct images with a noisy error rate below 1/2 (3); the ratio needs a finite bound (2)
    assert s["eps_star"]["n"] == 3 and s["eps_star"]["median"] == pytest.approx(0.1)
    assert s["eps_star_over_bound"]["n"] == 2
    metrics = flat_metrics(s)
    assert metrics["sigma_at_mu/median"] == pytest.approx(0.35) and metrics["distance_ratio/n"] == 7
    assert "distance_ratio/hi" not in metrics  # infinite: a lower bound
    assert metrics["mean_error_rate/sigma_0.1"] == 0


# --- validate --------------------------------------------------------------------------------------


def test_validate_refuses_too_few_noise_samples_for_mu():
    with pytest.raises(ConfigError, match=r"analyze\.samples.*analyze\.max_rel_error"):
        config("analyze.samples=100")
    config("analyze.samples=100", "analyze.max_rel_error=0.2")  # an explicit, looser precision
    config("analyze.samples=1000")
    with pytest.raises(ConfigError, match=r"sweep\.sigma_samples.*analyze\.max_rel_error"):
        config("sweep.sigma_samples=200", "sweep.objectives=[median_sigma]")
    for profile in ("cpu", "paper", "smoke"):
        load_config(None, [f"profile={profile}"])


# --- intervals on a linear model, against its closed forms ----------------------------------------


def test_per_image_intervals_cover_the_closed_forms_of_a_linear_model():
    dim, n = 16, 120
    g = torch.Generator().manual_seed(11)
    model = BinaryLinear(torch.randn(dim, generator=g), 0.0)
    x = (0.3 + 0.4 * torch.rand(n, 1, 4, 4, generator=g)).float()
    y = (model.signed_margin(x) > 0).long()
    y[:3] = 1 - y[:3]  # misclassified clean images
    cfg = config("analyze.error_rate_sigmas=[0.2]", "analyze.noisy.images=12", "analyze.noisy.samples=64")
    cols = measure(cfg, model, x, y, torch.device("cpu"))
    d = model.distance(x).double().numpy()
    ok = cols["clean_correct"].astype(bool)
    assert not ok[:3].any() and ok[3:].all()
    assert (cols["sigma_at_mu"][:3] == 0).all() and np.isnan(cols["eps_star"][:3]).all()
    truth = d / linear_distance(1.0, 0.01)
    inside = (cols["sigma_at_mu_lo"] <= truth) & (truth <= cols["sigma_at_mu_hi"])
    assert inside[ok].mean() >= 0.88  # 95% intervals
    rate = error_rate_at_distance(d, 0.2)
    inside = (cols["error_rate_sigma_0.2_lo"] <= rate) & (rate <= cols["error_rate_sigma_0.2_hi"])
    assert inside[ok].mean() >= 0.88
    # a half space meets the isoperimetric bound: eps*_q's interval holds the bound at the true rate
    have = np.isfinite(cols["eps_star"])
    assert have.sum() == 12 and have[3:15].all()
    bound = isoperimetric_bound(0.1, error_rate_at_distance(d[have], 0.1))
    inside = (cols["eps_star_lo"][have] <= bound * 1.01) & (bound <= cols["eps_star_hi"][have] * 1.01)
    assert inside.mean() >= 10 / 12


# --- eps*_q against its bound on a trained nonlinear model -----------------------------------------


def test_eps_star_never_lies_above_its_bound_on_a_trained_mlp(data_root, workdir):
    """At the cpu profile's noisy settings (8 correct images, 64 samples, 100 steps): no image's eps*_q interval
    lies entirely above its bound's interval (an estimate above a theorem's bound is a measurement error)."""
    from errorset.jobs.common import load_trained
    from errorset.jobs.train import train

    torch.manual_seed(0)
    cfg = make_config(data_root, "train.mode=clean", "train.epochs=4", "train.output_dir=m", "tracking.log_model=false")
    trained = train(cfg, progress=False)
    cpu = load_config(None, ["profile=cpu"]).analyze.noisy
    cfg = make_config(
        data_root,
        "analyze.images=24",
        f"analyze.noisy.images={cpu.images}",
        f"analyze.noisy.samples={cpu.samples}",
        f"analyze.noisy.steps={cpu.steps}",
        "analyze.error_rate_sigmas=[0.1]",
        "analyze.noisy.sigma=0.3",  # digits: at 0.1 most images see no noisy error (an infinite bound)
    )
    t = load_trained(cfg, str(trained.model_path), 24, progress=False)
    cols = measure(cfg, t.model, t.x, t.y, t.device)
    have = np.isfinite(cols["eps_star"])
    assert have.sum() == 8 and cols["clean_correct"][have].all()
    rate = cols["noisy_error_rate"][have]
    assert ((rate > 0) & (rate < 0.5)).sum() >= 4  # finite, positive bounds: the check says something
    assert (cols["eps_star_lo"][have] <= cols["isoperimetric_bound_hi"][have]).all()
    assert (cols["noisy_error_rate_lo"][have] <= cols["noisy_error_rate"][have]).all()
