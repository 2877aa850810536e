from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from errorset.attacks import pgd
from errorset.errors import ConfigError
from errorset.measure.robustness import lp_robustness, robust_accuracy
from errorset.models import create_model


@pytest.fixture(scope="module")
def model_and_data():
    """A small CNN trained for a few steps on separable random data (so gradients are informative)."""
    torch.manual_seed(0)
    model = create_model("resnet8", input_shape=(3, 16, 16), num_classes=4)
    y = torch.arange(32) % 4
    x = torch.rand(32, 3, 16, 16) * 0.6
    for c in range(4):  # class c brightens one quadrant of one channel
        r, q = (c // 2) * 8, (c % 2) * 8
        x[y == c, c % 3, r : r + 8, q : q + 8] += 0.4
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for _ in range(30):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval(), x, y


@pytest.mark.parametrize(("norm", "eps"), [("linf", 8 / 255), ("l2", 0.5)])
def test_pgd_stays_in_its_ball_and_the_image_domain(model_and_data, norm, eps):
    model, x, y = model_and_data
    adv = pgd(model, x, y, norm=norm, eps=eps, steps=10, step_size=eps / 4, generator=torch.Generator().manual_seed(0))
    delta = (adv - x).flatten(1)
    if norm == "linf":
        assert delta.abs().max() <= eps + 1e-6
    else:
        assert delta.norm(dim=1).max() <= eps + 1e-5
    assert adv.min() >= 0 and adv.max() <= 1
    assert adv.shape == x.shape and adv.dtype == x.dtype and not adv.requires_grad


@pytest.mark.parametrize(("norm", "eps"), [("linf", 4 / 255), ("l2", 0.3)])
def test_pgd_raises_the_loss(model_and_data, norm, eps):
    model, x, y = model_and_data
    clean = F.cross_entropy(model(x), y).item()
    noise = x + (torch.rand_like(x) * 2 - 1) * (eps if norm == "linf" else eps / x[0].numel() ** 0.5)
    random_loss = F.cross_entropy(model(noise.clamp(0, 1)), y).item()
    adv = pgd(model, x, y, norm=norm, eps=eps, steps=10, generator=torch.Generator().manual_seed(0))
    adv_loss = F.cross_entropy(model(adv), y).item()
    assert adv_loss > 1.5 * clean
    assert adv_loss > 1.5 * random_loss
    bigger = pgd(model, x, y, norm=norm, eps=2 * eps, steps=10, generator=torch.Generator().manual_seed(0))
    assert F.cross_entropy(model(bigger), y).item() > adv_loss


def test_targeted_pgd_moves_towards_the_target(model_and_data):
    model, x, y = model_and_data
    target = (y + 1) % 4
    before = (model(x).argmax(1) == target).float().mean()
    adv = pgd(model, x, y, eps=0.3, steps=20, targeted=True, target=target)
    after = (model(adv).argmax(1) == target).float().mean()
    assert after > before + 0.3


def test_pgd_is_reproducible_with_a_generator_and_leaves_the_model_alone(model_and_data):
    model, x, y = model_and_data
    model.train()
    a = pgd(model, x, y, eps=0.03, steps=3, generator=torch.Generator().manual_seed(5))
    b = pgd(model, x, y, eps=0.03, steps=3, generator=torch.Generator().manual_seed(5))
    assert model.training  # mode untouched
    model.eval()
    torch.testing.assert_close(a, b)
    grads_before = [None if p.grad is None else p.grad.clone() for p in model.parameters()]
    pgd(model, x, y, eps=0.03, steps=3)
    for before, p in zip(grads_before, model.parameters(), strict=True):
        assert (before is None and p.grad is None) or torch.equal(before, p.grad)


def test_per_image_eps_and_zero_eps(model_and_data):
    model, x, y = model_and_data
    eps = torch.linspace(0, 0.1, len(x))
    adv = pgd(model, x, y, eps=eps, steps=5)
    assert ((adv - x).flatten(1).abs().amax(1) <= eps + 1e-6).all()
    torch.testing.assert_close(pgd(model, x, y, eps=0.0, steps=5), x)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"norm": "l1", "eps": 0.1, "steps": 3}, r"norm: unknown norm 'l1'; valid norms: l2, linf"),
        ({"eps": -0.1, "steps": 3}, r"eps: expected values >= 0"),
        ({"eps": 0.1, "steps": -1}, r"steps: expected an integer >= 0"),
        ({"eps": 0.1, "steps": 3, "targeted": True}, r"target: targeted PGD needs target labels"),
    ],
)
def test_bad_pgd_arguments(model_and_data, kwargs, message):
    model, x, y = model_and_data
    with pytest.raises(ConfigError, match=message):
        pgd(model, x, y, **kwargs)


