from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from errorset.errors import ConfigError
from errorset.theory import error_rate_at_distance, isoperimetric_bound, linear_distance


def test_equation_1_values():
    # Phi^-1(0.01) = -2.3263...: a 1% error rate at sigma 0.1 puts the boundary 0.2326 away
    assert linear_distance(0.1, 0.01) == pytest.approx(0.232635, rel=1e-5)
    assert linear_distance(1.0, 0.5) == pytest.approx(0.0, abs=1e-12)
    assert linear_distance(0.2, 0.9) < 0  # signed: a misclassified point
    assert linear_distance(0.1, 0.0) == np.inf


def test_inverse_roundtrip_numpy_and_torch():
    sigma = np.array([0.05, 0.1, 0.4])[:, None]
    mu = np.array([1e-4, 0.01, 0.3])[None, :]
    d = linear_distance(sigma, mu)
    assert d.shape == (3, 3)
    np.testing.assert_allclose(error_rate_at_distance(d, sigma), np.broadcast_to(mu, (3, 3)), rtol=1e-10)
    t = linear_distance(torch.tensor([0.1, 0.2], dtype=torch.float64), torch.tensor(0.01, dtype=torch.float64))
    assert isinstance(t, torch.Tensor)
    torch.testing.assert_close(t, torch.tensor([0.232635, 0.465270], dtype=torch.float64), rtol=1e-5, atol=0)
    assert isinstance(linear_distance(0.1, 0.01), float)


def test_linear_model_error_rate_by_simulation():
    """Equation 1 by Monte Carlo: a point at distance d from a hyperplane, noise sigma."""
    rng = np.random.default_rng(0)
    d, sigma = 0.3, 0.15
    w = rng.normal(size=50)
    w /= np.linalg.norm(w)
    x0 = d * w  # boundary w.x = 0, point on the positive side
    noisy = x0 + sigma * rng.normal(size=(200_000, 50))
    mu = np.mean(noisy @ w < 0)
    assert mu == pytest.approx(error_rate_at_distance(d, sigma), abs=4 * np.sqrt(mu * (1 - mu) / 200_000))


def test_isoperimetric_bound():
    assert isoperimetric_bound(0.1, 0.01) == pytest.approx(linear_distance(0.1, 0.01))
    assert isoperimetric_bound(0.1, 0.5) == 0.0
    assert isoperimetric_bound(0.1, 0.8) == 0.0  # more than half the noisy points are errors
    # general quantile: sigma (Phi^-1(q) - Phi^-1(mu))
    assert isoperimetric_bound(0.2, 0.05, q=0.9) == pytest.approx(0.2 * (stats.norm.ppf(0.9) - stats.norm.ppf(0.05)))
    b = isoperimetric_bound(torch.tensor([0.1, 0.1]), torch.tensor([0.01, 0.7]))
    assert b[1] == 0 and b[0] > 0


def test_half_spaces_attain_the_bound():
    """For a half space the median distance of noisy points equals the bound (simulated)."""
    rng = np.random.default_rng(1)
    d, sigma = 0.25, 0.2
    g = rng.normal(size=400_000)
    distances = np.maximum(0.0, d + sigma * g)  # distance of x0 + noise to the half space {w.x < 0}
    mu = np.mean(distances == 0)
    assert np.median(distances) == pytest.approx(isoperimetric_bound(sigma, mu), rel=0.01)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: linear_distance(0.0, 0.1), "sigma: expected values > 0"),
        (lambda: linear_distance(0.1, 1.5), r"mu: expected error rates in \[0, 1\]"),
        (lambda: isoperimetric_bound(0.1, 0.1, q=1.0), r"q: expected a quantile in \(0, 1\)"),
        (lambda: error_rate_at_distance(0.1, -1.0), "sigma: expected values > 0"),
    ],
)
def test_bad_arguments(call, message):
    with pytest.raises(ConfigError, match=message):
        call()
