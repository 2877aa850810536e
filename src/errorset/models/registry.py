"""The model registry: name -> factory(input_shape, num_classes, **kwargs) returning the bare network."""

from __future__ import annotations

from torch import nn

from errorset.registry import Registry

MODELS: Registry[nn.Module] = Registry("model", "model.name")
