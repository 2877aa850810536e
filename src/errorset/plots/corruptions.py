"""Figures of the corruption benchmark (Ford et al. 2019, Section 6, Tables 1-4 and Figure 6 top)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from errorset.plots.style import new_figure

if TYPE_CHECKING:
    import torch
    from matplotlib.figure import Figure

#: accuracy tables: corruption -> severity -> accuracy
Table = Mapping[str, Mapping[int, float]]


def plot_corruption_heatmap(tables: Mapping[str, Table], *, title: str | None = None) -> Figure:
    """Accuracy per corruption (rows) and severity (columns), one panel per storage format.

    Args:
        tables: format (``memory``, ``png``, ``jpeg``, ...) -> corruption -> severity -> accuracy.

    Each cell shows the accuracy in percent; darker is lower. Panels side by
    side show how storing the corrupted images (8-bit, JPEG) changes it.
    """
    formats = list(tables)
    names = list(next(iter(tables.values()))) if tables else []
    sevs = sorted({s for t in tables.values() for sev in t.values() for s in sev})
    fig, axes = new_figure(len(formats), width=3.2, height=0.9 + 0.26 * len(names))
    image = None
    for ax, fmt in zip(axes, formats, strict=True):
        grid = np.array([[tables[fmt].get(c, {}).get(s, np.nan) for s in sevs] for c in names], dtype=float)
        image = ax.imshow(grid, vmin=0, vmax=1, cmap="viridis", aspect="auto")
        for i in range(grid.shape[0]):
            for j in range(grid.shape[1]):
                if np.isfinite(grid[i, j]):
                    color = "white" if grid[i, j] < 0.6 else "black"
                    ax.text(j, i, f"{100 * grid[i, j]:.0f}", ha="center", va="center", fontsize=6, color=color)
        ax.set_xticks(range(len(sevs)), [str(s) for s in sevs])
        ax.set_xlabel("severity")
        ax.set_yticks(range(len(names)), names if ax is axes[0] else [""] * len(names), fontsize=7)
        ax.set_title(fmt, fontsize=9)
    if image is not None:
        fig.colorbar(image, ax=axes, label="accuracy", shrink=0.6)
    fig.suptitle(title or "Accuracy under corruptions (%)", fontsize=10)
    return fig


def plot_corruption_bars(
    summaries: Mapping[str, Mapping[str, Mapping[str, float]]], *, title: str | None = None
) -> Figure:
    """Grouped horizontal bars: accuracy per corruption (mean over severities) and "All", one bar per model.

    Args:
        summaries: format -> model label -> corruption (or ``All``) -> accuracy.
            One panel per format, side by side, so in-memory and compressed
            results of the same models can be read across.
    """
    formats = list(summaries)
    keys = list(dict.fromkeys(k for f in formats for m in summaries[f].values() for k in m))
    fig, axes = new_figure(max(len(formats), 1), width=3.6, height=1.0 + 0.22 * len(keys) * 1.3)
    for ax, fmt in zip(axes, formats, strict=False):
        models = list(summaries[fmt])
        height = 0.8 / max(len(models), 1)
        ys = np.arange(len(keys))
        for j, m in enumerate(models):
            vals = [summaries[fmt][m].get(k, np.nan) for k in keys]
            ax.barh(ys + (j - (len(models) - 1) / 2) * height, vals, height, label=m)
        ax.set_yticks(ys, keys if ax is axes[0] else [""] * len(keys), fontsize=7)
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        ax.set_xlabel("accuracy")
        ax.set_title(fmt, fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    if formats:
        axes[0].legend(fontsize=7, loc="lower right")
    fig.suptitle(title or "Accuracy under corruptions, by model and storage format", fontsize=10)
    return fig


def plot_corruption_gallery(
    image: torch.Tensor,
    corrupted: Mapping[str, Sequence[torch.Tensor]],
    *,
    severities: Sequence[int] | None = None,
    title: str | None = None,
) -> Figure:
    """One image under every corruption (rows) at every severity (columns), the clean image first.

    Args:
        image: the clean image, float (C, H, W) in [0,1].
        corrupted: corruption -> its images at each of ``severities`` (each (C, H, W)).
        severities: column labels (default 1, 2, ...).
    """

    def hwc(t: torch.Tensor) -> np.ndarray:
        a = t.detach().float().cpu().clamp(0, 1).permute(1, 2, 0).numpy()
        return np.repeat(a, 3, axis=2) if a.shape[2] == 1 else a

    names = list(corrupted)
    cols = 1 + max((len(v) for v in corrupted.values()), default=0)
    h, w = image.shape[-2:]
    gap = max(1, h // 16)
    canvas = np.ones((len(names) * (h + gap), cols * (w + gap), 3))
    for i, name in enumerate(names):
        for j, t in enumerate([image, *corrupted[name]]):
            canvas[i * (h + gap) : i * (h + gap) + h, j * (w + gap) : j * (w + gap) + w] = hwc(t)
    scale = 0.5 if h <= 64 else 1.0
    fig, (ax,) = new_figure(1, width=1.2 + scale * cols, height=0.6 + scale * len(names))
    ax.imshow(canvas, interpolation="nearest")
    labels = [str(s) for s in (severities if severities is not None else range(1, cols))]
    ax.set_xticks([j * (w + gap) + w / 2 for j in range(cols)], ["clean", *labels], fontsize=7)
    ax.set_yticks([i * (h + gap) + h / 2 for i in range(len(names))], names, fontsize=7)
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_xlabel("severity")
    ax.set_title(title or "Corruptions at each severity", fontsize=9)
    return fig
