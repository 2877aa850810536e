"""Every registered attack step (one per norm): projection, random start, ascent step and step size."""

import pytest
import torch

from errorset.attacks import STEPS, default_step_size, nearest_error, pgd
from errorset.attacks.steps import per_image_view
from errorset.errors import ConfigError, UnknownNameError

NAMES = STEPS.names()


def _batch(seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(5, 3, 4, 4, generator=g)


def _eps(x: torch.Tensor) -> torch.Tensor:
    return per_image_view(torch.linspace(0.05, 0.5, x.shape[0]), x)


def test_registry_holds_linf_and_l2_each_under_its_own_norm():
    assert set(NAMES) == {"linf", "l2"}
    for name in NAMES:
        assert STEPS.create(name).norm == name


@pytest.mark.parametrize("name", NAMES)
def test_project_lands_inside_the_ball_and_the_image_domain(name):
    step = STEPS.create(name)
    x = _batch()
    eps = _eps(x)
    delta = 3 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    projected = step.project(delta, eps)
    assert (step.size(projected) <= eps.flatten() * (1 + 1e-5)).all()
    # a far perturbation lands on the sphere; one already inside is left alone
    assert torch.allclose(step.size(projected), eps.flatten(), rtol=1e-5)
    inside = step.project(projected * 0.5, eps)
    assert torch.equal(inside, projected * 0.5)
    image = (x + projected).clamp(0, 1)
    assert image.min() >= 0 and image.max() <= 1
    assert (step.size(image - x) <= eps.flatten() * (1 + 1e-5)).all()


@pytest.mark.parametrize("name", NAMES)
def test_random_start_is_inside_the_ball_and_reproducible(name):
    step = STEPS.create(name)
    x = _batch()
    eps = _eps(x)
    a = step.random_start(x, eps, torch.Generator().manual_seed(3))
    b = step.random_start(x, eps, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert (step.size(a) <= eps.flatten() * (1 + 1e-5)).all()
    assert (step.size(a) > 0).all()


@pytest.mark.parametrize("name", NAMES)
def test_a_step_increases_a_linear_loss_by_step_size_times_the_dual_norm(name):
    step = STEPS.create(name)
    x = _batch()
    w = torch.randn(x.shape, generator=torch.Generator().manual_seed(4))  # loss(x) = <w, x>, gradient w
    size = per_image_view(torch.full((x.shape[0],), 0.01), x)
    moved = step.step(x, w, size)
    gain = ((moved - x) * w).flatten(1).sum(1)
    dual = w.flatten(1).abs().sum(1) if name == "linf" else w.flatten(1).norm(dim=1)
    assert (gain > 0).all()
    torch.testing.assert_close(gain, 0.01 * dual, rtol=1e-4, atol=1e-6)
    change = moved - x
    if name == "linf":
        torch.testing.assert_close(change.abs(), torch.full_like(change, 0.01))
    else:
        torch.testing.assert_close(step.size(change), torch.full((x.shape[0],), 0.01))


@pytest.mark.parametrize("name", NAMES)
def test_pgd_stays_within_eps_in_the_steps_norm(name):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48, 10))
    x = _batch()
    y = torch.zeros(x.shape[0], dtype=torch.long)
    adv = pgd(model, x, y, norm=name, eps=0.1, steps=3, generator=torch.Generator().manual_seed(0))
    assert (STEPS.create(name).size(adv - x) <= 0.1 * (1 + 1e-5)).all()
    assert adv.min() >= 0 and adv.max() <= 1


@pytest.mark.parametrize("name", NAMES)
def test_default_step_size_is_madrys_rule(name):
    assert default_step_size(name, 0.5, 10) == pytest.approx(0.125)
    assert default_step_size(name, 0.5, 0) == pytest.approx(1.25)  # zero steps: no division by zero
    eps = torch.tensor([0.1, 0.2])
    torch.testing.assert_close(default_step_size(name, eps, 5), 2.5 * eps / 5)


@pytest.mark.parametrize(
    "call",
    [
        lambda: STEPS.create("l1"),
        lambda: default_step_size("l1", 0.1, 3),
        lambda: pgd(torch.nn.Flatten(), _batch(), torch.zeros(5, dtype=torch.long), norm="l1", eps=0.1, steps=1),
        lambda: nearest_error(torch.nn.Flatten(), _batch(), torch.zeros(5, dtype=torch.long), norm="l1"),
    ],
    ids=["registry", "default_step_size", "pgd", "nearest_error"],
)
def test_an_unknown_norm_names_the_parameter_and_lists_the_valid_norms(call):
    with pytest.raises(UnknownNameError) as info:
        call()
    message = str(info.value)
    assert isinstance(info.value, ConfigError)
    assert message.startswith("norm: unknown norm 'l1'")
    for name in NAMES:
        assert name in message
