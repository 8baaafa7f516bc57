"""Pose weights from any file or published name, as a checkpoint dict, and those weights put into a built model.

Below the factory (timm keeps its loading helpers under ``create_model`` the same way): :mod:`.registry`'s
``create_model(name, weights=...)`` and :func:`~fasterpose.models.registry.model_from_checkpoint` build the model
and call these; this module builds no model, so nothing here imports the registry.

Files are opened by :mod:`fasterpose.checkpoint` (no code from a file ever runs); a published name is downloaded
and converted by :mod:`.published`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from ..checkpoint import checked_checkpoint, is_safetensors, load_checkpoint, read_torch_file
from ..errors import CheckpointError
from ..spec import PoseSpec
from .published import PUBLISHED, foreign_checkpoint, is_foreign_pose_file, published_checkpoint

__all__ = ["checkpoint_spec", "load_pose_checkpoint", "load_weights"]


def load_pose_checkpoint(checkpoint: str | os.PathLike) -> dict[str, Any]:
    """Read pose weights as a fasterpose checkpoint dict (``format``, ``spec``, ``model``, ...).

    Args:
        checkpoint: a fasterpose checkpoint (``.pt``), a ``.safetensors`` file from ``fasterpose export``, the name
            of published weights (``fasterpose weights list``; downloaded once into torch hub's cache), or a
            SimpleBaseline file of MMPose (0.x, 1.x) or of the official release (``pose_resnet_*.pth.tar``): those
            are converted into an in-memory checkpoint whose spec says how their authors evaluated them
            (:mod:`fasterpose.models.published`).

    Raises:
        CheckpointError: a missing, damaged or foreign file, or one that asks to build an object no weights file
            needs (see :func:`fasterpose.checkpoint.read_torch_file`).
    """
    if str(checkpoint) in PUBLISHED and not Path(checkpoint).exists():
        return published_checkpoint(str(checkpoint))
    path = Path(checkpoint)
    if not path.is_file() or is_safetensors(path):
        return load_checkpoint(path)  # says what is wrong with a missing file; reads our safetensors
    obj = read_torch_file(path)
    if isinstance(obj, dict) and "format" not in obj and is_foreign_pose_file(obj):
        return foreign_checkpoint(obj, path)
    return checked_checkpoint(obj, path)


def checkpoint_spec(ckpt: dict[str, Any], where: Any) -> PoseSpec:
    """The checkpoint's validated :class:`PoseSpec`; ``where`` names it in the message."""
    try:
        return PoseSpec.from_dict(ckpt["spec"])
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"{where}: its 'spec' is not valid ({e}); was it written by fasterpose?") from None


def load_weights(model: torch.nn.Module, ckpt: dict[str, Any], spec: PoseSpec) -> torch.nn.Module:
    """Put the checkpoint's weights into ``model`` (built from ``spec``); damaged or ill-fitting weights are refused.

    Raises:
        CheckpointError: non-finite weights, or keys that do not fit the model.
    """
    state = ckpt["model"]
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint of {spec.model_name}: its 'model' entry is a {type(state).__name__}, not a "
                              "state_dict (parameter names -> tensors)")
    for name, tensor in state.items():
        if torch.is_tensor(tensor) and tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(f"checkpoint weights of {spec.model_name} hold non-finite values (NaN or inf) in "
                                  f"{name!r}: the checkpoint is damaged and every result would be wrong; use another "
                                  "checkpoint (e.g. an earlier last.pt or best.pt)")
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise CheckpointError(f"checkpoint weights do not fit model {spec.model_name}: missing keys "
                              f"{result.missing_keys[:10]}, unexpected keys {result.unexpected_keys[:10]}")
    return model
