from __future__ import annotations

import pytest

from errorset.config import Config, apply_overrides, config_from_dict, flatten, parse_override, read_config
from errorset.errors import ConfigError, UnknownNameError
from errorset.profiles import PROFILES
from errorset.resolve import load_config

from .conftest import REPO


def test_repository_params_file_resolves_to_the_cpu_profile():
    cfg = load_config(REPO / "params.yaml")
    cpu = PROFILES["cpu"]
    assert cfg.profile == "cpu"
    assert cfg.data.name == "cifar10"
    assert cfg.model.name == "cifarnet32"
    assert cfg.train.epochs == cpu["train.epochs"]
    assert cfg.train.schedule == cpu["train.schedule"] == "linear"
    assert cfg.train.adversarial.eps == pytest.approx(8 / 255)
    # PGD-2 from a random start, 1.25 eps in all (Wong et al. 2020's FGSM step, in two)
    assert cfg.train.adversarial.steps == 2
    assert cfg.train.adversarial.step_size == pytest.approx(1.25 * 8 / 255 / 2)
    assert set(cfg.variants) == {"clean", "gaussian-0.1", "gaussian-0.4", "adversarial"}


def test_paper_profile_is_the_papers_cifar_recipe():
    cfg = load_config(REPO / "params.yaml", ["profile=paper"])
    t = cfg.train
    assert cfg.model.name == "wrn28_10"
    assert (t.epochs, t.batch_size, t.lr, t.momentum, t.weight_decay) == (200, 128, 0.1, 0.9, 5e-4)
    assert t.milestones == [60, 120, 160] and t.lr_gamma == 0.2
    assert t.subset == 0 and cfg.eval.n_images == 0


def test_explicit_values_beat_the_profile_and_null_follows_it():
    cfg = load_config(None, ["profile=paper", "train.epochs=3", "model.name=mlp"])
    assert cfg.train.epochs == 3 and cfg.model.name == "mlp"
    assert cfg.train.lr == 0.1  # still the profile's


def test_each_dataset_gets_its_default_model():
    assert load_config(None, ["data.name=digits"]).model.name == "mlp"
    assert load_config(None, ["data.name=cifar10", "profile=paper"]).model.name == "wrn28_10"


def test_l2_adversarial_training_gets_l2_defaults():
    a = load_config(None, ["train.adversarial.norm=l2", "train.adversarial.steps=7"]).train.adversarial
    assert (a.eps, a.step_size) == (0.5, 0.1)
    fgsm = load_config(None, ["train.adversarial.norm=l2", "train.adversarial.steps=1"]).train.adversarial
    assert fgsm.step_size == pytest.approx(1.25 * 0.5)
    assert load_config(None, ["train.adversarial.steps=6"]).train.adversarial.step_size == pytest.approx(2 / 255)
    explicit = load_config(None, ["train.adversarial.steps=1", "train.adversarial.step_size=0.01"]).train.adversarial
    assert explicit.step_size == 0.01


@pytest.mark.parametrize(
    ("text", "key", "value"),
    [
        ("train.epochs=3", "train.epochs", 3),
        ("train.lr=0.001", "train.lr", 1e-3),
        ("eval.sigmas=[0.1,0.2]", "eval.sigmas", [0.1, 0.2]),
        ("train.output_dir=null", "train.output_dir", None),
        ("train.resume=true", "train.resume", True),
        ("tracking.run_name=a b", "tracking.run_name", "a b"),
    ],
)
def test_parse_override_reads_yaml_values(text, key, value):
    assert parse_override(text) == (key, value)


def test_fractions_and_exponents_are_accepted_for_numbers():
    cfg = load_config(None, ["train.adversarial.eps=8/255", "train.sigma_max=1/10", "train.lr=1e-3"])
    assert cfg.train.adversarial.eps == pytest.approx(8 / 255)
    assert cfg.train.sigma_max == pytest.approx(0.1)
    assert cfg.train.lr == pytest.approx(1e-3)


def test_one_set_argument_may_hold_several_pairs():
    raw = apply_overrides({}, ["train.mode=gaussian train.sigma_max=0.4", ""])
    assert raw == {"train": {"mode": "gaussian", "sigma_max": 0.4}}
    raw = apply_overrides({}, ["sweep.space={train.sigma_max: {low: 0, high: 1}} sweep.n_trials=3"])
    assert raw == {"sweep": {"space": {"train.sigma_max": {"low": 0, "high": 1}}, "n_trials": 3}}


