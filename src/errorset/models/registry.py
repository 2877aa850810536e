"""The model registry: name -> factory(input_shape, num_classes, **kwargs) returning the bare network.

Metadata of each entry (read by :func:`errorset.models.build.create_model`):

``channels_last``
    the network is convolutional and runs in channels-last memory format
    (default False).
``pretrained``
    the factory takes ``pretrained=`` (pretrained weights; default False).
"""

from __future__ import annotations

from torch import nn

from errorset.registry import Registry

MODELS: Registry[nn.Module] = Registry("model", "model.name")
