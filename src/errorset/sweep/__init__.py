"""Optuna sweeps over training parameters against robustness objectives (``errorset sweep``)."""

from errorset.sweep.objectives import OBJECTIVES, Objective
from errorset.sweep.space import Param, parse_fixed, parse_space

__all__ = ["OBJECTIVES", "Objective", "Param", "parse_fixed", "parse_space"]
