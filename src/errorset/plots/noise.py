"""Accuracy in Gaussian noise against sigma (Ford et al. 2019, Figure 7 left)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from errorset.plots.style import new_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def plot_accuracy_in_noise(curves: Mapping[str, Sequence[Mapping[str, float]]], *, title: str | None = None) -> Figure:
    """One line per model: mean accuracy against sigma, with +-1 std over trials as a band.

    Args:
        curves: model label -> rows of ``{"sigma", "accuracy", "std"}``
            (as :meth:`errorset.measure.NoiseAccuracy.rows` returns).
    """
    fig, (ax,) = new_figure()
    for label, rows in curves.items():
        s = [r["sigma"] for r in rows]
        m = [r["accuracy"] for r in rows]
        d = [r.get("std", 0.0) for r in rows]
        (line,) = ax.plot(s, m, marker="o", markersize=3, label=label)
        ax.fill_between(
            s,
            [a - b for a, b in zip(m, d, strict=True)],
            [a + b for a, b in zip(m, d, strict=True)],
            color=line.get_color(),
            alpha=0.2,
            linewidth=0,
        )
    ax.set_xlabel("Gaussian noise sigma (pixel units in [0,1])")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title or "Accuracy in Gaussian noise")
    return fig
