"""timm's convolutional towers inside open_clip's TimmModel (`visual.trunk`): ConvNeXt and other staged
CNNs (Grad-CAM on the output of the last stage), FastViT / MobileCLIP (on its final conv, the last feature
map before pooling), timm's ResNets (on layer4)."""
from __future__ import annotations

from ._base import TowerFamily

__all__ = ["TimmCNN"]


class TimmCNN(TowerFamily):
    name, kind = "timm CNN", "cnn"

    @classmethod
    def matches(cls, visual) -> bool:
        trunk = getattr(visual, "trunk", None)
        return trunk is not None and not hasattr(trunk, "blocks") and cls.gradcam_layer(visual) is not None

    @classmethod
    def gradcam_layer(cls, visual) -> str | None:
        trunk = visual.trunk
        if hasattr(trunk, "final_conv"):
            return "trunk.final_conv"
        if hasattr(trunk, "stages"):
            return f"trunk.stages.{len(trunk.stages) - 1}"
        if hasattr(trunk, "layer4"):
            return "trunk.layer4"
        return None
