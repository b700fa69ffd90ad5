"""open_clip's ModifiedResNet (OpenAI's RN50 ... RN50x64): Grad-CAM on `layer4`, the last stage
before the attention pool."""
from __future__ import annotations

from ._base import TowerFamily

__all__ = ["OpenClipResNet"]


class OpenClipResNet(TowerFamily):
    name, kind = "open_clip ModifiedResNet", "cnn"

    @classmethod
    def matches(cls, visual) -> bool:
        return hasattr(visual, "layer4") and hasattr(visual, "attnpool")

    @classmethod
    def gradcam_layer(cls, visual) -> str:
        return "layer4"
