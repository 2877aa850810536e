"""The paper's measurements of a classifier, on whole batches, in float32 (Ford et al. 2019, Sections 4-6).

``common``              :func:`eval_mode` (eval mode, float32, no TF32), :func:`measurement_precision`,
                        :func:`model_device`, noisy forward passes
``intervals``           Clopper-Pearson, order-statistic and bootstrap intervals
``noise_accuracy``      accuracy in Gaussian noise over a sigma grid (Figure 7)
``error_rate``          per-image error rate in noise (Figure 20; its interval: ``intervals.clopper_pearson``)
``sigma_search``        per-image sigma(x0, mu) with its interval (Figure 2)
``noisy_distance``      eps*_q, the distance of noisy points to the error set (Figure 4)
``robustness``          accuracy under PGD (Figure 6)
``corruption_accuracy`` accuracy under the common corruptions, "All" and mCE (Tables 2-4)
``analysis``            ``errorset analyze``'s per-image columns with intervals, and censored medians
                        with bootstrap intervals per model
``table``               the per-image table ``analysis.csv`` (write, read)
"""

from errorset.measure.clean_accuracy import accuracy, predict
from errorset.measure.common import eval_mode, measurement_precision, misclassified, model_device, noisy_margins
from errorset.measure.error_rate import error_rate_in_noise
from errorset.measure.noise_accuracy import NoiseAccuracy, accuracy_in_noise
from errorset.measure.noisy_distance import NoisyDistance, median_noisy_distance
from errorset.measure.robustness import lp_robustness, robust_accuracy
from errorset.measure.sigma_search import SigmaSearch, search_sigma_at_error_rate, sigma_at_error_rate

__all__ = [
    "NoiseAccuracy",
    "NoisyDistance",
    "SigmaSearch",
    "accuracy",
    "accuracy_in_noise",
    "error_rate_in_noise",
    "eval_mode",
    "lp_robustness",
    "measurement_precision",
    "median_noisy_distance",
    "misclassified",
    "model_device",
    "noisy_margins",
    "predict",
    "robust_accuracy",
    "search_sigma_at_error_rate",
    "sigma_at_error_rate",
]
