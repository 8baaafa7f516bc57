"""Pose networks: backbones (torchvision-compatible names), heads, the model registry and complexity counting.

Typical use::

    from fasterpose.models import create_model
    model = create_model("fasterpose_r50", num_keypoints=17, pretrained="resnet50-0676ba61.pth")
    logits = model(images)  # (N, 3, 256, 192) -> (N, 17, 64, 48)
"""

from .backbones import BACKBONES, build_backbone, load_pretrained
from .complexity import count_gmacs, count_params, model_complexity, output_shape
from .heads import DeconvHead, SubPixelHead
from .loading import load_pose_checkpoint
from .pose_model import PoseModel
from .registry import (
    ModelInfo,
    UnknownModelError,
    create_model,
    list_models,
    model_from_checkpoint,
    model_info,
    register_model,
)

__all__ = [
    "BACKBONES", "build_backbone", "load_pretrained",
    "count_gmacs", "count_params", "model_complexity", "output_shape",
    "DeconvHead", "SubPixelHead", "PoseModel",
    "ModelInfo", "UnknownModelError", "create_model", "list_models", "model_info", "register_model",
    "load_pose_checkpoint", "model_from_checkpoint",
]
