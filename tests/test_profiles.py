"""Profiles are dotted-key override dicts, set by the code that sets ``--set`` keys where a key is null."""

from __future__ import annotations

import pytest

from errorset.config import ConfigError, flatten, read_config
from errorset.errors import UnknownNameError
from errorset.profiles import DEFAULT_MODELS, PROFILES, apply_profile, get_profile, profile_overrides
from errorset.resolve import load_config

# values of the profile table before profiles became dotted keys (the Profile dataclass), and the cpu
# recipe since (cifarnet32 on all images, linear schedule, FGSM adversarial training)
PINNED = [
    ("cpu", "cifar10", "model.name", "cifarnet32"),
    ("cpu", "imagefolder", "model.name", "timm:resnet18"),
    ("cpu", "cifar10", "train.schedule", "linear"),
    ("cpu", "cifar10", "train.subset", 0),
    ("cpu", "cifar10", "train.adversarial.steps", 2),
    ("cpu", "cifar10", "train.adversarial.step_size", 1.25 * 8 / 255 / 2),
    ("cpu", "cifar10", "train.nesterov", True),
    ("paper", "cifar10", "train.adversarial.steps", 7),
    ("paper", "cifar10", "train.adversarial.step_size", 2 / 255),
    ("paper", "cifar10", "train.schedule", "step"),
    ("paper", "cifar10", "train.label_smoothing", 0.0),
    ("smoke", "cifar10", "train.adversarial.steps", 7),
    ("cpu", "digits", "eval.n_images", 1000),
    ("cpu", "digits", "train.batch_size", 128),
    ("cpu", "digits", "train.schedule", "step"),
    ("cpu", "digits", "train.milestones", [4, 6, 7]),
    ("cpu", "cifar10", "train.batch_size", 512),
    ("cpu", "cifar10", "analyze.noisy.samples", 64),
    ("cpu", "cifar10", "attack.step_ratio", 4 / 20),
    ("cpu", "cifar10", "sweep.trial_epochs", 3),
    ("cpu", "cifar10", "sweep.trial_subset", 4000),
    ("cpu", "cifar10", "corruptions.n_images", 250),
    ("paper", "cifar10", "model.name", "wrn28_10"),
    ("paper", "imagefolder", "model.name", "timm:inception_v3"),
    ("paper", "cifar10", "train.milestones", [60, 120, 160]),
    ("paper", "cifar10", "train.epochs", 200),
    ("paper", "cifar10", "analyze.nearest.steps", 500),
    ("paper", "cifar10", "analyze.noisy.steps", 200),
    ("paper", "cifar10", "attack.steps", 100),
    ("paper", "cifar10", "attack.step_ratio", 0.04),
    ("paper", "cifar10", "sweep.trial_epochs", None),
    ("paper", "cifar10", "corruptions.n_images", 0),
    ("smoke", "cifar10", "analyze.noisy.samples", 16),
    ("smoke", "imagefolder", "model.name", "resnet8"),
    ("smoke", "digits", "model.name", "mlp"),
    ("smoke", "cifar10", "train.lr", 0.05),
    ("smoke", "cifar10", "train.batch_size", 64),
    ("smoke", "cifar10", "train.milestones", [1]),
    ("smoke", "cifar10", "attack.images", 32),
    ("smoke", "cifar10", "sweep.trial_subset", 256),
    ("smoke", "cifar10", "corruptions.n_images", 64),
]


@pytest.mark.parametrize(("profile", "dataset", "key", "value"), PINNED)
def test_resolved_values_are_those_of_the_profile_table(profile, dataset, key, value):
    cfg = load_config(None, [f"profile={profile}", f"data.name={dataset}"])
    got = flatten(cfg)[key]
    assert got == (pytest.approx(value) if isinstance(value, float) else value)


@pytest.mark.parametrize("name", list(PROFILES))
def test_every_profile_key_is_a_config_key_and_leaves_no_recipe_key_null(name):
    flat = flatten(load_config(None, [f"profile={name}"]))
    assert set(profile_overrides(name, "cifar10")) <= set(flat)
    recipe = ["train.epochs", "train.lr", "eval.n_images", "analyze.noisy.steps", "attack.step_ratio", "model.name"]
    assert all(flat[k] is not None for k in recipe)


@pytest.mark.parametrize("name", list(PROFILES))
def test_profile_overrides_adds_the_datasets_model(name):
    keys = profile_overrides(name, "digits")
    assert keys["model.name"] == DEFAULT_MODELS[name]["digits"]
    assert profile_overrides(name, "unlisted")["model.name"] == "resnet8"
    assert "model.name" not in get_profile(name)


def test_explicit_values_win_and_the_config_is_not_changed():
    cfg = read_config(None, ["profile=smoke", "analyze.noisy.samples=7", "train.milestones=[5]"])
    out = apply_profile(cfg)
    assert out.analyze.noisy.samples == 7 and out.train.milestones == [5]
    assert out.analyze.noisy.steps == 10
    assert cfg.analyze.noisy.steps is None  # a copy


def test_profile_lists_are_not_shared_with_the_config():
    cfg = load_config(None, ["profile=paper"])
    cfg.train.milestones.append(999)
    assert PROFILES["paper"]["train.milestones"] == [60, 120, 160]


def test_a_typo_in_a_profile_fails_as_an_unknown_set_key(monkeypatch):
    with pytest.raises(ConfigError) as from_set:
        read_config(None, ["train.epoch=3"])
    monkeypatch.setitem(PROFILES, "typo", {**PROFILES["cpu"], "train.epoch": 3})
    with pytest.raises(ConfigError) as from_profile:
        apply_profile(read_config(None, ["profile=typo"]))
    assert str(from_profile.value) == f"profile typo: {from_set.value}"
    assert "train.epoch: unknown key; valid keys under train:" in str(from_profile.value)


def test_a_profile_key_below_a_plain_value_is_caught(monkeypatch):
    monkeypatch.setitem(PROFILES, "typo", {"train.mode.x": 3})
    with pytest.raises(ConfigError, match=r"profile typo: train\.mode\.x: train\.mode is not a group of keys"):
        apply_profile(read_config(None, ["profile=typo"]))


def test_a_profile_value_of_the_wrong_type_names_the_key(monkeypatch):
    monkeypatch.setitem(PROFILES, "typo", {"train.epochs": "many"})
    with pytest.raises(ConfigError, match=r"profile typo: train\.epochs: expected an integer or null, got 'many'"):
        apply_profile(read_config(None, ["profile=typo"]))


def test_an_unknown_profile_lists_the_valid_ones():
    with pytest.raises(UnknownNameError, match=r"profile: unknown profile 'gpu'; valid profiles: paper, cpu, smoke"):
        get_profile("gpu")
