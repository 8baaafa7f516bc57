"""``PoseModel``: backbone + heatmap head, images in, heatmap logits out."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["PoseModel"]


class PoseModel(nn.Module):
    """Top-down pose network: ``head(backbone(images))``.

    ``forward`` returns one tensor and branches on nothing data-dependent, so the module traces and exports to
    ONNX as is. Activation (sigmoid for RCE-trained models) is *not* applied: see ``PoseSpec.heatmap_activation``.

    Args:
        backbone: module with ``out_channels`` and ``output_stride`` returning ``(N, C, H/s, W/s)``.
        head: module mapping that feature to ``(N, K, H/4, W/4)``.
        name: registry name (``fasterpose_r50``, ...).
        num_keypoints: K.

    Attributes:
        feature_stride: the backbone's output stride (32 or 16).
        output_stride: stride of the heatmaps (4).

    Shapes:
        ``forward``: ``(N, 3, H, W) -> (N, K, H/4, W/4)`` heatmap logits; H and W must be multiples of
        ``feature_stride``.
    """

    output_stride = 4

    def __init__(self, backbone: nn.Module, head: nn.Module, name: str, num_keypoints: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.name = name
        self.num_keypoints = num_keypoints
        self.feature_stride = int(backbone.output_stride)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(images))

    def extra_repr(self) -> str:
        return f"name={self.name!r}, num_keypoints={self.num_keypoints}, feature_stride={self.feature_stride}"
