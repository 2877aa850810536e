"""Measurements run in float32 unless asked; determinism flags; resuming onto another device type."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from errorset.config import Config, to_dict
from errorset.errors import CheckpointError, ConfigError
from errorset.jobs import train as train_job
from errorset.jobs.common import measuring_job
from errorset.measure import accuracy_in_noise
from errorset.measure.common import (
    autocast_dtype,
    current_precision,
    eval_mode,
    measurement_precision,
    noisy_margins,
)
from errorset.resolve import load_config
from errorset.runtime import derived_seed, make_generator, set_deterministic
from errorset.train import Precision, train_epoch
from errorset.train.checkpoint import TrainState, restore_generator
from errorset.validation import validate

from .conftest import make_config, mlflow_client


class DtypeProbe(nn.Module):
    """A linear classifier that records the dtype its matrix product ran in."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(12, 3)
        self.seen: list[torch.dtype] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.fc(x.flatten(1))
        self.seen.append(out.dtype)
        return out


def test_eval_mode_disables_an_enclosing_autocast_and_restores_everything():
    model = DtypeProbe().train()
    x = torch.rand(4, 3, 2, 2)
    flags = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        model(x)
        with eval_mode(model):
            assert not model.training
            model(x)
            assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == (False, False)
        model(x)
    assert model.seen == [torch.bfloat16, torch.float32, torch.bfloat16]
    assert model.training
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == flags


def test_measurement_precision_autocast_reaches_every_measurement_and_is_reset():
    model = DtypeProbe()
    x = torch.rand(5, 3, 2, 2)
    y = torch.zeros(5, dtype=torch.long)
    accuracy_in_noise(model, x, y, [0.1], 1)
    assert set(model.seen) == {torch.float32}
    model.seen.clear()
    with measurement_precision("autocast"):
        assert current_precision() == "autocast"
        accuracy_in_noise(model, x, y, [0.1], 1)
        with eval_mode(model, precision="float32"):  # an explicit argument wins
            model(x)
    assert set(model.seen[:-1]) == {autocast_dtype(torch.device("cpu"))} == {torch.bfloat16}
    assert model.seen[-1] == torch.float32
    assert current_precision() == "float32"


def test_float32_margins_match_a_plain_float64_computation_and_autocast_ones_do_not():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 64), nn.ReLU(), nn.Linear(64, 10))
    x0 = torch.rand(3, 3, 4, 4)
    y = torch.randint(0, 10, (3,))
    noise = torch.randn(3, 20, 3, 4, 4)
    sigma = torch.full((3,), 0.1)
    ref = model.double().requires_grad_(False)((x0[:, None] + 0.1 * noise).reshape(60, 3, 4, 4).double())
    true = ref.gather(1, y.repeat_interleave(20)[:, None]).squeeze(1)
    want = (ref.scatter(1, y.repeat_interleave(20)[:, None], float("-inf")).amax(1) - true).view(3, 20).float()
    model.float()
    with torch.no_grad(), eval_mode(model):
        got = noisy_margins(model, x0, y, sigma, noise)
    torch.testing.assert_close(got, want.detach(), atol=1e-5, rtol=1e-5)
    with torch.no_grad(), measurement_precision("autocast"), eval_mode(model):
        reduced = noisy_margins(model, x0, y, sigma, noise)
    assert (reduced - want).abs().max() > 1e-4  # bf16 moves margins: why float32 is the rule


def test_precision_settings_are_checked_with_the_key_named():
    wrong = r"measure_precision: expected one of float32, autocast, got 'fp16'"
    with pytest.raises(ConfigError, match=wrong), measurement_precision("fp16"):
        pass
    with (
        pytest.raises(ConfigError, match=r"precision: expected one of float32, autocast"),
        eval_mode(nn.Linear(2, 2), precision="half"),
    ):
        pass
    with pytest.raises(ConfigError, match=r"measure_precision: expected float32 or autocast, got 'bf16'"):
        validate(load_config(None, ["measure_precision=bf16"]))
    cfg = load_config(None, ["measure_precision=autocast", "deterministic=true"])
    assert (cfg.measure_precision, cfg.deterministic) == ("autocast", True)
    assert load_config(None, []).measure_precision == "float32"


def test_a_measuring_job_runs_under_the_configured_precision_and_determinism():
    seen = []

    @measuring_job
    def job(cfg: Config) -> str:
        seen.append(torch.are_deterministic_algorithms_enabled())
        return current_precision()

    try:
        assert job(load_config(None, ["measure_precision=autocast", "deterministic=true"])) == "autocast"
        assert job(load_config(None, [])) == "float32"
    finally:
        set_deterministic(False)
    assert seen == [True, False]
    assert current_precision() == "float32"
    assert not torch.backends.cudnn.deterministic


def test_derived_seeds_are_stable_and_distinct():
    assert derived_seed(0, "noise", 3) == derived_seed(0, "noise", 3)
    seeds = {derived_seed(s, "noise", e) for s in range(3) for e in range(3)}
    assert len(seeds) == 9 and all(0 <= s < 2**63 for s in seeds)


