"""The cpu profile's recipe: cifarnet's whitening stem, the linear schedule, label smoothing, Nesterov, resume."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from errorset.jobs import train as train_job
from errorset.models import create_model, load_model, save_model
from errorset.models.cifarnet import CifarNet
from errorset.runtime import make_generator
from errorset.train import train_epoch
from errorset.train.fit import Fit, Schedule
from errorset.train.modes import MODES

from .conftest import make_config


def correlated_images(n: int = 400, seed: int = 0) -> torch.Tensor:
    """Smooth, colour-correlated images: neighbouring pixels and channels far from independent."""
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(n, 1, 8, 8, generator=g)
    colour = torch.tensor([1.0, 0.8, 0.5]).view(1, 3, 1, 1) + 0.3 * torch.randn(n, 3, 1, 1, generator=g)
    x = F.interpolate(base, size=32, mode="bilinear", align_corners=False) * colour
    return x + 0.05 * torch.randn(n, 3, 32, 32, generator=g)


def patches(x: torch.Tensor) -> torch.Tensor:
    """Every 2x2 patch of ``x`` as a row of 12 values (channel-major, as a 2x2 convolution reads them)."""
    return x.unfold(2, 2, 1).unfold(3, 2, 1).permute(0, 2, 3, 1, 4, 5).reshape(-1, 12).double()


def test_the_whitening_stem_decorrelates_2x2_patches_of_the_images_it_was_set_from():
    x = correlated_images()
    raw = torch.cov(patches(x).T)
    assert (raw - torch.diag(torch.diag(raw))).abs().max() > 0.5 * torch.diag(raw).max()  # far from white
    net = CifarNet(3, 10, width=8)
    net.init_from_data(x, eps=1e-9)
    out = F.conv2d(x.double(), net.whiten_weight.double(), net.whiten_bias.double())  # the stem before GELU
    first = out[:, :12].permute(0, 2, 3, 1).reshape(-1, 12)
    torch.testing.assert_close(first.mean(0), torch.zeros(12, dtype=torch.float64), atol=1e-4, rtol=0)
    torch.testing.assert_close(torch.cov(first.T, correction=0), torch.eye(12, dtype=torch.float64), atol=2e-3, rtol=0)
    torch.testing.assert_close(out[:, 12:], -out[:, :12])  # and their negatives, so GELU passes both signs


def test_the_whitening_is_fixed_by_training_and_kept_by_save_and_load(tmp_path):
    torch.manual_seed(0)
    model = create_model("cifarnet8", input_shape=(3, 32, 32), num_classes=10)
    assert model.init_from_data(correlated_images(64).clamp(0, 1))
    stem = model.net.whiten_weight.clone()
    assert not any(p is model.net.whiten_weight for p in model.parameters())
    assert not any(m.weight.requires_grad for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    x = torch.randint(0, 256, (32, 3, 32, 32), dtype=torch.uint8)
    y = torch.randint(0, 10, (32,))
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    before = model.net.head.weight.clone()
    kwargs = dict(batch_size=16, data_generator=make_generator(1), noise_generator=make_generator(2))
    train_epoch(model, opt, x, y, transform=MODES.create("clean"), **kwargs)
    assert not torch.equal(model.net.head.weight, before)  # trained ...
    torch.testing.assert_close(model.net.whiten_weight, stem, rtol=0, atol=0)  # ... but not the stem
    loaded = load_model(save_model(model, tmp_path / "m.pt"))
    torch.testing.assert_close(loaded.net.whiten_weight, stem, rtol=0, atol=0)
    assert not create_model("mlp", input_shape=(1, 8, 8), num_classes=10).init_from_data(torch.rand(4, 1, 8, 8))


def test_the_linear_schedule_warms_up_then_decays_to_zero():
    s = Schedule(lr=0.8, kind="linear", warmup_fraction=0.2, epochs=10)
    assert [s.lr_at(t) for t in (0.0, 1.0, 2.0, 6.0, 10.0)] == pytest.approx([0.0, 0.4, 0.8, 0.4, 0.0])
    assert Schedule(lr=0.1).per_step is None  # the step schedule is set per epoch, by the epoch scheduler
    with pytest.raises(ValueError, match=r"warmup_fraction: expected a number in \[0, 1\), got 1"):
        Schedule(lr=0.1, kind="linear", warmup_fraction=1, epochs=3)
    with pytest.raises(ValueError, match=r"kind: unknown schedule 'cosine'; valid schedules: step, linear"):
        Schedule(lr=0.1, kind="cosine")


def test_train_epoch_sets_the_rate_of_every_step_and_fit_passes_nesterov():
    torch.manual_seed(0)
    model = create_model("mlp", input_shape=(1, 8, 8), num_classes=3)
    schedule = Schedule(lr=0.3, momentum=0.9, kind="linear", warmup_fraction=0.25, epochs=4, nesterov=True)
    fit = Fit(model, schedule, device=torch.device("cpu"), amp=False, seed=0)
    assert fit.optimizer.param_groups[0]["nesterov"] is True
    seen: list[float] = []
    real_step = fit.optimizer.step

    def step(*args, **kwargs):
        seen.append(fit.optimizer.param_groups[0]["lr"])
        return real_step(*args, **kwargs)

    fit.optimizer.step = step  # type: ignore[method-assign]
    x, y = torch.rand(40, 1, 8, 8), torch.randint(0, 3, (40,))
    for epoch in range(2):
        train_epoch(
            model,
            fit.optimizer,
            x,
            y,
            transform=MODES.create("clean"),
            batch_size=10,
            data_generator=make_generator(1),
            noise_generator=make_generator(2),
            lr_at=schedule.per_step,
            epoch=epoch,
        )
    assert seen == pytest.approx([schedule.lr_at(e + i / 4) for e in range(2) for i in range(4)])
    assert seen[:5] == pytest.approx([0.0, 0.075, 0.15, 0.225, 0.3])


def test_label_smoothing_reaches_the_loss():
    torch.manual_seed(0)
    model = create_model("linear", input_shape=(1, 4, 4), num_classes=5)
    x, y = torch.rand(20, 1, 4, 4), torch.randint(0, 5, (20,))
    with torch.no_grad():
        logp = F.log_softmax(model(x), 1)
    eps = 0.2
    # (1 - eps) x cross-entropy + eps x the mean over classes of -log p: label smoothing by hand
    expected = float(((1 - eps) * -logp.gather(1, y[:, None]).squeeze(1) - eps * logp.mean(1)).mean())
    opt = torch.optim.SGD(model.parameters(), lr=0.0)  # no update: the loss is the initial model's
    kwargs = dict(batch_size=20, data_generator=make_generator(1), noise_generator=make_generator(2))
    smoothed = train_epoch(model, opt, x, y, transform=MODES.create("clean"), label_smoothing=eps, **kwargs)
    plain = train_epoch(model, opt, x, y, transform=MODES.create("clean"), **kwargs)
    assert smoothed.loss == pytest.approx(expected, rel=1e-5)
    assert plain.loss == pytest.approx(float(-logp.gather(1, y[:, None]).mean()), rel=1e-5)
    assert not math.isclose(smoothed.loss, plain.loss, rel_tol=1e-3)


LINEAR = [
    "train.schedule=linear",
    "train.warmup_fraction=0.3",
    "train.nesterov=true",
    "train.label_smoothing=0.1",
    "train.epochs=3",
    "tracking.log_model=false",
]


def test_a_run_with_the_linear_schedule_resumes_exactly(data_root, workdir):
    from .test_train import interrupted_at_epoch

    full = train_job.train(make_config(data_root, *LINEAR, "train.output_dir=full"), progress=False)
    lrs = [h["lr"] for h in full.history]
    assert lrs[0] > lrs[1] > lrs[2] >= 0  # the last step of each epoch, on the way down to 0
    cfg = make_config(data_root, *LINEAR, "train.output_dir=killed")
    interrupted_at_epoch(cfg, 1)
    resumed = train_job.train(
        dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, resume=True)), progress=False
    )
    a, b = load_model(full.model_path), load_model(resumed.model_path)
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        torch.testing.assert_close(pa, pb, msg=name, rtol=0, atol=0)
    assert [h["lr"] for h in resumed.history] == lrs


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.schedule=cosine", r"train\.schedule: expected one of step, linear, got 'cosine'"),
        ("train.warmup_fraction=1", r"train\.warmup_fraction: expected a number in \[0, 1\), got 1"),
        ("train.label_smoothing=-0.1", r"train\.label_smoothing: expected a number in \[0, 1\), got -0.1"),
        ("train.adversarial.steps=0", r"train\.adversarial\.steps: expected an integer >= 1, got 0"),
    ],
)
def test_bad_recipe_values_get_one_error_naming_the_key(override, message):
    from errorset.errors import ConfigError
    from errorset.resolve import load_config

    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])
