"""Every public measurement and attack refuses images outside [0,1] with one line naming the argument."""

from __future__ import annotations

import pytest
import torch

from errorset.attacks import nearest_error, pgd
from errorset.errors import ConfigError
from errorset.measure import (
    accuracy_in_noise,
    error_rate_in_noise,
    lp_robustness,
    median_noisy_distance,
    robust_accuracy,
    search_sigma_at_error_rate,
    sigma_at_error_rate,
)
from errorset.measure.sigma_search import paper_sigma_search

from .linear_models import BinaryLinear

CALLS = {
    "accuracy_in_noise": lambda m, x, y: accuracy_in_noise(m, x, y, [0.1], trials=1),
    "error_rate_in_noise": lambda m, x, y: error_rate_in_noise(m, x, y, 0.1, 10),
    "sigma_at_error_rate": lambda m, x, y: sigma_at_error_rate(m, x, y, n_samples=100),
    "search_sigma_at_error_rate": lambda m, x, y: search_sigma_at_error_rate(m, x, y, n_samples=100),
    "paper_sigma_search": lambda m, x, y: paper_sigma_search(m, x, y, n_samples=100),
    "median_noisy_distance": lambda m, x, y: median_noisy_distance(m, x, y, 0.1, 4, 5),
    "robust_accuracy": lambda m, x, y: robust_accuracy(m, x, y, norm="linf", eps=0.1, steps=2, step_size=0.05),
    "lp_robustness": lambda m, x, y: lp_robustness(m, x, y, {"linf": [0.1]}, steps=2),
    "pgd": lambda m, x, y: pgd(m, x, y, eps=0.1, steps=2),
    "nearest_error": lambda m, x, y: nearest_error(m, x, y, steps=4),
}


@pytest.fixture
def model_and_data():
    torch.manual_seed(0)
    model = BinaryLinear(torch.randn(16), -0.5)
    x = torch.rand(4, 1, 4, 4)
    y = model(x).argmax(1)
    return model, x, y


@pytest.mark.parametrize("name", sorted(CALLS))
def test_float_images_in_0_255_are_refused_naming_the_argument(name, model_and_data):
    model, x, y = model_and_data
    CALLS[name](model, x, y)  # images in [0,1] are measured
    argument = "x0" if name == "median_noisy_distance" else "x"
    with pytest.raises(
        ConfigError, match=rf"^{argument}: expected .*float images in \[0,1\].*got values from [\d.]+ to [\d.]+"
    ):
        CALLS[name](model, x * 255, y)
    with pytest.raises(ConfigError, match=rf"^{argument}: expected"):
        CALLS[name](model, torch.full_like(x, float("nan")), y)
