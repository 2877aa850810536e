"""dvc.yaml's ``params`` are the keys each stage's job reads, not whole sections (issue 12).

A stage re-runs when one of its listed params changes, so it lists exactly the params.yaml keys that
decide its outputs: those its job reads, less the keys its ``cmd`` sets with ``--set`` (params.yaml's
value of those is never used) and the few it reads for MLflow only (listed below with the reason).
The keys a job reads are found in its code: every ``cfg.<section>.<key>`` attribute chain, through
local aliases (``a = cfg.analyze``; ``a.mu``), in the job function and the functions of its module it
calls, and in the listed helper modules; the reads the scan cannot follow (a helper given
``cfg.train``; the shared model loading) are listed by hand with where they happen. A key that is
``null`` in params.yaml and filled by the profile needs ``profile`` too.
"""

from __future__ import annotations

import ast
import dataclasses
import re
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml

from errorset.config import Config, config_from_dict, flatten, read_params
from errorset.resolve import resolve

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"

#: command -> (module, entry function; None = every function of the module) whose config reads are scanned
SCANNED: dict[str, list[tuple[str, str | None]]] = {
    "prepare": [("errorset.jobs.prepare", "prepare")],
    "train": [("errorset.jobs.train", "train")],
    "evaluate": [("errorset.jobs.evaluate", "evaluate")],
    "analyze": [
        ("errorset.jobs.analyze", "analyze"),
        ("errorset.measure.analysis", "measure"),
        ("errorset.measure.analysis", "summarize"),
    ],
    "attack": [("errorset.jobs.attack", "attack")],
    "report": [("errorset.jobs.report", "report")],
    "sweep": [
        ("errorset.jobs.sweep_study", None),
        ("errorset.jobs.sweep_trials", None),
        ("errorset.sweep.objectives", None),
    ],
    "make-corruptions": [("errorset.jobs.make_corruptions", "make_corruptions")],
    "eval-corruptions": [("errorset.jobs.eval_corruptions", "eval_corruptions")],
    "compare-corruptions": [("errorset.jobs.compare_corruptions", "compare_corruptions")],
}

#: jobs/common.py: load_trained (data, device, seed) and the measuring_job decorator (precision, determinism)
_MEASURING = {"data.name", "device", "seed", "measure_precision", "deterministic"}
#: train/modes.py: MODES.create(t.mode, t) reads the mode's own keys from cfg.train
_MODES = {"train.sigma_max", "train.gaussian_clip", "train.adversarial"}

#: reads the scan does not follow
ALSO_READ: dict[str, set[str]] = {
    "train": _MODES,
    "evaluate": _MEASURING,
    "analyze": _MEASURING,
    "attack": _MEASURING,
    "eval-corruptions": _MEASURING,
    # every trial is a training run (jobs/train.py) measured as the objectives say
    # (jobs/sweep.py, sweep/space.py and jobs/sweep_summary.py read their section through helpers)
    "sweep": {"profile", "model", "train", "sweep", *_MEASURING},
}

#: read as a whole, but standing for a file that is the stage's dependency
COVERED_BY_DEPS: dict[str, str] = {
    "data": "load_dataset(cfg.data) reads data/<name>.npz, a dep made by the prepare stage (which lists data)",
}

#: read, but deciding no output of the stage
NOT_DEPENDENCIES: dict[str, dict[str, str]] = {
    "train": {"tracking.log_model": "whether MLflow logs the model"},
    "analyze": {
        "analyze.group_size": "Figure 2 of the MLflow run only; the report stage draws the pipeline's",
        "analyze.optimal_sigmas": "Figure 10 of the MLflow run only; the report stage draws the pipeline's",
    },
    "eval-corruptions": {
        "eval.checkpoint": "the fallback of corruptions.checkpoint, which the stage sets",
        "variants": "only the names, to find a corruptions.baseline that names a variant (the stage sets none)",
    },
}


