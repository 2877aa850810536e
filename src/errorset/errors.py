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


def config_error_from(error: ValueError, keys: dict[str, str]) -> ConfigError:
    """The :class:`ConfigError` for a function's ``"<argument>: ..."`` error, naming the config key instead.

    Functions on tensors name their own arguments (``sigma_max: expected ...``); the layer that
    called them from a config translates, once, with ``keys`` mapping argument names to
    config keys (``{"sigma_max": "train.sigma_max"}``). Other messages are kept as they are.
    """
    message = str(error)
    argument, sep, rest = message.partition(": ")
    if sep and argument in keys:
        message = f"{keys[argument]}: {rest}"
    return ConfigError(message)
