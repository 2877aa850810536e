"""Figures (matplotlib, headless): built from results, returned as Figure objects to log or save."""

from errorset.plots.style import new_figure, save_figure

__all__ = ["new_figure", "save_figure"]
