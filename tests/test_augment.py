from __future__ import annotations

import pytest
import torch
from scipy import stats

from errorset.config import AdversarialConfig, TrainConfig
from errorset.errors import ConfigError
from errorset.jobs.train import training_transform
from errorset.train import gaussian_augment


def test_sigma_is_uniform_per_image_and_noise_std_matches_it():
    g = torch.Generator().manual_seed(0)
    x = torch.full((4000, 3, 16, 16), 0.5)
    noisy, sigma = gaussian_augment(x, 0.4, generator=g)
    assert sigma.shape == (4000,)
    assert sigma.min() >= 0 and sigma.max() <= 0.4
    # sigma ~ U(0, 0.4): Kolmogorov-Smirnov against the uniform distribution
    assert stats.kstest(sigma.numpy(), stats.uniform(loc=0, scale=0.4).cdf).pvalue > 0.01
    noise = (noisy - x).flatten(1)
    # per image: zero mean and standard deviation equal to that image's sigma (768 pixels each)
    assert noise.mean(1).abs().max() < 0.2 * 0.4
    big = sigma > 0.05
    ratio = noise.std(1)[big] / sigma[big]
    assert ratio.mean() == pytest.approx(1.0, abs=0.01)
    assert (ratio - 1).abs().max() < 0.2
    # noise is Gaussian: standardised values pass a normality test
    z = (noise[big] / sigma[big, None]).flatten()[:5000]
    assert stats.normaltest(z.numpy()).pvalue > 0.001


def test_fresh_noise_every_call_and_reproducible_with_a_seed():
    x = torch.rand(8, 1, 8, 8)
    a, sa = gaussian_augment(x, 0.3, generator=torch.Generator().manual_seed(1))
    b, sb = gaussian_augment(x, 0.3, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(sa, sb)
    g = torch.Generator().manual_seed(1)
    c, _ = gaussian_augment(x, 0.3, generator=g)
    d, _ = gaussian_augment(x, 0.3, generator=g)
    assert not torch.equal(c, d)


def test_clipping_is_optional():
    x = torch.rand(64, 3, 8, 8)
    unclipped, _ = gaussian_augment(x, 1.0, generator=torch.Generator().manual_seed(0))
    assert unclipped.min() < 0 and unclipped.max() > 1  # the paper's default: no clipping
    clipped, _ = gaussian_augment(x, 1.0, generator=torch.Generator().manual_seed(0), clip=True)
    assert clipped.min() >= 0 and clipped.max() <= 1
    torch.testing.assert_close(clipped, unclipped.clamp(0, 1))


def test_sigma_max_zero_is_clean_and_negative_is_refused():
    x = torch.rand(4, 3, 8, 8)
    torch.testing.assert_close(gaussian_augment(x, 0.0)[0], x)
    # the tensor function names its own argument; the config layer names the key, once
    with pytest.raises(ValueError, match=r"^sigma_max: expected a number >= 0, got -0\.1$"):
        gaussian_augment(x, -0.1)
    with pytest.raises(ConfigError, match=r"^train\.sigma_max: expected a number >= 0, got -0\.1$"):
        training_transform(TrainConfig(mode="gaussian", sigma_max=-0.1))
    with pytest.raises(ConfigError, match=r"^train\.adversarial\.attack_mode: unknown mode 'test'; valid modes: eval"):
        training_transform(
            TrainConfig(mode="adversarial", adversarial=AdversarialConfig(eps=0.1, step_size=0.1, attack_mode="test"))
        )
