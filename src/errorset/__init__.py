"""errorset: adversarial examples as a consequence of test error in noise.

Tools to train classifiers (clean, Gaussian augmentation, PGD adversarial
training) and to measure how their error rate in noise relates to the
distance to their nearest errors (Ford, Gilmer, Carlini & Cubuk, ICML 2019).
Submodules are imported on use; importing this package is cheap.
"""

__version__ = "0.1.0"