def stages() -> dict[str, dict[str, Any]]:
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    return {name: stage.get("do", stage) for name, stage in dvc["stages"].items()}


def command_of(stage: dict[str, Any]) -> str:
    match = re.match(r"\s*errorset\s+([a-z][\w-]*)", stage["cmd"])
    assert match, f"not an errorset command: {stage['cmd']!r}"
    return match.group(1)


def set_by_cmd(stage: dict[str, Any]) -> set[str]:
    return set(re.findall(r"--set\s+([\w.\-]+)=", stage["cmd"]))


def _config_key(path: list[str]) -> list[str]:
    """The longest prefix of an attribute chain that names config fields (``analyze.noisy.q``)."""
    cls: Any = Config
    out: list[str] = []
    for part in path:
        if not dataclasses.is_dataclass(cls):
            break
        hints = typing.get_type_hints(cls)
        if part not in hints:
            break
        out.append(part)
        cls = hints[part]
    return out


def _is_section(path: list[str]) -> bool:
    """Whether an attribute chain names a group of keys (``cfg.analyze``), not a value (``cfg.seed``)."""
    cls: Any = Config
    for part in path:
        hints = typing.get_type_hints(cls) if dataclasses.is_dataclass(cls) else {}
        if part not in hints:
            return False
        cls = hints[part]
    return dataclasses.is_dataclass(cls)


def _chain(node: ast.expr) -> tuple[str | None, list[str]]:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    return (node.id if isinstance(node, ast.Name) else None), parts[::-1]


def _function_keys(fn: ast.FunctionDef) -> set[str]:
    args = [a.arg for a in [*fn.args.posonlyargs, *fn.args.args, *fn.args.kwonlyargs]]
    if "cfg" not in args:
        return set()
    alias: dict[str, list[str]] = {"cfg": []}
    aliased: set[int] = set()  # the `cfg.analyze` of `a = cfg.analyze`: its reads are a's
    for node in ast.walk(fn):  # a = cfg.analyze; a, nz = cfg.analyze, cfg.analyze.noisy
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
            pairs = [(target, value)]
            if isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple):
                pairs = list(zip(target.elts, value.elts, strict=False))
            for t, v in pairs:
                base, parts = _chain(v)
                if isinstance(t, ast.Name) and base in alias and _is_section(alias[base] + parts):
                    alias[t.id] = alias[base] + parts
                    aliased.add(id(v))
    found = set()
    inner = {id(n.value) for n in ast.walk(fn) if isinstance(n, ast.Attribute)}  # cfg.tracking of cfg.tracking.uri
    for node in ast.walk(fn):
        if isinstance(node, ast.Attribute) and id(node) not in inner | aliased:
            base, parts = _chain(node)
            if base in alias and (key := _config_key(alias[base] + parts)):
                found.add(".".join(key))
    return found


def _module_tree(module: str) -> ast.Module:
    return ast.parse(SRC.joinpath(*module.split(".")).with_suffix(".py").read_text())


def keys_read_by(module: str, entry: str | None) -> set[str]:
    """The config keys read by ``entry`` and the functions of its module it calls (all, when None)."""
    functions = {n.name: n for n in _module_tree(module).body if isinstance(n, ast.FunctionDef)}
    todo = list(functions) if entry is None else [entry]
    seen: set[str] = set()
    keys: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        fn = functions[name]
        keys |= _function_keys(fn)
        todo += [c.func.id for c in ast.walk(fn) if isinstance(c, ast.Call) and isinstance(c.func, ast.Name)]
        todo = [n for n in todo if n in functions]
    return keys


def dependencies(command: str, stage: dict[str, Any]) -> set[str]:
    """The keys that decide the stage's outputs: read, less set by its cmd and not deciding any output."""
    read = set(ALSO_READ.get(command, set()))
    for module, entry in SCANNED[command]:
        read |= keys_read_by(module, entry)
    drop = set_by_cmd(stage) | set(NOT_DEPENDENCIES.get(command, {}))
    return {k for k in read if k not in drop}


