"""Figures of an Optuna sweep, from its trial rows (see :func:`errorset.jobs.sweep_summary.trial_rows`)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from errorset.plots.style import new_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

Rows = Sequence[Mapping[str, Any]]


def _complete(rows: Rows) -> list[Mapping[str, Any]]:
    return [r for r in rows if r["state"] == "COMPLETE"]


def pareto_front(rows: Rows, objectives: Sequence[str], front: Sequence[int]) -> Figure:
    """The first two objectives of every completed trial; the Pareto-optimal ones joined in red.

    Each point is a trained model; no point of the red front can be improved in
    one objective without losing in the other (e.g. clean against noise accuracy).
    """
    fig, (ax,) = new_figure(width=5.2, height=4.2)
    a, b = objectives[0], objectives[1]
    done = _complete(rows)
    ax.scatter([r[a] for r in done], [r[b] for r in done], c="0.6", s=24, label="trials")
    best = sorted((r for r in done if r["number"] in set(front)), key=lambda r: r[a])
    ax.plot([r[a] for r in best], [r[b] for r in best], "o-", color="tab:red", label="Pareto front")
    for r in best:
        ax.annotate(str(r["number"]), (r[a], r[b]), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xlabel(a)
    ax.set_ylabel(b)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("Pareto front (trial numbers)")
    return fig


def objectives_vs_params(rows: Rows, objectives: Sequence[str], params: Sequence[str]) -> Figure:
    """Each objective (rows of panels) against each numeric swept parameter (columns), one point per trial."""
    done = _complete(rows)
    numeric = [p for p in params if all(isinstance(r.get(p), (int, float)) for r in done)] or list(params)[:1]
    fig, axes = new_figure(len(numeric) * len(objectives), width=3.8, height=3.2)
    for i, (name, param) in enumerate((o, p) for o in objectives for p in numeric):
        ax = axes[i]
        pts = sorted((r[param], r[name]) for r in done if r.get(param) is not None and not math.isnan(r[name]))
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o", ms=5)
        ax.set_xlabel(param)
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
    fig.suptitle("Objectives against the swept parameters")
    return fig


def importances(values: Mapping[str, Mapping[str, float]]) -> Figure:
    """fANOVA parameter importances per objective (how much of each objective's variance a parameter explains)."""
    fig, axes = new_figure(max(1, len(values)), width=3.8, height=3.0)
    for ax, (name, imp) in zip(axes, values.items(), strict=False):
        keys = list(imp)
        ax.barh(keys, [imp[k] for k in keys])
        ax.set_xlim(0, 1)
        ax.set_title(name)
        ax.set_xlabel("importance")
    fig.suptitle("Parameter importances")
    return fig


def history(rows: Rows, objectives: Sequence[str], directions: Sequence[str]) -> Figure:
    """Objective values in trial order, with the best so far as a step line."""
    fig, axes = new_figure(len(objectives), width=4.2, height=3.2)
    done = sorted(_complete(rows), key=lambda r: r["number"])
    for ax, name, direction in zip(axes, objectives, directions, strict=True):
        xs = [r["number"] for r in done]
        ys = [r[name] for r in done]
        best, running = [], None
        for y in ys:
            running = y if running is None else (max(running, y) if direction == "maximize" else min(running, y))
            best.append(running)
        ax.plot(xs, ys, "o", ms=4, label="trial")
        ax.step(xs, best, where="post", color="tab:red", label="best so far")
        ax.set_xlabel("trial")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("Optimisation history")
    return fig
