from __future__ import annotations

import dataclasses

import pytest
import torch

from errorset.data import file_md5
from errorset.errors import CheckpointError, TrainingDiverged
from errorset.jobs import train as train_job
from errorset.models import load_model
from errorset.train import fit as fit_loop
from errorset.train.checkpoint import TrainState
from errorset.train.modes import MODES

from .conftest import logged_config, make_config, mlflow_client


def metric_steps(run_id: str, key: str) -> list[int]:
    return sorted(m.step for m in mlflow_client().get_metric_history(run_id, key))


def test_digits_reaches_90_percent_with_the_default_recipe(data_root, workdir):
    cfg = make_config(data_root, profile="cpu")
    assert cfg.model.name == "mlp"
    result = train_job.train(cfg, progress=False)
    assert result.test_accuracy >= 0.90
    # the saved model gives the same accuracy on the full test split
    from errorset.data import load_dataset
    from errorset.measure import accuracy

    data = load_dataset(cfg.data)
    x, y = data.tensors("test")
    assert accuracy(load_model(result.model_path), x, y) == pytest.approx(result.test_accuracy)


def test_training_run_is_fully_logged_to_mlflow(data_root, workdir):
    import mlflow

    cfg = make_config(data_root, "train.mode=gaussian", "train.sigma_max=0.4", "train.epochs=3")
    result = train_job.train(cfg, progress=False)
    run = mlflow_client().get_run(result.run_id)
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "gaussian-0.4 · train · digits/mlp"
    p = run.data.params
    assert p["train.mode"] == "gaussian" and p["train.sigma_max"] == "0.4"
    assert p["model.name"] == "mlp" and p["profile"] == "smoke"
    assert p["data.md5"] == file_md5(data_root / "digits.npz")
    logged = logged_config(result.run_id)
    assert logged["train"]["epochs"] == 3 and logged["train"]["milestones"] == [1]  # the rest of the config
    assert run.data.tags["mode"] == "gaussian" and run.data.tags["dataset"] == "digits"
    assert run.data.tags["model"] == "mlp"
    for key in ("train_loss", "train_accuracy", "test_accuracy", "lr"):
        assert metric_steps(result.run_id, key) == [0, 1, 2]
    history = mlflow_client().get_metric_history(result.run_id, "test_accuracy")
    assert [m.value for m in sorted(history, key=lambda m: m.step)] == pytest.approx(
        [h["test_accuracy"] for h in result.history]
    )
    lrs = [m.value for m in sorted(mlflow_client().get_metric_history(result.run_id, "lr"), key=lambda m: m.step)]
    assert lrs == pytest.approx([0.05, 0.01, 0.01])  # x0.2 after epoch 1 (the smoke profile)
    artifacts = {a.path for a in mlflow_client().list_artifacts(result.run_id, "checkpoints")}
    assert artifacts == {"checkpoints/model.pt", "checkpoints/checkpoint.pt"}
    assert "config.yaml" in {a.path for a in mlflow_client().list_artifacts(result.run_id)}
    logged = mlflow.pytorch.load_model(f"runs:/{result.run_id}/model")
    ours = load_model(result.model_path)
    x = torch.rand(6, 1, 8, 8)
    torch.testing.assert_close(logged(x), ours(x))


def test_adversarial_training_logs_its_attack_in_the_run_name_and_params(data_root, workdir):
    cfg = make_config(data_root, "train.mode=adversarial", "train.epochs=1", "tracking.log_model=false")
    result = train_job.train(cfg, progress=False)
    run = mlflow_client().get_run(result.run_id)
    assert run.info.run_name == "adversarial-linf-0.0314 · train · digits/mlp"
    assert run.data.params["train.adversarial.eps"] == str(8 / 255)
    assert run.data.params["train.adversarial.norm"] == "linf"


@pytest.mark.parametrize("mode", MODES.names())
def test_every_training_mode_transforms_the_batch_as_its_name_says(mode):
    """clean: the batch itself; gaussian: per-image noise of sigma ~ U(0, sigma_max); adversarial: a PGD
    example within eps (L-inf) and [0,1] whose loss is higher than the clean batch's."""
    from scipy import stats
    from torch import nn

    from errorset.config import AdversarialConfig, TrainConfig
    from errorset.jobs.train import training_transform

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 10))
    x, y = torch.rand(200, 3, 16, 16), torch.randint(0, 10, (200,))
    sigma_max, eps = 0.3, 0.05
    t = TrainConfig(mode=mode, sigma_max=sigma_max, adversarial=AdversarialConfig(eps=eps, step_size=eps / 4, steps=10))
    out = training_transform(t)(model, x, y, torch.Generator().manual_seed(1))
    assert out.shape == x.shape
    if mode == "clean":
        assert torch.equal(out, x)
    elif mode == "gaussian":
        noise = (out - x).flatten(1)
        sigma = noise.std(1)  # 768 draws per image: about 2.5% relative error
        assert noise.mean().abs() < 0.005
        # the per-image sigmas are uniform on [0, sigma_max] (Kolmogorov-Smirnov)
        assert stats.kstest(sigma.numpy(), stats.uniform(0, sigma_max).cdf).pvalue > 0.01
        assert sigma.max() <= sigma_max * 1.1
    elif mode == "adversarial":
        assert (out - x).abs().max() <= eps + 1e-6 and out.min() >= 0 and out.max() <= 1
        loss = nn.functional.cross_entropy
        with torch.no_grad():
            assert loss(model(out), y) > loss(model(x), y) + 0.01
            per_image = loss(model(out), y, reduction="none") >= loss(model(x), y, reduction="none")
        assert per_image.float().mean() > 0.95
    else:
        pytest.fail(f"training mode {mode!r} needs a check of what it does here")