def test_restore_generator_restores_on_the_same_device_type_and_reseeds_on_another():
    saved = torch.Generator().manual_seed(5)
    torch.randn(3, generator=saved)
    state = saved.get_state()
    expected = torch.randn(4, generator=saved)

    gen = torch.Generator()
    assert restore_generator(gen, state, "cpu", 0, "noise", 2) is False
    torch.testing.assert_close(torch.randn(4, generator=gen), expected)

    # a CUDA generator's state (16 bytes: seed and offset) cannot go into a CPU generator
    cuda_state = torch.zeros(16, dtype=torch.uint8)
    with pytest.raises(RuntimeError):
        torch.Generator().set_state(cuda_state)
    a, b = torch.Generator(), torch.Generator()
    assert restore_generator(a, cuda_state, "cuda", 0, "noise", 2) is True
    assert restore_generator(b, cuda_state, None, 0, "noise", 2) is True  # format 1: unknown device, refused state
    torch.testing.assert_close(torch.randn(4, generator=a), torch.randn(4, generator=b))
    c = torch.Generator()
    restore_generator(c, cuda_state, "cuda", 0, "noise", 3)
    a.manual_seed(derived_seed(0, "noise", 2))
    assert not torch.equal(torch.randn(4, generator=c), torch.randn(4, generator=a))


def test_resume_from_a_checkpoint_of_another_device_type_reseeds_and_is_logged(data_root, workdir):
    from .test_train import interrupted_at_epoch

    base = ["train.mode=gaussian", "train.sigma_max=0.3", "train.epochs=3", "tracking.log_model=false"]
    cfg = make_config(data_root, *base, "train.output_dir=killed")
    interrupted_at_epoch(cfg, 1)
    path = workdir / "killed" / "checkpoint.pt"
    state = TrainState.load(path)
    assert state.noise_generator_device == "cpu"
    # what a run on a GPU would have written: a CUDA generator state (a raw RuntimeError in a CPU generator)
    state.noise_generator, state.noise_generator_device = torch.zeros(16, dtype=torch.uint8), "cuda"
    state.save(path)

    again = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, resume=True))
    resumed = train_job.train(again, progress=False)
    tags = mlflow_client().get_run(resumed.run_id).data.tags
    resumed_tags = (tags["resumed_reseeded_generators"], tags["resumed_on"], tags["resumed_from_epoch"])
    assert resumed_tags == ("noise", "cpu", "1")
    assert len(resumed.history) == 3 and resumed.history[0] == state.history[0]
    # the re-seeded stream is derived from the seed and epoch: the same resume twice gives the same model
    state.save(path)
    twice = train_job.train(
        dataclasses.replace(again, train=dataclasses.replace(again.train, output_dir="killed", overwrite=True)),
        progress=False,
    )
    assert [h["train_loss"] for h in twice.history] == [h["train_loss"] for h in resumed.history]


def test_a_checkpoint_without_the_new_keys_still_resumes_with_their_defaults():
    config = to_dict(load_config(None, []))
    old = {k: v for k, v in config.items() if k not in ("measure_precision", "deterministic")}
    state = TrainState(0, {}, {}, {}, torch.zeros(1), torch.zeros(1), old, None)
    train_job.check_resumable(state.config, config)  # no error: the keys did not exist and are at their defaults
    with pytest.raises(CheckpointError, match=r"measure_precision: 'float32' -> 'autocast'"):
        train_job.check_resumable(state.config, {**config, "measure_precision": "autocast"})
    assert dataclasses.fields(TrainState)[-1].name == "noise_generator_device"


@pytest.mark.parametrize("native", [True, False])
def test_training_precision_on_cpu_is_bf16_where_the_cpu_computes_it_and_as_asked_elsewhere(monkeypatch, native):
    from errorset.train import loop

    monkeypatch.setattr(loop, "cpu_has_native_bf16", lambda: native)
    cpu = torch.device("cpu")
    assert Precision.for_device(cpu, None).dtype == (torch.bfloat16 if native else None)
    assert Precision.for_device(cpu, True).dtype == torch.bfloat16 and Precision.for_device(cpu, True).scaler is None
    assert Precision.for_device(cpu, False).dtype is None
    assert Precision.for_device(cpu, False).name == "off" and Precision.for_device(cpu, True).name == "bfloat16"


def test_native_bf16_detection_follows_the_cpu_capability(monkeypatch):
    from errorset import runtime

    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    assert runtime.cpu_has_native_bf16() is False  # no AVX-512: bf16 would be emulated


@pytest.mark.parametrize("mode", ["clean", "adversarial"])
def test_bf16_training_runs_the_update_and_the_attack_in_bf16_and_float32_does_not(mode):
    from errorset.jobs.train import training_transform

    cfg = load_config(None, [f"train.mode={mode}", "train.adversarial.steps=2"]).train
    x = torch.randint(0, 256, (8, 3, 2, 2), dtype=torch.uint8)
    y = torch.randint(0, 3, (8,))
    for enabled, dtype in ((True, torch.bfloat16), (False, torch.float32)):
        torch.manual_seed(0)
        model = DtypeProbe()
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        precision = Precision.for_device(torch.device("cpu"), enabled)
        train_epoch(
            model,
            opt,
            x,
            y,
            transform=training_transform(cfg),
            batch_size=4,
            data_generator=make_generator(1),
            noise_generator=make_generator(2),
            precision=precision,
        )
        passes = 2 * (1 + (2 if mode == "adversarial" else 0))  # 2 batches, each its PGD steps and the update
        assert model.seen == [dtype] * passes
        assert model.fc.weight.dtype == torch.float32  # autocast: the weights stay float32


def test_the_train_job_logs_the_autocast_it_used(data_root):
    cfg = make_config(data_root, "train.epochs=1", "tracking.log_model=false", "train.amp=true")
    run = train_job.train(cfg, progress=False)
    assert mlflow_client().get_run(run.run_id).data.params["train.autocast_dtype"] == "bfloat16"
    off = make_config(
        data_root, "train.epochs=1", "tracking.log_model=false", "train.amp=false", "train.output_dir=fp32"
    )
    run = train_job.train(off, progress=False)
    assert mlflow_client().get_run(run.run_id).data.params["train.autocast_dtype"] == "off"
