"""Named training recipes ("profiles").

A profile fills every recipe key of the config that is left ``null``: the
model for each dataset, the optimiser schedule, and how many images training
and evaluation use. Explicit values in ``params.yaml`` or ``--set`` always win.

``paper``
    Ford et al. (2019), following Madry et al.: SGD with momentum 0.9,
    learning rate 0.1, weight decay 5e-4, batch 128, 200 epochs, learning rate
    x0.2 after epochs 60, 120 and 160; WRN-28-10 on CIFAR-10 and Inception-v3
    (timm) on image folders; full training and test sets.
``cpu`` (the default)
    The same optimiser on a compact CIFAR ResNet-8, a 10,000-image training
    subset, 8 epochs, and 1,000 evaluation images, so that training and
    evaluating all four CIFAR-10 variants fits in 30 minutes on a 2-core CPU;
    the measurements of ``analyze`` and ``attack`` use fewer images and
    gradient steps than the paper, but the paper's 1,000 noise samples for
    sigma(x0, mu) (``analyze.max_rel_error``; every run logs the values used).
``smoke``
    A few hundred images and two epochs: the pipeline end to end in seconds,
    for tests (still 1,000 noise samples for sigma(x0, mu): fewer fail validation).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from errorset.config import Config
from errorset.errors import UnknownNameError


@dataclass(frozen=True)
class Profile:
    epochs: int
    batch_size: int
    lr: float
    momentum: float
    weight_decay: float
    milestones: tuple[int, ...]
    lr_gamma: float
    #: training images (0 = all)
    subset: int
    #: test images for the per-epoch test accuracy (0 = all)
    test_images: int
    #: images for `errorset evaluate` (0 = all)
    eval_images: int
    #: `errorset analyze`: images, noise samples per image, nearest-error steps
    analyze_images: int
    analyze_samples: int
    nearest_steps: int
    #: `errorset analyze`, epsilon*_q: images, noisy samples per image, steps per search
    noisy_images: int
    noisy_samples: int
    noisy_steps: int
    #: `errorset attack`: images and PGD steps
    attack_images: int
    attack_steps: int
    #: `errorset sweep`: epochs and training images of each trial (None: the training recipe above)
    sweep_epochs: int | None = None
    sweep_subset: int | None = None
    #: `errorset eval-corruptions` / `make-corruptions` test images (0 = all): 19 corruptions x 5
    #: severities x 4 storage formats is 380 passes over them
    corruption_images: int = 0
    #: default model per dataset
    models: dict[str, str] = field(default_factory=dict)


PROFILES: dict[str, Profile] = {
    "paper": Profile(
        epochs=200,
        batch_size=128,
        lr=0.1,
        momentum=0.9,
        weight_decay=5e-4,
        milestones=(60, 120, 160),
        lr_gamma=0.2,
        subset=0,
        test_images=0,
        eval_images=0,
        analyze_images=1000,
        analyze_samples=1000,
        nearest_steps=500,
        noisy_images=100,
        noisy_samples=1000,
        noisy_steps=200,
        attack_images=1000,
        attack_steps=100,
        models={"cifar10": "wrn28_10", "digits": "mlp", "imagefolder": "timm:inception_v3"},
    ),
    "cpu": Profile(
        epochs=8,
        batch_size=128,
        lr=0.1,
        momentum=0.9,
        weight_decay=5e-4,
        milestones=(4, 6, 7),
        lr_gamma=0.2,
        subset=10000,
        test_images=2000,
        eval_images=1000,
        analyze_images=50,
        analyze_samples=1000,
        nearest_steps=100,
        noisy_images=8,
        noisy_samples=64,
        noisy_steps=100,
        attack_images=200,
        attack_steps=20,
        sweep_epochs=3,
        sweep_subset=4000,
        corruption_images=250,
        models={"cifar10": "resnet8", "digits": "mlp", "imagefolder": "timm:resnet18"},
    ),
    "smoke": Profile(
        epochs=2,
        batch_size=64,
        lr=0.05,
        momentum=0.9,
        weight_decay=5e-4,
        milestones=(1,),
        lr_gamma=0.2,
        subset=512,
        test_images=256,
        eval_images=128,
        analyze_images=16,
        analyze_samples=1000,
        nearest_steps=20,
        noisy_images=2,
        noisy_samples=16,
        noisy_steps=10,
        attack_images=32,
        attack_steps=5,
        sweep_epochs=1,
        sweep_subset=256,
        corruption_images=64,
        models={"cifar10": "resnet8", "digits": "mlp", "imagefolder": "resnet8"},
    ),
}


def get_profile(name: str) -> Profile:
    if name not in PROFILES:
        raise UnknownNameError(f"profile: unknown profile {name!r}; valid profiles: {', '.join(PROFILES)}")
    return PROFILES[name]


def apply_profile(cfg: Config) -> Config:
    """Return a copy of ``cfg`` with every ``null`` recipe key taken from its profile."""
    p = get_profile(cfg.profile)

    def pick(value, default):
        return default if value is None else value

    t = cfg.train
    train = dataclasses.replace(
        t,
        epochs=pick(t.epochs, p.epochs),
        batch_size=pick(t.batch_size, p.batch_size),
        lr=pick(t.lr, p.lr),
        momentum=pick(t.momentum, p.momentum),
        weight_decay=pick(t.weight_decay, p.weight_decay),
        milestones=pick(t.milestones, list(p.milestones)),
        lr_gamma=pick(t.lr_gamma, p.lr_gamma),
        subset=pick(t.subset, p.subset),
        test_images=pick(t.test_images, p.test_images),
        adversarial=_resolve_adversarial(t),
    )
    model = dataclasses.replace(cfg.model, name=pick(cfg.model.name, p.models.get(cfg.data.name, "resnet8")))
    ev = dataclasses.replace(cfg.eval, n_images=pick(cfg.eval.n_images, p.eval_images))
    an = cfg.analyze
    analyze = dataclasses.replace(
        an,
        images=pick(an.images, p.analyze_images),
        samples=pick(an.samples, p.analyze_samples),
        nearest=dataclasses.replace(an.nearest, steps=pick(an.nearest.steps, p.nearest_steps)),
        noisy=dataclasses.replace(
            an.noisy,
            images=pick(an.noisy.images, p.noisy_images),
            samples=pick(an.noisy.samples, p.noisy_samples),
            steps=pick(an.noisy.steps, p.noisy_steps),
        ),
    )
    steps = pick(cfg.attack.steps, p.attack_steps)
    attack = dataclasses.replace(
        cfg.attack,
        images=pick(cfg.attack.images, p.attack_images),
        steps=steps,
        step_ratio=pick(cfg.attack.step_ratio, 4 / steps if steps else None),
    )
    sweep = dataclasses.replace(
        cfg.sweep,
        trial_epochs=pick(cfg.sweep.trial_epochs, p.sweep_epochs),
        trial_subset=pick(cfg.sweep.trial_subset, p.sweep_subset),
    )
    corruptions = dataclasses.replace(cfg.corruptions, n_images=pick(cfg.corruptions.n_images, p.corruption_images))
    return dataclasses.replace(
        cfg, train=train, model=model, eval=ev, analyze=analyze, attack=attack, sweep=sweep, corruptions=corruptions
    )


def _resolve_adversarial(t):
    from errorset.attacks.steps import STEPS

    a = t.adversarial
    # each norm's step holds Madry et al.'s CIFAR-10 settings (L-inf 8/255, steps of 2/255; L2 0.5, steps of 0.1)
    eps, step = STEPS.create(a.norm).train_defaults if a.norm in STEPS else (None, None)
    return dataclasses.replace(
        a,
        eps=a.eps if a.eps is not None else eps,
        step_size=a.step_size if a.step_size is not None else step,
    )
