"""sigma(x0, mu): the order-statistic search against Equation 1, the paper's own search and a 20,000-sample truth."""

from __future__ import annotations

import math

import pytest
import torch

from errorset.errors import ConfigError
from errorset.measure.sigma_search import paper_sigma_search, relative_std_error, search_sigma_at_error_rate
from errorset.theory import linear_distance

from .linear_models import BinaryLinear

MU = 0.01
T = float(linear_distance(1.0, MU))  # -Phi^-1(mu): sigma(x0, mu) = d / T for a linear model (Equation 1)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_linear_models_follow_equation_1_within_the_statistical_error_and_the_interval_covers():
    g = gen(0)
    model = BinaryLinear(3 * torch.randn(16, generator=g), 0.05)
    x = 0.25 + 0.5 * torch.rand(300, 16, generator=g)
    y = (model.signed_margin(x) > 0).long()
    truth = model.distance(x) / T
    r = search_sigma_at_error_rate(model, x, y, MU, 1000, generator=gen(1))
    assert r.clean_correct.all() and not r.capped.any()
    ratio = (r.sigma / truth).double()
    # the k-th crossing is median-unbiased for the sigma at rate mu; its spread is the 5% of relative_std_error
    assert abs(ratio.median().item() - 1) < 0.015
    assert ratio.std().item() == pytest.approx(relative_std_error(MU, 1000), abs=0.01)
    covered = ((r.sigma_lo <= truth) & (truth <= r.sigma_hi)).double().mean().item()
    assert 0.92 <= covered <= 0.995  # nominal 95% (Clopper-Pearson: slightly conservative)
    assert (r.sigma_lo < r.sigma).all() and (r.sigma < r.sigma_hi).all()
    # the paper's search costs about 11 x 1000 passes per image; this one at least 5x fewer
    assert r.forward_passes.double().mean() <= 11 * 1000 / 5


@pytest.fixture(scope="module")
def digits_mlp():
    """A 64-128-10 ReLU MLP trained on scikit-learn's 8x8 digits in under a second (about 92% test accuracy)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.data, dtype=torch.float32) / 16
    y = torch.tensor(d.target)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(150):
        loss = torch.nn.functional.cross_entropy(model(x[:1400]), y[:1400])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    xt, yt = x[1400:1424], y[1400:1424]
    keep = model(xt).argmax(1) == yt
    return model, xt[keep], yt[keep]


def test_on_a_trained_mlp_it_finds_the_papers_order_statistic_with_5x_fewer_passes(digits_mlp):
    model, x, y = digits_mlp
    # n = 1050: the paper's "rate > mu" and our "at least ceil(mu n)" both ask for 11 errors: the same crossing
    crossing = search_sigma_at_error_rate(model, x, y, MU, 1050, smooth=False, generator=gen(3))
    paper = paper_sigma_search(model, x, y, MU, 1050, generator=gen(3))
    assert not crossing.capped.any() and not paper.capped.any()
    tol = 0.001 + 0.002 * paper.sigma  # the paper's absolute tolerance and our rtol
    assert ((crossing.sigma - paper.sigma).abs() <= tol).float().mean() >= 0.9
    # the default (Harrell-Davis mean of the crossings around that rank) stays within the statistical error
    ours = search_sigma_at_error_rate(model, x, y, MU, 1050, generator=gen(3))
    assert (ours.sigma / paper.sigma - 1).abs().median() < relative_std_error(MU, 1050) / 2
    ratio = paper.forward_passes.double().mean() / ours.forward_passes.double().mean()
    assert ratio >= 5


def test_on_a_trained_mlp_the_interval_covers_a_20000_sample_truth(digits_mlp):
    model, x, y = digits_mlp
    ours = search_sigma_at_error_rate(model, x, y, MU, 1000, generator=gen(4))
    # ground truth: the paper's bisection (independent code) on an independent bank of 20,000, 2e-4 tolerance
    truth = paper_sigma_search(model, x, y, MU, 20000, tol=2e-4, generator=gen(5)).sigma
    covered = ((ours.sigma_lo <= truth) & (truth <= ours.sigma_hi)).double().mean()
    assert covered >= 0.8
    assert (ours.sigma / truth - 1).abs().median() <= relative_std_error(MU, 1000)


def test_an_explicit_bank_gives_the_same_result_as_its_generator(digits_mlp):
    model, x, y = digits_mlp
    x, y = x[:4], y[:4]
    bank = torch.randn((4, 200, *x.shape[1:]), generator=gen(6))
    a = search_sigma_at_error_rate(model, x, y, 0.05, 200, noise=bank)
    b = search_sigma_at_error_rate(model, x, y, 0.05, 200, generator=gen(6))
    torch.testing.assert_close(a.sigma, b.sigma)
    torch.testing.assert_close(a.sigma_hi, b.sigma_hi)


def test_misclassified_images_get_zero_after_one_pass_and_capped_ones_an_open_interval():
    model = BinaryLinear(torch.ones(8), -4.0)  # class 1 where sum(x) > 4
    x = torch.full((3, 8), 0.25)  # sum 2: class 0, distance 2 / sqrt(8) = 0.707
    y = torch.tensor([1, 0, 0])
    r = search_sigma_at_error_rate(model, x, y, MU, 1000, sigma_max=0.2, generator=gen(7))
    assert r.sigma[0] == 0 and r.sigma_lo[0] == 0 and r.sigma_hi[0] == 0 and r.forward_passes[0] == 1
    assert not r.clean_correct[0] and r.error_rate[0] == 1
    # sigma(x0, 0.01) = 0.707 / 2.33 = 0.30 > sigma_max: censored at the cap
    assert r.capped[1:].all() and (r.sigma[1:] == 0.2).all()
    assert (r.sigma_lo[1:] == 0.2).all() and torch.isinf(r.sigma_hi[1:]).all()
    p = paper_sigma_search(model, x, y, MU, 1000, sigma_max=0.2, generator=gen(7))
    assert p.forward_passes[0] == 1 and p.sigma[0] == 0 and p.capped[1:].all()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pilot_samples": 2}, "pilot_samples: expected an integer >= 8"),
        ({"rtol": 0.0}, r"rtol: expected a number in \(0, 1\)"),
        ({"level": 1.5}, r"level: expected a confidence level in \(0, 1\)"),
        ({"noise": torch.zeros(2, 10, 8)}, r"noise: expected a bank of shape \(2, 1000, 8\)"),
    ],
)
def test_bad_arguments(kwargs, message):
    model, x, y = BinaryLinear(torch.ones(8)), torch.rand(2, 8), torch.zeros(2, dtype=torch.long)
    with pytest.raises(ConfigError, match=message):
        search_sigma_at_error_rate(model, x, y, MU, 1000, **kwargs)


def test_paper_search_bad_arguments():
    model, x, y = BinaryLinear(torch.ones(8)), torch.rand(2, 8), torch.zeros(2, dtype=torch.long)
    with pytest.raises(ConfigError, match=r"tol: expected a number in \(0, sigma_max\)"):
        paper_sigma_search(model, x, y, MU, 1000, tol=2.0)
    with pytest.raises(ConfigError, match="sigma_init, sigma_max"):
        paper_sigma_search(model, x, y, MU, 1000, sigma_init=1.5)
    assert math.isnan(paper_sigma_search(model, x, 1 - y, 0.1, 100).sigma_lo[0])  # no interval from the paper