def interrupted_at_epoch(cfg, stop_epoch: int) -> None:
    """Train ``cfg`` but raise KeyboardInterrupt (as SIGTERM or Ctrl-C would) when epoch ``stop_epoch`` starts."""
    real = fit_loop.train_epoch

    def wrapped(*args, **kwargs):
        if kwargs["epoch"] == stop_epoch:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(fit_loop, "train_epoch", wrapped)
        with pytest.raises(KeyboardInterrupt):
            train_job.train(cfg, progress=False)


def test_resume_continues_the_same_run_and_matches_an_uninterrupted_one(data_root, workdir):
    base = ["train.mode=gaussian", "train.sigma_max=0.3", "train.epochs=3", "tracking.log_model=false"]
    full = train_job.train(make_config(data_root, *base, "train.output_dir=full"), progress=False)

    cfg = make_config(data_root, *base, "train.output_dir=killed")
    interrupted_at_epoch(cfg, 2)
    state = TrainState.load(workdir / "killed" / "checkpoint.pt")
    assert state.epoch == 2
    assert mlflow_client().get_run(state.run_id).info.status == "KILLED"
    assert not (workdir / "killed" / "model.pt").exists()

    resumed = train_job.train(
        dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, resume=True)), progress=False
    )
    assert resumed.run_id == state.run_id
    assert mlflow_client().get_run(resumed.run_id).info.status == "FINISHED"
    assert metric_steps(resumed.run_id, "train_loss") == [0, 1, 2]
    # same seeds, restored generators: the resumed model is the uninterrupted one
    a, b = load_model(full.model_path), load_model(resumed.model_path)
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        torch.testing.assert_close(pa, pb, msg=name)
    assert [h["train_loss"] for h in resumed.history] == pytest.approx([h["train_loss"] for h in full.history])


def test_resume_refuses_a_different_configuration(data_root, workdir):
    cfg = make_config(data_root, "train.epochs=2", "train.output_dir=out", "tracking.log_model=false")
    interrupted_at_epoch(cfg, 1)
    changed = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, weight_decay=0.5, resume=True))
    with pytest.raises(
        CheckpointError,
        match=r"train\.resume: the checkpoint was made with a different configuration \(.*weight_decay: .* -> 0\.5",
    ):
        train_job.train(changed, progress=False)
    with pytest.raises(CheckpointError, match=r"train\.resume: no checkpoint at elsewhere"):
        train_job.train(make_config(data_root, "train.output_dir=elsewhere", "train.resume=true"), progress=False)


def test_an_earlier_run_is_never_overwritten_silently(data_root, workdir):
    cfg = make_config(data_root, "train.epochs=1", "train.output_dir=out", "tracking.log_model=false")
    first = train_job.train(cfg, progress=False)
    before = (workdir / "out" / "model.pt").read_bytes()
    with pytest.raises(CheckpointError, match=r"train\.output_dir: out already holds checkpoint\.pt and model\.pt"):
        train_job.train(cfg, progress=False)
    assert (workdir / "out" / "model.pt").read_bytes() == before
    again = train_job.train(
        dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, overwrite=True)), progress=False
    )
    assert again.run_id != first.run_id


def test_nan_loss_stops_marks_the_run_failed_and_keeps_the_last_good_checkpoint(data_root, workdir, monkeypatch):
    cfg = make_config(data_root, "train.epochs=3", "train.output_dir=out", "tracking.log_model=false")
    real = fit_loop.train_epoch

    def poisoned(*args, **kwargs):
        if kwargs["epoch"] == 1:  # the second epoch sees NaN inputs
            kwargs["transform"] = lambda model, x, y, g: x * float("nan")
        return real(*args, **kwargs)

    monkeypatch.setattr(fit_loop, "train_epoch", poisoned)
    with pytest.raises(
        TrainingDiverged,
        match=r"train\.lr: the training loss became nan at epoch 2.*FAILED.*last good checkpoint \(epoch 1\) is kept",
    ):
        train_job.train(cfg, progress=False)
    state = TrainState.load(workdir / "out" / "checkpoint.pt")
    assert state.epoch == 1
    assert all(torch.isfinite(v).all() for v in state.model.values() if v.is_floating_point())
    assert mlflow_client().get_run(state.run_id).info.status == "FAILED"
    assert metric_steps(state.run_id, "train_loss") == [0]


@pytest.mark.parametrize(("attack_mode", "per_step"), [("eval", 1), ("train", 3 + 1)])
def test_adversarial_training_moves_batchnorm_statistics_once_per_step_in_eval_mode(attack_mode, per_step):
    """attack_mode=eval: the PGD forward passes leave BN alone, only the update moves it (train: steps + 1)."""
    from torch import nn

    from errorset.train.loop import train_epoch
    from errorset.train.modes import MODES

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
    transform = MODES.create("adversarial", norm="linf", eps=0.05, step_size=0.02, steps=3, attack_mode=attack_mode)
    x, y = torch.rand(40, 1, 4, 4), torch.arange(40) % 3
    bn = model[2]
    before = bn.running_mean.clone()
    train_epoch(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1),
        x,
        y,
        transform=transform,
        batch_size=10,
        data_generator=torch.Generator().manual_seed(0),
        noise_generator=torch.Generator().manual_seed(1),
    )
    assert int(bn.num_batches_tracked) == 4 * per_step  # 4 training steps
    assert not torch.equal(bn.running_mean, before)
    assert model.training  # train mode restored for the update
