"""Named training recipes ("profiles").

A profile is a dict of dotted config keys, the keys of ``params.yaml`` and ``--set``
(``"train.epochs": 200``, ``"analyze.noisy.steps": 200``). :func:`apply_profile` sets them
with :func:`errorset.config.set_keys`, the code that sets ``--set`` overrides, but only on keys
that are still ``null``: explicit values in ``params.yaml`` or ``--set`` always win. A profile
key that is not a config key fails as an unknown ``--set`` key does, naming it.

The model depends on the dataset too: ``DEFAULT_MODELS[profile][dataset]`` is the
``model.name`` a profile sets (``resnet8`` for a dataset it does not list), and
``DATASET_KEYS[profile][dataset]`` holds the keys that differ for a dataset; both are added to
the profile's keys by :func:`profile_overrides`. Two defaults follow from other keys and are
filled after the profile's keys, by small functions below: ``attack.step_ratio`` (4 / ``attack.steps``)
and ``train.adversarial.eps`` / ``step_size`` (the norm's ``train_defaults`` in
:data:`errorset.attacks.steps.STEPS`; 1.25 eps for a single step).

``paper``
    Ford et al. (2019), following Madry et al.: SGD with momentum 0.9,
    learning rate 0.1, weight decay 5e-4, batch 128, 200 epochs, learning rate
    x0.2 after epochs 60, 120 and 160, PGD-7 adversarial training; WRN-28-10 on
    CIFAR-10 and Inception-v3 (timm) on image folders; full training and test sets.
``cpu`` (the default)
    A short recipe for a 2-core CPU with bf16 (the ideas of airbench, written anew):
    ``cifarnet32`` on all 50,000 CIFAR-10 training images for 10 epochs, batch 512,
    SGD with Nesterov momentum 0.9, weight decay 5e-4, label smoothing 0.2, the rate
    warming up linearly to 0.8 over the first 20% of the steps and then falling
    linearly to 0; adversarial training with PGD-2 from a random start (steps of
    0.625 eps, 1.25 eps in all as Wong et al.'s FGSM) instead of PGD-7. Digits keep the earlier recipe
    (:data:`DATASET_KEYS`). Evaluation on 1,000 test images; the measurements of
    ``analyze`` and ``attack`` use fewer images and gradient steps than the paper,
    but the paper's 1,000 noise samples for sigma(x0, mu) (``analyze.max_rel_error``;
    every run logs the values used).
``smoke``
    A few hundred images and two epochs: the pipeline end to end in seconds,
    for tests (still 1,000 noise samples for sigma(x0, mu): fewer fail validation).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from errorset.config import Config, config_from_dict, set_keys, to_dict
from errorset.errors import ConfigError, UnknownNameError

#: the optimiser of Madry et al. and Ford et al., shared by paper and cpu
_SGD = {"train.batch_size": 128, "train.lr": 0.1, "train.momentum": 0.9, "train.weight_decay": 5e-4}
#: ... with its step schedule, plain momentum, no label smoothing, and PGD-7 adversarial training
_MADRY = {
    "train.schedule": "step",
    "train.warmup_fraction": 0.0,
    "train.nesterov": False,
    "train.label_smoothing": 0.0,
    "train.adversarial.steps": 7,
}

#: profile -> dotted config key -> the value it takes where it is null
#: (train.subset, train.test_images, eval.n_images, corruptions.n_images: 0 = all images)
PROFILES: dict[str, dict[str, Any]] = {
    "paper": {
        "train.epochs": 200,
        **_SGD,
        **_MADRY,
        "train.milestones": [60, 120, 160],
        "train.lr_gamma": 0.2,
        "train.subset": 0,
        "train.test_images": 0,
        "eval.n_images": 0,
        "analyze.images": 1000,
        "analyze.samples": 1000,
        "analyze.nearest.steps": 500,
        "analyze.noisy.images": 100,
        "analyze.noisy.samples": 1000,
        "analyze.noisy.steps": 200,
        "attack.images": 1000,
        "attack.steps": 100,
        # sweep.trial_epochs and sweep.trial_subset stay null: each trial trains with the recipe above
        "corruptions.n_images": 0,
    },
    "cpu": {
        # a short recipe in the manner of the fastest CIFAR-10 training (airbench): all 50,000 images,
        # large batches, Nesterov momentum, label smoothing, linear warm-up then linear decay to 0
        "train.epochs": 10,
        "train.batch_size": 512,
        "train.lr": 0.8,
        "train.momentum": 0.9,
        "train.weight_decay": 5e-4,
        "train.schedule": "linear",
        "train.warmup_fraction": 0.2,
        "train.nesterov": True,
        "train.label_smoothing": 0.2,
        "train.milestones": [],
        "train.lr_gamma": 0.2,
        # PGD-2 from a random start, steps of 0.625 eps: 3 passes per step, not PGD-7's 8. FGSM (one step of
        # 1.25 eps, Wong et al. 2020) overfits catastrophically with this recipe: clean test accuracy fell to
        # 0.095-0.127 after epochs 2-4 while the accuracy on its own FGSM examples rose to 0.88
        "train.adversarial.steps": 2,
        "train.subset": 0,
        "train.test_images": 2000,
        "eval.n_images": 1000,
        "analyze.images": 50,
        "analyze.samples": 1000,
        "analyze.nearest.steps": 100,
        "analyze.noisy.images": 8,
        "analyze.noisy.samples": 64,
        "analyze.noisy.steps": 100,
        "attack.images": 200,
        "attack.steps": 20,
        "sweep.trial_epochs": 3,
        "sweep.trial_subset": 4000,
        # eval-corruptions / make-corruptions: 19 corruptions x 5 severities x 4 storage formats is 380 passes
        "corruptions.n_images": 250,
    },
    "smoke": {
        "train.epochs": 2,
        "train.batch_size": 64,
        "train.lr": 0.05,
        "train.momentum": 0.9,
        "train.weight_decay": 5e-4,
        "train.milestones": [1],
        "train.lr_gamma": 0.2,
        **_MADRY,
        "train.subset": 512,
        "train.test_images": 256,
        "eval.n_images": 128,
        "analyze.images": 16,
        "analyze.samples": 1000,
        "analyze.nearest.steps": 20,
        "analyze.noisy.images": 2,
        "analyze.noisy.samples": 16,
        "analyze.noisy.steps": 10,
        "attack.images": 32,
        "attack.steps": 5,
        "sweep.trial_epochs": 1,
        "sweep.trial_subset": 256,
        "corruptions.n_images": 64,
    },
}

#: profile -> data.name -> the model.name it sets (FALLBACK_MODEL for datasets not listed)
DEFAULT_MODELS: dict[str, dict[str, str]] = {
    "paper": {"cifar10": "wrn28_10", "digits": "mlp", "imagefolder": "timm:inception_v3"},
    "cpu": {"cifar10": "cifarnet32", "digits": "mlp", "imagefolder": "timm:resnet18"},
    "smoke": {"cifar10": "resnet8", "digits": "mlp", "imagefolder": "resnet8"},
}
FALLBACK_MODEL = "resnet8"

#: profile -> data.name -> keys that differ from the profile's for that dataset (they win over the profile's).
#: The cpu recipe's 512-image batches give scikit-learn's 1,437 training digits 3 steps an epoch: digits
#: keep the cpu profile's earlier recipe (SGD, batch 128, lr 0.1, 8 epochs, x0.2 after 4, 6 and 7).
DATASET_KEYS: dict[str, dict[str, dict[str, Any]]] = {
    "cpu": {
        "digits": {
            "train.epochs": 8,
            **_SGD,
            **_MADRY,
            "train.milestones": [4, 6, 7],
        },
    },
}


def get_profile(name: str) -> dict[str, Any]:
    """The dotted keys of profile ``name`` (without ``model.name``: see :func:`profile_overrides`)."""
    if name not in PROFILES:
        raise UnknownNameError(f"profile: unknown profile {name!r}; valid profiles: {', '.join(PROFILES)}")
    return PROFILES[name]


def profile_overrides(name: str, dataset: str) -> dict[str, Any]:
    """Every dotted key profile ``name`` sets on a config of ``dataset``: its keys, the dataset's
    (:data:`DATASET_KEYS`) and ``model.name``."""
    keys = get_profile(name)
    return {
        **keys,
        **DATASET_KEYS.get(name, {}).get(dataset, {}),
        "model.name": DEFAULT_MODELS.get(name, {}).get(dataset, FALLBACK_MODEL),
    }


def apply_profile(cfg: Config) -> Config:
    """Return a copy of ``cfg`` with every ``null`` key of its profile set, then the derived defaults."""
    overrides = profile_overrides(cfg.profile, cfg.data.name)
    raw = set_keys(to_dict(cfg), overrides.items(), source=f"profile {cfg.profile}:", only_null=True)
    try:
        filled = config_from_dict(raw)
    except ConfigError as e:  # a profile key that is not a config key, or a value of the wrong type
        raise ConfigError(f"profile {cfg.profile}: {e}") from None
    return _default_adversarial(_default_step_ratio(filled))


def _default_step_ratio(cfg: Config) -> Config:
    """attack.step_ratio null: 4 / attack.steps (the paper: 100 steps of eps/25)."""
    a = cfg.attack
    if a.step_ratio is not None:
        return cfg
    ratio = 4 / a.steps if a.steps else None
    return dataclasses.replace(cfg, attack=dataclasses.replace(a, step_ratio=ratio))


#: Wong, Rice and Kolter (2020), "Fast is better than free": FGSM from a random start with a step of 1.25 eps
FGSM_STEP_RATIO = 1.25


def _default_adversarial(cfg: Config) -> Config:
    """train.adversarial.eps and step_size null: the norm's training defaults; a step size of at least
    1.25 eps / steps (one step: Wong et al.'s FGSM, 1.25 eps; two: 0.625 eps; seven: Madry's 2/255)."""
    from errorset.attacks.steps import STEPS

    a = cfg.train.adversarial
    # each norm's step holds Madry et al.'s CIFAR-10 settings (L-inf 8/255, steps of 2/255; L2 0.5, steps of 0.1)
    eps, step = STEPS.create(a.norm).train_defaults if a.norm in STEPS else (None, None)
    eps = a.eps if a.eps is not None else eps
    if a.steps and eps is not None and step is not None:
        # fewer steps than Madry's 7 cover at least Wong et al.'s 1.25 eps in all (one step: their FGSM)
        step = max(step, FGSM_STEP_RATIO * eps / a.steps)
    adversarial = dataclasses.replace(a, eps=eps, step_size=a.step_size if a.step_size is not None else step)
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, adversarial=adversarial))