def covers(param: str, key: str) -> bool:
    return key == param or key.startswith(param + ".")


def profile_filled() -> set[str]:
    """Keys null in params.yaml that the profile fills."""
    raw = flatten(config_from_dict(read_params(ROOT / "params.yaml")))
    resolved = flatten(resolve(config_from_dict(read_params(ROOT / "params.yaml"))))
    return {k for k, v in raw.items() if v is None and resolved.get(k) is not None}


def problems(name: str, stage: dict[str, Any], params_yaml: dict[str, Any]) -> list[str]:
    """What is wrong with one stage's params list (empty: nothing)."""
    command = command_of(stage)
    listed = [p for p in stage.get("params", []) if isinstance(p, str)]
    needed = dependencies(command, stage)
    out = []
    for param in listed:
        node: Any = params_yaml
        for part in param.split("."):
            if not isinstance(node, dict) or part not in node:
                out.append(f"stage {name}: params lists {param}, which params.yaml does not have")
                break
            node = node[part]
    for key in sorted(needed - set(COVERED_BY_DEPS)):
        if not any(covers(p, key) for p in listed):
            out.append(f"stage {name}: its job reads {key}, which its params do not list")
    ignored = set_by_cmd(stage) | set(NOT_DEPENDENCIES.get(command, {}))
    for param in listed:
        if param != "profile" and not any(covers(param, k) or covers(k, param) for k in needed):
            out.append(f"stage {name}: params lists {param}, which its job does not read")
        for key in sorted(k for k in ignored if covers(param, k)):
            out.append(f"stage {name}: params lists {param}, which holds {key} (set by its cmd or deciding no output)")
    filled = {k for k in profile_filled() if any(covers(p, k) for p in listed)}
    if filled and "profile" not in listed:
        out.append(f"stage {name}: the profile fills {', '.join(sorted(filled))}, but params do not list profile")
    if "profile" in listed and not filled and "profile" not in needed:
        out.append(f"stage {name}: params lists profile, but no key it reads comes from the profile")
    return out


@pytest.fixture(scope="module")
def params_yaml() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def test_every_stage_lists_the_keys_its_job_reads(params_yaml):
    found = [p for name, stage in stages().items() for p in problems(name, stage, params_yaml)]
    assert not found, "\n".join(found)


def test_every_command_of_dvc_yaml_is_scanned():
    assert {command_of(stage) for stage in stages().values()} <= set(SCANNED)


def test_group_size_re_runs_the_report_only():
    all_stages = stages()
    assert "analyze.group_size" in all_stages["report"]["params"]
    assert "analyze.optimal_sigmas" in all_stages["report"]["params"]
    for name in ("analyze", "evaluate", "attack"):
        assert not any(covers(p, "analyze.group_size") for p in all_stages[name]["params"]), name


def test_the_scan_follows_aliases_and_called_functions():
    # measure/analysis.py: `a, nz = cfg.analyze, cfg.analyze.noisy` in _noisy_columns, called by measure
    keys = keys_read_by("errorset.measure.analysis", "measure")
    assert {"analyze.mu", "analyze.noisy.samples", "analyze.nearest.steps", "seed"} <= keys
    assert "analyze.group_size" not in keys


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda ps: [p for p in ps if p != "analyze.mu"], "its job reads analyze.mu"),
        (lambda ps: [*ps, "analyze.group_sise"], "analyze.group_sise, which params.yaml does not have"),
        (lambda ps: [*ps, "analyze.group_size"], "analyze.group_size, which its job does not read"),
        (lambda ps: [p for p in ps if p != "profile"], "params do not list profile"),
    ],
)
def test_a_wrong_params_list_is_named(params_yaml, change, expected):
    stage = dict(stages()["analyze"])
    assert not problems("analyze", stage, params_yaml)
    stage["params"] = change(list(stage["params"]))
    assert any(expected in p for p in problems("analyze", stage, params_yaml))
