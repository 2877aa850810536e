"""The one typed configuration of errorset, loaded from ``params.yaml``.

``params.yaml`` is read into the :class:`Config` dataclass tree. Every command
takes the same file; ``--set KEY=VALUE`` (the command line), ``-P set=...``
(``mlflow run``) and ``-S KEY=VALUE`` (``dvc exp run``) override dotted keys.

Precedence, lowest first:

1. the dataclass defaults below,
2. ``params.yaml`` (or the file given with ``--params``),
3. ``--set`` overrides,
4. the *profile* (``profile: cpu`` / ``paper`` / ``smoke``, see
   :mod:`errorset.profiles`), a dict of dotted keys set by :func:`set_keys` as ``--set`` keys
   are, fills every recipe key that is still ``null``.

So a key left ``null`` follows the profile and an explicit value always wins.
:func:`errorset.resolve.resolve` returns the fully resolved config that every run logs.

This module is the schema and its reading only: it imports nothing of errorset but its
errors, so every package may use the dataclasses below without an import circle.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, Union

import yaml

from errorset.errors import ConfigError

# ----------------------------------------------------------------------------
# The schema
# ----------------------------------------------------------------------------


@dataclass
class Cifar10Source:
    """Where CIFAR-10 comes from.

    ``archive`` (or the environment variable ``ERRORSET_CIFAR10_ARCHIVE``) names
    a ``.tar.gz`` or folder laid out as ``train/<class>/*`` and
    ``test/<class>/*``; without one, torchvision downloads the official release
    into ``<data.root>/raw`` when ``download`` is true.
    """

    archive: str | None = None
    download: bool = True


@dataclass
class ImageFolderSource:
    """A user's image-folder tree or archive (``train/<class>``, ``test|val/<class>``)."""

    path: str | None = None
    #: resize every image to image_size x image_size (bilinear); null keeps the
    #: size, which must then be the same for every image.
    image_size: int | None = None


@dataclass
class DataConfig:
    #: the dataset: cifar10 | digits (scikit-learn's 8x8 digits, no download) | imagefolder
    name: str = "cifar10"
    #: folder of prepared arrays (<root>/<name>.npz) and raw downloads (<root>/raw)
    root: str = "data"
    cifar10: Cifar10Source = field(default_factory=Cifar10Source)
    imagefolder: ImageFolderSource = field(default_factory=ImageFolderSource)


@dataclass
class ModelConfig:
    #: registry name; null = the dataset's default model under the profile
    name: str | None = None
    #: timm models only: load pretrained weights (needs network access)
    pretrained: bool = False


@dataclass
class AdversarialConfig:
    """Madry PGD adversarial training. eps and step_size in [0,1] pixel units."""

    #: linf | l2
    norm: str = "linf"
    #: null = 8/255 for linf, 0.5 for l2
    eps: float | None = None
    #: null = the profile: paper 7 (Madry et al.'s PGD-7), cpu 2 (PGD-2 from a random start)
    steps: int | None = None
    #: null = 2/255 for linf, 0.1 for l2, but at least 1.25 eps / steps (one step: Wong et al.'s FGSM)
    step_size: float | None = None
    #: start each attack at a uniform random point of the eps ball
    random_start: bool = True
    #: BatchNorm mode while the attack is generated: eval (BN running stats updated once per step, by the
    #: update; MadryLab's robustness library) or train (the attack's forward passes update them too)
    attack_mode: str = "eval"


@dataclass
class TrainConfig:
    #: clean | gaussian (Gaussian augmentation) | adversarial (PGD adversarial training)
    mode: str = "clean"
    #: gaussian mode: per-image sigma ~ U(0, sigma_max), in [0,1] pixel units
    sigma_max: float = 0.0
    #: gaussian mode: clip noisy images to [0,1] (off, as in the paper)
    gaussian_clip: bool = False
    adversarial: AdversarialConfig = field(default_factory=AdversarialConfig)
    # --- the recipe: null follows the profile -------------------------------
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    momentum: float | None = None
    weight_decay: float | None = None
    #: learning-rate schedule: step (lr x lr_gamma after each of milestones) | linear (from 0 up to lr
    #: over the first warmup_fraction of training, then down to 0 at the last step, updated every step)
    schedule: str | None = None
    #: epochs after which the learning rate is multiplied by lr_gamma (step schedule)
    milestones: list[int] | None = None
    lr_gamma: float | None = None
    #: linear schedule: the share of training (in [0, 1)) spent warming up, whatever train.epochs is
    warmup_fraction: float | None = None
    #: Nesterov momentum
    nesterov: bool | None = None
    #: label smoothing of the cross-entropy loss (0 = none)
    label_smoothing: float | None = None
    #: train on this many images (a seeded random subset); 0 = all
    subset: int | None = None
    #: test images used for the per-epoch test_accuracy; 0 = all
    test_images: int | None = None
    #: training images held out (seeded) and never trained on, e.g. to select hyperparameters in a sweep
    holdout: int = 0
    #: random flips and pad-4 crops; null = on for 3-channel 32x32 data
    flip_crop: bool | None = None
    #: mixed precision (bf16 autocast; fp16 on GPUs without bf16); null = on with CUDA or a CPU with native bf16
    amp: bool | None = None
    #: where checkpoint.pt (resume state) and model.pt go; null = models/<run name>
    output_dir: str | None = None
    #: continue from output_dir/checkpoint.pt (the command line's --resume)
    resume: bool = False
    #: replace a finished or interrupted run in output_dir (the command line's --overwrite)
    overwrite: bool = False


@dataclass
class EvalConfig:
    """Clean accuracy and accuracy in Gaussian noise (the paper's Figure 7)."""

    #: model.pt to evaluate; null = <train.output_dir>/model.pt
    checkpoint: str | None = None
    #: noise sigmas of the accuracy curve ([0,1] pixel units)
    sigmas: list[float] = field(
        default_factory=lambda: [0.0, 0.02, 0.04, 0.06, 0.08, 0.1, 0.15, 0.2, 0.3, 0.4, 0.6, 0.8]
    )
    #: independent noise draws per sigma (the curve's mean and std are over them)
    trials: int = 10
    #: evaluate on this many test images (seeded subset); 0 = all; null = profile
    n_images: int | None = None
    #: images per forward pass (250: twice as fast as 1,000 for a CPU's caches; larger on a GPU)
    batch_size: int = 250
    #: clip noisy images to [0,1]
    clip: bool = False
    #: metrics.json and noise_accuracy.csv go here; null = reports/<run name>
    output_dir: str | None = None


@dataclass
class NearestConfig:
    """The nearest-error search d(x0, E) (Figure 2)."""

    #: l2 | linf
    norm: str = "l2"
    #: search radius; images with no error found within it get this distance
    eps_max: float = 1.0
    #: gradient steps per image; null = profile
    steps: int | None = None


@dataclass
class NoisyDistanceConfig:
    """epsilon*_q: the q-quantile over x ~ N(x0, sigma^2 I) of d(x, E) (Figure 4)."""

    sigma: float = 0.1
    q: float = 0.5
    #: clean images measured (the first ones of the analysis subset); null = profile
    images: int | None = None
    #: noisy samples per image; null = profile (the paper: 1,000)
    samples: int | None = None
    #: gradient steps of each nearest-error search; null = profile (the paper: 200)
    steps: int | None = None
    eps_max: float = 4.0


@dataclass
class AnalyzeConfig:
    """The paper's per-image measurements (``errorset analyze``)."""

    #: model.pt to analyse; null = <train output dir>/model.pt
    checkpoint: str | None = None
    #: test images (seeded subset); 0 = all; null = profile
    images: int | None = None
    #: target error rate of sigma(x0, mu)
    mu: float = 0.01
    #: noise samples per image for sigma(x0, mu) and error rates; null = profile (the paper: 1,000)
    samples: int | None = None
    #: largest relative standard error of sigma(x0, mu) that `validate` accepts (0.06: samples >= 720 at mu = 0.01)
    max_rel_error: float = 0.06
    #: confidence level of every interval (per-image _lo/_hi columns, per-model bootstrap intervals)
    level: float = 0.95
    #: relative precision of the sigma(x0, mu) search
    rtol: float = 0.02
    #: sigmas of the per-image error rates in noise (Figure 20)
    error_rate_sigmas: list[float] = field(default_factory=lambda: [0.05, 0.1, 0.2])
    nearest: NearestConfig = field(default_factory=NearestConfig)
    noisy: NoisyDistanceConfig = field(default_factory=NoisyDistanceConfig)
    #: images per point of Figure 2 (sorted by d(x0, E))
    group_size: int = 50
    #: sigmas of the optimal curves (Figure 10, Appendix F)
    optimal_sigmas: list[float] = field(default_factory=lambda: [0.02, 0.05, 0.1, 0.2, 0.4])
    #: noisy images per forward pass (250: twice as fast as 1,000 for a CPU's caches; larger on a GPU)
    batch_size: int = 250
    #: analysis.csv and analysis.json go here; null = reports/<dataset>/<model>/<mode>
    output_dir: str | None = None


@dataclass
class AttackConfig:
    """Accuracy under PGD over an eps grid (``errorset attack``; Figure 6, bottom)."""

    #: model.pt to attack; null = <train output dir>/model.pt
    checkpoint: str | None = None
    #: test images (seeded subset); 0 = all; null = profile
    images: int | None = None
    #: L-inf radii ([0,1] pixel units; fractions such as 8/255 are fine); empty = skip L-inf
    linf_eps: list[float] = field(default_factory=lambda: [1 / 255, 2 / 255, 4 / 255, 8 / 255, 16 / 255])
    #: L2 radii; empty = skip L2
    l2_eps: list[float] = field(default_factory=lambda: [0.1, 0.25, 0.5, 1.0, 2.0])
    #: PGD steps; null = profile (the paper: 100)
    steps: int | None = None
    #: step size as a fraction of eps; null = 4 / steps (the paper: 100 steps of eps/25)
    step_ratio: float | None = None
    random_start: bool = True
    #: PGD runs per radius, each from a fresh random start; an image is broken if any iterate of any run is
    #: misclassified
    restarts: int = 1
    #: images per attack batch
    batch_size: int = 250
    #: attack.json and attack.csv go here; null = reports/<dataset>/<model>/<mode>
    output_dir: str | None = None


@dataclass
class ReportConfig:
    """Figures that compare models (``errorset report``)."""

    #: result folders to combine (each written by evaluate/analyze/attack); null = reports/<variant> for each variant
    inputs: list[str] | None = None
    output_dir: str = "reports/summary"


@dataclass
class SweepPGDConfig:
    """The attack of the ``pgd_accuracy`` objective."""

    norm: str = "linf"
    eps: float = 8 / 255
    steps: int = 10


@dataclass
class SweepCorruptionsConfig:
    """The corruptions of the ``corruption_accuracy`` objective (a subset keeps trials cheap)."""

    #: corruptions or families (noise, blur, weather, digital: their benchmark corruptions);
    #: null = the 15 benchmark corruptions
    names: list[str] | None = field(default_factory=lambda: ["noise", "blur", "fog", "contrast"])
    severities: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 5])
    #: severity constants: auto (cifar10 up to 64 px, else imagenet) | cifar10 | imagenet
    table: str = "auto"
    #: how the corrupted images reach the model: memory | png | jpeg (at corruptions.jpeg_quality)
    format: str = "memory"


@dataclass
class SweepConfig:
    """Optuna sweeps over training parameters (``errorset sweep``)."""

    #: the Optuna study; workers with the same study_name and storage share it
    study_name: str = "errorset-sweep"
    #: a database URL (sqlite:///..., postgresql://...) or an Optuna journal file (*.log, *.journal);
    #: null = sqlite:///sweeps/optuna.db
    storage: str | None = None
    #: trials the study should end with (completed or pruned), over all workers
    n_trials: int = 8
    #: objective names (maximised), e.g. clean_accuracy, noise_accuracy, pgd_accuracy, median_sigma,
    #: corruption_accuracy; several make a multi-objective study with a Pareto front
    objectives: list[str] = field(default_factory=lambda: ["clean_accuracy", "corruption_accuracy"])
    #: search space: dotted config key -> {type: float|int|categorical, low, high, log, step, choices}
    space: dict[str, Any] = field(
        default_factory=lambda: {"train.sigma_max": {"type": "float", "low": 0.0, "high": 1.0}}
    )
    #: dotted config keys set for every trial
    fixed: dict[str, Any] = field(default_factory=lambda: {"train.mode": "gaussian"})
    #: training images held out from every trial's training; the objectives are measured on them
    validation_images: int = 1000
    #: epochs and training images of each trial; null = profile (cpu: 3 epochs on 4,000 images;
    #: paper: the full recipe); sweep.fixed can set train.epochs and train.subset too
    trial_epochs: int | None = None
    trial_subset: int | None = None
    #: single objective only: median (prune a trial below the median at the same epoch) or none
    pruner: str = "median"
    #: tpe or random
    sampler: str = "tpe"
    #: worker processes this command runs on the study (more can join with `errorset sweep`)
    workers: int = 1
    #: seconds between a running trial's heartbeats (database storage); a trial silent for twice as
    #: long is failed and retried with the same parameters
    heartbeat_interval: int = 60
    #: retries of a trial whose worker died
    max_retry: int = 2
    #: noise_accuracy: the noise sigma ([0,1] pixel units)
    noise_sigma: float = 0.1
    #: median_sigma: the error rate mu of sigma(x0, mu), and noise samples per image
    mu: float = 0.01
    sigma_samples: int = 1000
    pgd: SweepPGDConfig = field(default_factory=SweepPGDConfig)
    corruptions: SweepCorruptionsConfig = field(default_factory=SweepCorruptionsConfig)
    #: summary.json, trials.csv and figures go here
    output_dir: str = "reports/sweep"


@dataclass
class CorruptionsConfig:
    """The common-corruption benchmark: ``errorset eval-corruptions``, ``make-corruptions``, ``compare-corruptions``."""

    #: model.pt to evaluate; null = eval.checkpoint, else <train output dir>/model.pt
    checkpoint: str | None = None
    #: corruptions to evaluate or make; null = all 19 (the 15 benchmark corruptions and the 4 extra)
    names: list[str] | None = None
    severities: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 5])
    #: severity constants: auto (cifar10 for images up to 64 pixels, else imagenet) | cifar10 | imagenet
    table: str = "auto"
    #: how corrupted images reach the model: memory (floats) | png (8-bit, lossless) | jpeg (jpeg_quality)
    formats: list[str] = field(default_factory=lambda: ["memory", "png", "jpeg"])
    #: JPEG quality of the jpeg format (85: the released ImageNet-C files)
    jpeg_quality: int = 85
    #: test images (a seeded subset, the same for every model); 0 = all; null = profile
    n_images: int | None = None
    batch_size: int = 250
    #: released files evaluated as the extra format "released": a CIFAR-10-C folder (<corruption>.npy,
    #: labels.npy; its first n_images) or an ImageNet-C tree (<corruption>/<severity>/<class>/*.JPEG)
    released: str | None = None
    #: mCE baseline: an accuracy.json of eval-corruptions (or its folder), or a variant name
    #: (its results in <reports>/<variant>/corruptions); null = no mCE
    baseline: str | None = None
    #: the test image shown in the gallery figure (index into the evaluated images)
    gallery_index: int = 0
    #: eval-corruptions writes here; null = <eval output dir>/corruptions
    output_dir: str | None = None
    #: make-corruptions writes a CIFAR-10-C-format folder here; null = <data.root>/<data.name>-c
    make_dir: str | None = None
    #: compare-corruptions: result folders (or accuracy.json files) to compare; null = reports/<variant>/corruptions
    #: for every variant in `variants`
    compare: list[str] | None = None
    #: compare-corruptions writes here
    compare_dir: str = "reports/corruptions"


@dataclass
class TrackingConfig:
    #: the MLflow experiment every run goes to
    experiment: str = "errorset"
    #: null = $MLFLOW_TRACKING_URI, else MLflow's default (sqlite:///mlflow.db)
    uri: str | None = None
    #: null = what differs first, e.g. gaussian-0.4 · evaluate · cifar10/resnet8
    run_name: str | None = None
    #: log the trained model with mlflow.pytorch.log_model
    log_model: bool = True


@dataclass
class Config:
    #: recipe profile: cpu (default, a 2-core CPU), paper (Ford et al.), smoke (tests)
    profile: str = "cpu"
    seed: int = 0
    #: auto = cuda when available, else cpu; or any torch device string
    device: str = "auto"
    #: precision of every measurement: float32 (TF32 and autocast off; the rule) | autocast (reduced, logged)
    measure_precision: str = "float32"
    #: deterministic torch kernels (identical results on GPUs run to run; slower); seeds are always set
    deterministic: bool = False
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    analyze: AnalyzeConfig = field(default_factory=AnalyzeConfig)
    attack: AttackConfig = field(default_factory=AttackConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    corruptions: CorruptionsConfig = field(default_factory=CorruptionsConfig)
    #: named training variants (used by dvc.yaml's foreach): name -> train overrides
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)


# ----------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------

D = TypeVar("D")


_TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false", type(None): "null"}


def _type_name(tp: Any) -> str:
    """A readable name for a config type annotation ("an integer or null")."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is list:
        item = _type_name(typing.get_args(tp)[0]).removeprefix("an ").removeprefix("a ")
        return f"a list of {item}s"
    if origin is dict or dataclasses.is_dataclass(tp):
        return "a mapping"
    return _TYPE_NAMES.get(tp, getattr(tp, "__name__", str(tp)))


def _parse_number(text: str) -> float | None:
    """'8/255' -> 0.0313..., '1e-3' -> 0.001 (YAML 1.1 reads both as strings); else None."""
    parts = text.split("/")
    try:
        if len(parts) == 2:
            return float(parts[0]) / float(parts[1])
        return float(text) if len(parts) == 1 else None
    except (ValueError, ZeroDivisionError):
        return None


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp`` and convert where safe."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError:
                pass
        raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected a mapping of {tp.__name__} keys, got {value!r}")
        return _from_mapping(tp, value, key)
    if tp is Any:
        return value
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
            raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}")
        return [_coerce(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        _, val_tp = typing.get_args(tp)
        return {str(k): _coerce(v, val_tp, f"{key}.{k}") for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out = float(value)
        elif isinstance(value, str) and _parse_number(value) is not None:
            out = _parse_number(value)
        else:
            raise ConfigError(f"{key}: expected a number (or a fraction such as 8/255), got {value!r}")
        if not math.isfinite(out):
            raise ConfigError(f"{key}: expected a finite number, got {value!r}")
        return out
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    raise TypeError(f"unsupported config type {tp!r} at {key}")  # a bug in the schema


def _from_mapping(cls: type[D], data: Mapping[str, Any], prefix: str = "") -> D:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        if key not in names:
            raise ConfigError(
                f"{dotted}: unknown key; valid keys{' under ' + prefix if prefix else ''}: {', '.join(names)}"
            )
        kwargs[key] = _coerce(value, hints[key], dotted)
    return cls(**kwargs)


def parse_override(text: str) -> tuple[str, Any]:
    """Split ``KEY=VALUE``; VALUE is read as YAML (numbers, lists, null, true)."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--set: expected KEY=VALUE (e.g. train.mode=gaussian), got {text!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    if isinstance(value, str) and raw.strip() != value:  # keep strings verbatim
        value = raw.strip()
    return key, value


_PAIR_START = re.compile(r"^[A-Za-z_][\w.\-]*=")


def split_overrides(items: Iterable[str]) -> list[str]:
    """Each item may hold several whitespace-separated KEY=VALUE pairs (MLproject passes one string).

    A word that does not start with ``KEY=`` continues the previous value, so
    YAML values with spaces (``sweep.space={train.sigma_max: {low: 0, high: 1}}``) stay whole.
    """
    out: list[str] = []
    for item in items:
        pairs: list[str] = []
        for word in item.split():
            if pairs and not _PAIR_START.match(word):
                pairs[-1] = f"{pairs[-1]} {word}"
            else:
                pairs.append(word)
        out.extend(pairs)
    return out


def set_keys(
    raw: Mapping[str, Any], items: Iterable[tuple[str, Any]], *, source: str = "--set", only_null: bool = False
) -> dict[str, Any]:
    """Set dotted keys in a copy of the nested dict ``raw``; unknown keys are caught when typing it.

    The one way a dotted key is set: ``--set`` (:func:`apply_overrides`) and the profiles
    (:func:`errorset.profiles.apply_profile`, with ``only_null``: a key that holds a value keeps it).
    ``source`` names where the keys come from in the error for a key below a plain value.
    """
    out = _deepcopy(dict(raw))
    for key, value in items:
        node = out
        parts = key.split(".")
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                raise ConfigError(f"{source} {key}: {'.'.join(parts[: i + 1])} is not a group of keys")
            node = child
        if only_null and node.get(parts[-1]) is not None:
            continue
        node[parts[-1]] = _deepcopy(value)
    return out


def apply_overrides(raw: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Set the ``KEY=VALUE`` overrides in a copy of the nested dict ``raw``; unknown keys are caught when typing it."""
    return set_keys(raw, (parse_override(text) for text in split_overrides(overrides)))


def _deepcopy(d: Any) -> Any:
    if isinstance(d, dict):
        return {k: _deepcopy(v) for k, v in d.items()}
    if isinstance(d, list):
        return [_deepcopy(v) for v in d]
    return d


def config_from_dict(raw: Mapping[str, Any] | None) -> Config:
    """Type-check a nested dict into a :class:`Config` (unresolved)."""
    return _from_mapping(Config, raw or {})


def read_params(path: str | Path) -> dict[str, Any]:
    """Read a params file as a nested dict, with a clear error when it is unusable."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"--params: no such file {str(p)!r}")
    try:
        raw = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"--params: {p} is not valid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"--params: {p} must hold a mapping of keys, not {type(raw).__name__}")
    return raw


def read_config(path: str | Path | None = "params.yaml", overrides: Iterable[str] = ()) -> Config:
    """Read ``path`` (None: defaults only) and apply ``KEY=VALUE`` overrides; the profile is *not* applied.

    :func:`errorset.resolve.load_config` is this plus the profile and validation, what every command uses.
    """
    raw = read_params(path) if path is not None else {}
    return config_from_dict(apply_overrides(raw, overrides))


def to_dict(cfg: Any) -> Any:
    """A dataclass tree as plain nested dicts and lists."""
    return dataclasses.asdict(cfg) if dataclasses.is_dataclass(cfg) else cfg


def to_yaml(cfg: Config) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts (or a Config) as ``{"train.mode": "clean", ...}``."""
    if dataclasses.is_dataclass(d):
        d = to_dict(d)
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out
