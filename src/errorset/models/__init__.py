"""Models by name: ``linear``, ``mlp``, ``resnet<6n+2>``, ``cifarnet<w>``, ``wrn<d>_<w>``, ``timm:<name>``.

All are created through :func:`create_model` as a
:class:`~errorset.models.wrapper.Classifier` taking images in [0,1].
"""

from errorset.models import cifarnet, resnet, simple, timm_models, wideresnet  # noqa: F401  (register)
from errorset.models.build import create_model, load_model, save_model
from errorset.models.registry import MODELS
from errorset.models.wrapper import Classifier

__all__ = ["MODELS", "Classifier", "create_model", "load_model", "save_model"]
