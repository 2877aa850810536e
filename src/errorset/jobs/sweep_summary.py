"""What a study found: a JSON summary (best trials, the Pareto front) and a table of every trial."""

from __future__ import annotations

import math
from typing import Any

from errorset.jobs.sweep_study import Sweep
from errorset.sweep.storage import DEFAULT_STORAGE, describe


def trial_rows(sweep: Sweep) -> list[dict[str, Any]]:
    """One row per trial: number, state, parameters, objective values, MLflow run, retry origin."""
    rows = []
    for t in sweep.study.get_trials(deepcopy=False):
        row: dict[str, Any] = {"number": t.number, "state": t.state.name}
        row.update({p.key: t.params.get(p.key) for p in sweep.params})
        values = t.values or [math.nan] * len(sweep.names)
        row.update(dict(zip(sweep.names, values, strict=True)))
        row["mlflow_run_id"] = t.user_attrs.get("mlflow_run_id", "")
        row["retried_from"] = t.system_attrs.get("failed_trial", "")
        row["surplus"] = bool(t.user_attrs.get("surplus", False))
        rows.append(row)
    return rows


def dominates(a: list[float], b: list[float], directions: list[str]) -> bool:
    """True when ``a`` is at least as good as ``b`` in every objective and better in one."""
    sign = [1 if d == "maximize" else -1 for d in directions]
    at_least = all(s * x >= s * y for s, x, y in zip(sign, a, b, strict=True))
    better = any(s * x > s * y for s, x, y in zip(sign, a, b, strict=True))
    return at_least and better


def summarize(sweep: Sweep) -> dict[str, Any]:
    """The study's summary: counts by state, and the best trial (one objective) or the Pareto set."""
    from optuna.trial import TrialState

    study = sweep.study
    trials = study.get_trials(deepcopy=False)
    counts = {state.name.lower(): sum(t.state == state for t in trials) for state in TrialState}
    counts["surplus"] = sum(bool(t.user_attrs.get("surplus")) for t in trials)
    directions = [d.name.lower() for d in study.directions]
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    best = study.best_trials if complete else []

    def describe_trial(t: Any) -> dict[str, Any]:
        return {
            "number": t.number,
            "params": dict(t.params),
            "values": dict(zip(sweep.names, t.values, strict=True)),
            "mlflow_run_id": t.user_attrs.get("mlflow_run_id", ""),
            "model_path": t.user_attrs.get("model_path", ""),
        }

    return {
        "study": study.study_name,
        "storage": describe(sweep.cfg.sweep.storage or DEFAULT_STORAGE),
        "objectives": sweep.names,
        "directions": directions,
        "parent_run_id": sweep.parent_run_id,
        "n_trials": sweep.cfg.sweep.n_trials,
        "trials": counts,
        "best" if len(sweep.names) == 1 else "pareto_front": [describe_trial(t) for t in best],
    }


def importances(sweep: Sweep) -> dict[str, dict[str, float]]:
    """Optuna's parameter importances per objective (empty when there are too few completed trials)."""
    import optuna
    from optuna.trial import TrialState

    complete = sweep.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(complete) < 2:
        return {}
    out = {}
    for i, name in enumerate(sweep.names):
        try:
            out[name] = optuna.importance.get_param_importances(
                sweep.study,
                target=lambda t, i=i: t.values[i],
                evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0),
            )
        except (ValueError, RuntimeError):  # e.g. no parameter varies yet
            continue
    return out