class Bump(nn.Module):
    """On one pixel x: logits ``[0, 2 - 1000 (x - 0.24)^2]``, wrong only in a narrow band around 0.24.

    L-inf PGD from 0.1 with steps of 0.15 jumps into the band (0.25, misclassified) and back out (0.1):
    the last iterate is correct although an earlier one was not.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = 2 - 1000 * (x.flatten(1)[:, 0] - 0.24) ** 2
        return torch.stack([torch.zeros_like(f), f], 1)


def test_pgd_reports_examples_broken_by_any_iterate():
    x, y = torch.full((3, 1), 0.1), torch.zeros(3, dtype=torch.long)
    adv, broken = pgd(Bump(), x, y, eps=0.5, steps=2, step_size=0.15, random_start=False, return_broken=True)
    assert broken.all()
    torch.testing.assert_close(adv, torch.full((3, 1), 0.25))  # the misclassified iterate
    last = pgd(Bump(), x, y, eps=0.5, steps=2, step_size=0.15, random_start=False)
    torch.testing.assert_close(last, x)  # back where it started: correct
    acc = robust_accuracy(Bump(), x, y, norm="linf", eps=0.5, steps=2, step_size=0.15, random_start=False)
    assert acc == 0.0  # scored on any iterate, not on the last one (which would give 1.0)


class RightHalf(nn.Module):
    """Wrong exactly where the first pixel is above 0.5."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = 1000 * (x.flatten(1)[:, 0] - 0.5)
        return torch.stack([torch.zeros_like(f), f], 1)


@pytest.mark.parametrize("restarts", [1, 2, 3])
def test_restarts_each_draw_a_fresh_random_start(restarts):
    """With no steps, an image survives a restart with probability 1/2: accuracy ~ 2^-restarts."""
    n = 2000
    x, y = torch.full((n, 1), 0.5), torch.zeros(n, dtype=torch.long)
    kwargs = {"norm": "linf", "eps": 0.1, "steps": 0, "step_size": 0.0, "batch_size": 700}
    acc = robust_accuracy(RightHalf(), x, y, restarts=restarts, generator=torch.Generator().manual_seed(0), **kwargs)
    p = 0.5**restarts
    assert abs(acc - p) < 4 * (p * (1 - p) / n) ** 0.5
    again = robust_accuracy(RightHalf(), x, y, restarts=restarts, generator=torch.Generator().manual_seed(0), **kwargs)
    assert again == acc


def test_lp_robustness_takes_restarts_and_refuses_bad_ones(model_and_data):
    model, x, y = model_and_data
    radii = {"linf": [4 / 255]}
    one = lp_robustness(model, x, y, radii, steps=5, generator=torch.Generator().manual_seed(0))
    three = lp_robustness(model, x, y, radii, steps=5, restarts=3, generator=torch.Generator().manual_seed(0))
    assert three["linf"][0]["accuracy"] <= one["linf"][0]["accuracy"]
    with pytest.raises(ConfigError, match=r"restarts: expected an integer >= 1, got 0"):
        lp_robustness(model, x, y, radii, steps=5, restarts=0)
    with pytest.raises(ConfigError, match=r"restarts: restarts > 1 need random_start=True"):
        lp_robustness(model, x, y, radii, steps=5, restarts=2, random_start=False)
