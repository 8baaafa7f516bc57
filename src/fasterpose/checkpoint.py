"""Self-describing checkpoints: a plain dict saved atomically with ``torch.save``.

Keys (training checkpoints hold all of them; an inference-only checkpoint needs the first four):

- ``format``: ``"fasterpose-checkpoint/1"``
- ``fasterpose_version``: package version that wrote it
- ``spec``: :class:`fasterpose.spec.PoseSpec` as a dict (model name and kwargs, input size, the whole keypoint set
  (names, flip pairs, skeleton, sigmas, sides; older files hold just its name), codec, heatmap activation, flip test)
- ``model``: the model ``state_dict`` (never the DDP-wrapped one: no ``module.`` prefix)
- ``config``: the resolved training config as a dict, or ``None``
- ``epoch`` (epochs completed), ``step``, ``best_ap``, ``optimizer``, ``scheduler``, ``scaler``, ``rng``,
  ``sampler``, ``history``
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from . import __version__
from .errors import CheckpointError
from .io_utils import atomic_path, not_a_file
from .spec import PoseSpec

CHECKPOINT_FORMAT = "fasterpose-checkpoint/1"


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """Atomically write ``state`` (adds ``format`` and ``fasterpose_version``)."""
    state = {"format": CHECKPOINT_FORMAT, "fasterpose_version": __version__, **state}
    if isinstance(state.get("spec"), PoseSpec):
        state["spec"] = state["spec"].to_dict()
    with atomic_path(path) as tmp:
        try:
            torch.save(state, tmp)
        except RuntimeError as e:
            # PyTorch's zip writer reports a refused write (full disk, file-size limit) as a RuntimeError ("unexpected
            # pos ..."), without the errno; the temporary file goes with the atomic writer.
            raise CheckpointError(f"could not write the checkpoint {path} ({str(e).splitlines()[0]}): the disk is "
                                  "probably full or a file-size limit was reached; free some space or choose another "
                                  "output folder (no half-written checkpoint was left)") from e


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load and validate a checkpoint, with a clear error for missing, corrupt or foreign files.

    Besides fasterpose checkpoints, ``path`` may be the name of published weights (``fasterpose weights list``;
    downloaded once into torch hub's cache) or a SimpleBaseline file of MMPose (0.x, 1.x) or of the official release
    (``pose_resnet_*.pth.tar``): those are converted into an in-memory checkpoint whose spec says how their authors
    evaluated them (:mod:`fasterpose.models.published`).
    """
    from .models.published import PUBLISHED, foreign_checkpoint, is_foreign_pose_file, published_checkpoint

    if str(path) in PUBLISHED and not Path(path).exists():
        return published_checkpoint(str(path))
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} {not_a_file(path)}; pass a .pth/.pt file written by fasterpose, "
                              "a published model's file, or a name from `fasterpose weights list`")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means "not a readable checkpoint"
        raise CheckpointError(f"checkpoint {path} could not be read ({type(e).__name__}: {e}); "
                              "is it a complete file written by fasterpose?") from e
    if isinstance(ckpt, dict) and "format" not in ckpt and is_foreign_pose_file(ckpt):
        return foreign_checkpoint(ckpt, path)
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a fasterpose checkpoint (expected format {CHECKPOINT_FORMAT!r}); "
                              "to load torchvision ImageNet weights into a backbone use model.pretrained instead")
    for key in ("spec", "model"):
        if key not in ckpt:
            raise CheckpointError(f"checkpoint {path} has no {key!r} entry")
    return ckpt


def model_from_checkpoint(checkpoint: str | os.PathLike | dict[str, Any]) -> tuple[torch.nn.Module, PoseSpec]:
    """Build the model a checkpoint describes and load its weights. Returns ``(model.eval(), spec)``."""
    from .models import create_model

    ckpt = checkpoint if isinstance(checkpoint, dict) else load_checkpoint(checkpoint)
    try:
        spec = PoseSpec.from_dict(ckpt["spec"])
    except (ValueError, TypeError) as e:
        where = checkpoint if not isinstance(checkpoint, dict) else "the checkpoint"
        raise CheckpointError(f"{where}: its 'spec' is not valid ({e}); was it written by fasterpose?") from None
    model = create_model(spec.model_name, num_keypoints=spec.keypoint_set.num_keypoints, **spec.model_kwargs)
    for name, tensor in ckpt["model"].items():
        if torch.is_tensor(tensor) and tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(f"checkpoint weights of {spec.model_name} hold non-finite values (NaN or inf) in "
                                  f"{name!r}: the checkpoint is damaged and every result would be wrong; use another "
                                  "checkpoint (e.g. an earlier last.pt or best.pt)")
    result = model.load_state_dict(ckpt["model"], strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise CheckpointError(f"checkpoint weights do not fit model {spec.model_name}: missing keys "
                              f"{result.missing_keys[:10]}, unexpected keys {result.unexpected_keys[:10]}")
    return model.eval(), spec
