"""Measurements of classifiers under additive Gaussian noise."""

from errorset.noise.accuracy import NoiseAccuracy, accuracy_in_noise

__all__ = ["NoiseAccuracy", "accuracy_in_noise"]
