"""Any timm model as ``timm:<name>`` (e.g. ``timm:inception_v3``, the paper's ImageNet model)."""

from __future__ import annotations

from torch import nn

from errorset.errors import ConfigError, UnknownNameError
from errorset.models.registry import MODELS


@MODELS.register_pattern(
    r"timm:(?P<timm_name>.+)", example="timm:<name> (any timm model)", channels_last=True, pretrained=True
)
def timm_model(
    input_shape: tuple[int, int, int], num_classes: int, *, timm_name: str, pretrained: bool = False
) -> nn.Module:
    import timm

    if not timm.is_model(timm_name):
        raise UnknownNameError(
            f"model.name: timm has no model {timm_name!r}; see timm.list_models() for the valid names"
        )
    try:
        return timm.create_model(timm_name, pretrained=pretrained, num_classes=num_classes, in_chans=input_shape[0])
    except Exception as e:  # hub/network failures for pretrained weights come in many types
        if pretrained:
            raise ConfigError(
                f"model.pretrained: could not load pretrained weights for timm:{timm_name} "
                f"({type(e).__name__}: {e}); set model.pretrained=false or make the weights available offline"
            ) from None
        raise


def timm_normalization(timm_name: str) -> tuple[list[float], list[float]] | None:
    """The mean and std a pretrained timm model expects, or None."""
    import timm

    cfg = timm.get_pretrained_cfg(timm_name)
    if cfg is None:
        return None
    return list(cfg.mean), list(cfg.std)
