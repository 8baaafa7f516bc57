"""Backbones written in this project (no torchvision/timm dependency) with torchvision's parameter names.

Every backbone maps ``(N, 3, H, W)`` images to one low-resolution feature ``(N, C, H/s, W/s)`` and has the
attributes ``out_channels`` (C) and ``output_stride`` (s, 32 or 16). ImageNet weights come from torchvision
checkpoint files via :func:`load_pretrained`; :func:`imagenet_weights` downloads (once, hash-checked) the file for a
backbone name.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ...errors import CheckpointError, ConfigError
from .mobilenetv2 import MobileNetV2
from .resnet import ResNet
from .shufflenetv2 import ShuffleNetV2

__all__ = ["BACKBONES", "TORCHVISION_URLS", "build_backbone", "imagenet_weights", "load_pretrained", "MobileNetV2",
           "ResNet", "ShuffleNetV2"]

logger = logging.getLogger(__name__)

# name (torchvision's model name) -> factory(output_stride) -> backbone
BACKBONES: dict[str, Callable[[int], nn.Module]] = {
    "resnet18": lambda output_stride=32: ResNet(18, output_stride),
    "resnet34": lambda output_stride=32: ResNet(34, output_stride),
    "resnet50": lambda output_stride=32: ResNet(50, output_stride),
    "resnet101": lambda output_stride=32: ResNet(101, output_stride),
    "resnet152": lambda output_stride=32: ResNet(152, output_stride),
    "mobilenet_v2": lambda output_stride=32: MobileNetV2(1.0, output_stride),
    "shufflenet_v2_x1_0": lambda output_stride=32: ShuffleNetV2(1.0, output_stride),
}

# torchvision's ImageNet (IMAGENET1K_V1) checkpoints, downloaded by ``pretrained="imagenet"``; the ``-<hex>.`` part of
# each file name is the start of its SHA-256, checked after the download (torch hub's convention).
TORCHVISION_URLS: dict[str, str] = {
    "resnet18": "https://download.pytorch.org/models/resnet18-f37072fd.pth",
    "resnet34": "https://download.pytorch.org/models/resnet34-b627a593.pth",
    "resnet50": "https://download.pytorch.org/models/resnet50-0676ba61.pth",
    "resnet101": "https://download.pytorch.org/models/resnet101-63fe2227.pth",
    "resnet152": "https://download.pytorch.org/models/resnet152-394f9c45.pth",
    "mobilenet_v2": "https://download.pytorch.org/models/mobilenet_v2-b0353104.pth",
    "shufflenet_v2_x1_0": "https://download.pytorch.org/models/shufflenetv2_x1-5666bf0f80.pth",
}

# torchvision classifier parameters, present in ImageNet checkpoints but not in our backbones.
_CLASSIFIER_PREFIXES = ("fc.", "classifier.")
_WRAPPER_PREFIXES = ("module.",)  # DataParallel / DDP
_MAX_LISTED = 12


def build_backbone(name: str, output_stride: int = 32, num_stages: int = 4) -> nn.Module:
    """Create a backbone by its torchvision name (``resnet50``, ``mobilenet_v2``, ``shufflenet_v2_x1_0``, ...).

    ``num_stages=3`` (ResNets only) ends the trunk after ``layer3`` (stride 16), see :class:`ResNet`.
    """
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; known: {', '.join(BACKBONES)}")
    if num_stages != 4:
        if not name.startswith("resnet"):
            raise ValueError(f"num_stages={num_stages} needs a ResNet backbone, not {name}")
        return ResNet(int(name[len("resnet"):]), output_stride, num_stages=num_stages)
    return BACKBONES[name](output_stride)


def imagenet_weights(name: str, progress: bool = True) -> Path:
    """The torchvision ImageNet checkpoint of backbone ``name``, downloaded into torch hub's cache if not there yet.

    Raises:
        ConfigError: ``name`` has no published ImageNet weights here.
        DownloadError: offline or a failed download (the message names the URL, the file and the cache folder).
    """
    from ...hub import cached_download

    if name not in TORCHVISION_URLS:
        raise ConfigError(f"no ImageNet weights are known for backbone {name!r}; known: {', '.join(TORCHVISION_URLS)}")
    return cached_download(TORCHVISION_URLS[name], progress=progress)


def _listed(keys: list[str]) -> str:
    more = f" ... and {len(keys) - _MAX_LISTED} more" if len(keys) > _MAX_LISTED else ""
    return ", ".join(keys[:_MAX_LISTED]) + more


def _extract_state_dict(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model"):
            if key in obj and isinstance(obj[key], Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path} does not hold a state_dict (a mapping of parameter names to tensors, possibly "
                              "under 'state_dict' or 'model'); pass a torchvision ImageNet checkpoint file")
    state = {}
    for key, value in obj.items():
        for prefix in _WRAPPER_PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix):]
        state[key] = value
    return state


def load_pretrained(backbone: nn.Module, path: str | os.PathLike) -> list[str]:
    """Load a torchvision ImageNet checkpoint file into ``backbone`` (in place).

    Accepts a plain ``state_dict``, or a dict holding it under ``"state_dict"`` or ``"model"``; strips a
    ``module.`` prefix; ignores the classifier (``fc.*``, ``classifier.*``). BatchNorm ``num_batches_tracked``
    buffers may be absent (old torchvision files): the backbone's own values are kept. Everything else must fit
    exactly.

    Args:
        backbone: a backbone from :data:`BACKBONES` (or any module whose names follow torchvision's).
        path: the checkpoint file, e.g. ``resnet50-0676ba61.pth`` from ``download.pytorch.org``.

    Returns:
        The checkpoint keys that were ignored (classifier weights; ``layer4.*`` for a 3-stage ResNet).

    Raises:
        CheckpointError: the file is missing or unreadable, or its keys/shapes do not fit the backbone; the message
            lists the missing and unexpected keys and the shape mismatches.
    """
    from ...checkpoint import read_torch_file

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"pretrained backbone checkpoint {path} does not exist; download the torchvision "
                              "ImageNet weights for this backbone or drop the pretrained setting")
    # ImageNet files come from the internet: opened like every model file, without running code from them.
    obj = read_torch_file(path, what="pretrained backbone checkpoint")
    state = _extract_state_dict(obj, path)
    # The classifier, and the stages a truncated trunk does not have (a 3-stage ResNet has no layer4).
    dropped = _CLASSIFIER_PREFIXES + (("layer4.",) if getattr(backbone, "num_stages", 4) == 3 else ())
    ignored = [k for k in state if k.startswith(dropped)]
    for k in ignored:
        del state[k]

    own = backbone.state_dict()
    for key, value in own.items():
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = value  # harmless counter, absent from checkpoints saved before PyTorch 0.4.1
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(v.shape)}"
                  for k, v in own.items() if k in state and state[k].shape != v.shape]
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys: {_listed(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys: {_listed(unexpected)}")
        if mismatched:
            parts.append(f"{len(mismatched)} shape mismatches: {_listed(mismatched)}")
        raise CheckpointError(f"pretrained backbone checkpoint {path} does not fit {type(backbone).__name__} "
                              f"({'; '.join(parts)}); is it the torchvision checkpoint of the same architecture?")
    backbone.load_state_dict(state, strict=True)
    logger.info("loaded pretrained backbone weights from %s (ignored %d classifier/unused keys)", path, len(ignored))
    return ignored