def test_unknown_key_lists_valid_keys():
    with pytest.raises(ConfigError, match=r"train\.epoch: unknown key; valid keys under train: mode, sigma_max"):
        load_config(None, ["train.epoch=3"])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.epochs=three", r"train\.epochs: expected an integer"),
        ("train.sigma_max=abc", r"train\.sigma_max: expected a number"),
        ("train.sigma_max=.nan", r"train\.sigma_max: expected a finite number"),
        ("train.resume=maybe", r"train\.resume: expected true or false"),
        ("eval.sigmas=0.1", r"eval\.sigmas: expected a list of number"),
        ("train=3", r"train: expected a mapping"),
        ("novalue", r"--set: expected KEY=VALUE"),
    ],
)
def test_wrong_types_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.sigma_max=-0.1", r"train\.sigma_max: expected a number >= 0, got -0\.1"),
        ("train.epochs=0", r"train\.epochs: expected an integer >= 1"),
        ("train.lr=0", r"train\.lr: expected a number > 0"),
        ("train.adversarial.eps=-1", r"train\.adversarial\.eps: expected a number >= 0"),
        ("eval.trials=0", r"eval\.trials: expected an integer >= 1"),
        ("eval.sigmas=[]", r"eval\.sigmas: expected a non-empty list"),
        ("eval.sigmas=[-0.1]", r"eval\.sigmas: expected numbers >= 0"),
        ("device=gpu0", r"device: expected auto, cpu"),
        ("attack.restarts=0", r"attack\.restarts: expected an integer >= 1, got 0"),
    ],
)
def test_out_of_range_values_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.name=resnet9000x", r"model\.name: unknown model 'resnet9000x'; valid models: linear, mlp, cifarnet<"),
        ("data.name=mnist", r"data\.name: unknown dataset 'mnist'; valid datasets: cifar10, digits, imagefolder"),
        ("train.mode=mixup", r"train\.mode: unknown training mode 'mixup'; valid training modes: adversarial"),
        ("profile=gpu", r"profile: unknown profile 'gpu'; valid profiles: paper, cpu, smoke"),
        ("train.adversarial.norm=l1", r"train\.adversarial\.norm: unknown norm 'l1'; valid norms: l2, linf"),
        ("analyze.nearest.norm=l1", r"analyze\.nearest\.norm: unknown norm 'l1'; valid norms: l2, linf"),
        (
            "train.adversarial.attack_mode=both",
            r"train\.adversarial\.attack_mode: unknown mode 'both'; valid modes: eval, train",
        ),
    ],
)
def test_unknown_names_list_the_valid_ones(override, message):
    plain = "norm" in override or "attack_mode" in override
    with pytest.raises(ConfigError if plain else UnknownNameError, match=message):
        load_config(None, [override])


def test_missing_or_malformed_params_file(tmp_path):
    with pytest.raises(ConfigError, match="--params: no such file"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_config(bad)


def test_flatten_gives_dotted_keys():
    flat = flatten(config_from_dict({"train": {"mode": "gaussian"}}))
    assert flat["train.mode"] == "gaussian"
    assert flat["train.adversarial.steps"] is None  # the profile's: 7 for paper, 1 for cpu
    assert flat["train.adversarial.attack_mode"] == "eval"
    assert flat["attack.restarts"] == 1
    assert flat["data.cifar10.download"] is True


def test_defaults_match_params_yaml_except_where_it_says_so():
    """params.yaml spells out the defaults: loading it changes nothing but the variants."""
    from dataclasses import replace

    from_file = read_config(REPO / "params.yaml")
    assert replace(from_file, variants={}) == Config()


def test_restarts_need_a_random_start():
    with pytest.raises(ConfigError, match=r"attack\.restarts: restarts > 1 need attack\.random_start: true"):
        load_config(None, ["attack.restarts=2", "attack.random_start=false"])


def test_params_yaml_keeps_its_comments_through_dvc_exp_run_set(tmp_path):
    """`dvc exp run -S KEY=VALUE` rewrites params.yaml (DVC's round trip, which keeps comments); only KEY changes."""
    pytest.importorskip("hydra")
    from dvc.utils.hydra import apply_overrides as dvc_apply_overrides

    original = (REPO / "params.yaml").read_text()
    path = tmp_path / "params.yaml"
    path.write_text(original)
    dvc_apply_overrides(str(path), ["analyze.images=20"])

    def comments(text: str) -> list[str]:
        return [line[line.index("#") :] for line in text.splitlines() if "#" in line]

    assert comments(path.read_text()) == comments(original)
    assert path.read_text().startswith("# What each key means: ")
    before, after = flatten(load_config(REPO / "params.yaml")), flatten(load_config(path))
    assert {k for k in before if before[k] != after[k]} == {"analyze.images"}
