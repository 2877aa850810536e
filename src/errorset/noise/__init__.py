"""Measurements of classifiers under additive Gaussian noise (Ford et al. 2019, Sections 4-5)."""

from errorset.noise.accuracy import NoiseAccuracy, accuracy_in_noise
from errorset.noise.error_rate import error_rate_in_noise
from errorset.noise.noisy_distance import NoisyDistance, median_noisy_distance
from errorset.noise.sigma_search import SigmaSearch, search_sigma_at_error_rate, sigma_at_error_rate

__all__ = [
    "NoiseAccuracy",
    "NoisyDistance",
    "SigmaSearch",
    "accuracy_in_noise",
    "error_rate_in_noise",
    "median_noisy_distance",
    "search_sigma_at_error_rate",
    "sigma_at_error_rate",
]
