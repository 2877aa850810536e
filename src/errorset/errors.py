"""Exceptions that errorset raises for bad input.

Every error a user can cause (an unknown name, a value out of range, a missing
or corrupt file) is an :class:`ErrorsetError` whose message names the parameter
and what was expected. The command line prints that message alone, without a
traceback, and exits with status 2.
"""

from __future__ import annotations


class ErrorsetError(Exception):
    """Base class of all errors errorset reports to the user."""


class ConfigError(ErrorsetError, ValueError):
    """A configuration value (from params.yaml, ``--set`` or an API argument) is invalid."""


class UnknownNameError(ConfigError, KeyError):
    """A registry (models, datasets, modes, ...) was asked for a name it does not hold."""

    def __str__(self) -> str:  # KeyError would add quotes around the message
        return str(self.args[0]) if self.args else ""


class DataError(ErrorsetError):
    """A dataset source (archive, folder, prepared file) is missing or corrupt."""


class TrainingDiverged(ErrorsetError):
    """The training loss became NaN or infinite."""


class CheckpointError(ErrorsetError):
    """A checkpoint is missing, corrupt or does not match the configuration."""


class TrackingError(ErrorsetError):
    """The MLflow tracking store (``tracking.uri`` or ``$MLFLOW_TRACKING_URI``) cannot be reached or written."""


class OutputError(ErrorsetError):
    """An output folder or file cannot be written (not writable, or the disk is full)."""
