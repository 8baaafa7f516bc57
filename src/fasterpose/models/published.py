"""Published COCO pose weights: names, URLs and hashes, and the conversion of their files into our checkpoints.

Three key layouts of SimpleBaseline (ResNet + 3 deconvolutions) are read, each into ``simplebaseline_r*``:

============================  =====================================================  ============================
layout                        keys                                                   input
============================  =====================================================  ============================
``mmpose-0.x``                ``backbone.*``, ``keypoint_head.deconv_layers.*``,     RGB, ImageNet mean/std
                              ``keypoint_head.final_layer.*`` (under ``state_dict``)
``mmpose-1.x``                ``backbone.*``, ``head.deconv_layers.*``,              RGB, ImageNet mean/std
                              ``head.final_layer.*`` (under ``state_dict``)
``simplebaseline-official``   ``conv1.*``, ``layer1.*`` ... ``deconv_layers.*``,     **BGR** as read by OpenCV,
                              ``final_layer.*`` (``pose_resnet_*.pth.tar``)          RGB-ordered mean/std
============================  =====================================================  ============================

The ResNet keys of all three are torchvision's, and the head keys are our
:class:`~fasterpose.models.heads.DeconvHead`'s, so the conversion is a prefix change. Every
source trained with MSE on classic (MSRA) Gaussian heatmaps, sigma 2, decoded with the quarter-pixel shift and
flip-tested with the one-pixel shift: the :class:`~fasterpose.spec.PoseSpec` of a converted file says so
(``heatmap_activation="identity"``), so it evaluates as its authors did.
Facts (URLs, AP) from MMPose's model zoo pages; the 8 hex digits in MMPose's file names are the start of the
file's SHA-256 (its ``publish_model`` convention) and are checked after the download.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError

__all__ = ["PUBLISHED", "PublishedWeights", "convert_pose_state_dict", "detect_layout", "foreign_checkpoint",
           "is_foreign_pose_file", "published_checkpoint"]

logger = logging.getLogger(__name__)

_MMPOSE = "https://download.openmmlab.com/mmpose/top_down/resnet/"


@dataclass(frozen=True)
class PublishedWeights:
    """One published checkpoint.

    Attributes:
        name: our name for it (``fasterpose weights list``, ``--weights NAME``).
        model: the registry model it loads into.
        input_size: ``(height, width)`` it was trained and evaluated at.
        url: where it is downloaded from.
        sha256_prefix: the start of the file's SHA-256, checked after the download.
        coco_ap: published COCO val2017 AP (detector boxes of person AP 56.4, flip test).
        source: who published it.
    """

    name: str
    model: str
    input_size: tuple[int, int]
    url: str
    sha256_prefix: str
    coco_ap: float
    source: str


def _mmpose(depth: int, size: str, file_name: str, ap: float) -> PublishedWeights:
    h, w = (int(v) for v in size.split("x"))
    return PublishedWeights(f"simplebaseline_r{depth}_coco_{size}", f"simplebaseline_r{depth}", (h, w),
                            _MMPOSE + file_name, file_name.split("-")[-1].split("_")[0], ap,
                            "MMPose model zoo (0.x file, also listed by MMPose 1.x)")


# AP as published on MMPose 1.x's model zoo page (configs/body_2d_keypoint/topdown_heatmap/coco/resnet_coco.md);
# the 0.x page lists the same files with r101 384x288 at 0.748.
PUBLISHED: dict[str, PublishedWeights] = {w.name: w for w in (
    _mmpose(50, "256x192", "res50_coco_256x192-ec54d7f3_20200709.pth", 0.718),
    _mmpose(50, "384x288", "res50_coco_384x288-e6f795e9_20200709.pth", 0.731),
    _mmpose(101, "256x192", "res101_coco_256x192-6e6babf0_20200708.pth", 0.726),
    _mmpose(101, "384x288", "res101_coco_384x288-8c71bdc9_20200709.pth", 0.749),
    _mmpose(152, "256x192", "res152_coco_256x192-f6e307c2_20200709.pth", 0.735),
    _mmpose(152, "384x288", "res152_coco_384x288-3860d4c9_20200709.pth", 0.750),
)}

LAYOUTS = ("mmpose-0.x", "mmpose-1.x", "simplebaseline-official")
_HEAD_PREFIX = {"mmpose-0.x": "keypoint_head.", "mmpose-1.x": "head.", "simplebaseline-official": ""}
_BACKBONE_PREFIX = {"mmpose-0.x": "backbone.", "mmpose-1.x": "backbone.", "simplebaseline-official": ""}
# ResNet depth from (bottleneck?, blocks in layer3)
_DEPTHS = {(False, 2): 18, (False, 6): 34, (True, 6): 50, (True, 23): 101, (True, 36): 152}
_SIZE_IN_NAME = re.compile(r"(\d{2,4})x(\d{2,4})")


def _tensors(obj: Any, where: str) -> dict[str, torch.Tensor]:
    """The state dict inside a loaded file (plain, or under ``state_dict``/``model``), ``module.`` stripped."""
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model"):
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{where} holds no state_dict (parameter names -> tensors)")
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in obj.items()}


def is_foreign_pose_file(obj: Any) -> bool:
    """Whether a loaded file holds a SimpleBaseline state dict of one of :data:`LAYOUTS`."""
    try:
        return detect_layout(_tensors(obj, "")) is not None
    except CheckpointError:
        return False


def detect_layout(state: Mapping[str, torch.Tensor]) -> str | None:
    """Which of :data:`LAYOUTS` a SimpleBaseline state dict has, or ``None``."""
    for layout in LAYOUTS:
        if (f"{_BACKBONE_PREFIX[layout]}conv1.weight" in state
                and f"{_HEAD_PREFIX[layout]}final_layer.weight" in state
                and f"{_HEAD_PREFIX[layout]}deconv_layers.0.weight" in state):
            return layout
    return None


def convert_pose_state_dict(state: Mapping[str, torch.Tensor], where: str) -> tuple[dict[str, torch.Tensor],
                                                                                       dict[str, Any], str]:
    """Rename a SimpleBaseline state dict of any known layout to ours.

    Args:
        state: the file's state dict.
        where: how to name the file in messages.

    Returns:
        ``(state_dict, model, layout)``: our keys (``backbone.*``, ``head.*``), ``{"name": ..., "kwargs": ...,
        "num_keypoints": ...}`` for ``create_model``, and the layout found.

    Raises:
        CheckpointError: no known layout, or a ResNet depth or head we do not have.
    """
    layout = detect_layout(state)
    if layout is None:
        sample = ", ".join(list(state)[:6])
        raise CheckpointError(f"{where}: not a SimpleBaseline checkpoint of a known layout (MMPose 0.x "
                              f"'keypoint_head.*', MMPose 1.x 'head.*', or the official pose_resnet files); its "
                              f"first keys are {sample}")
    bb, hd = _BACKBONE_PREFIX[layout], _HEAD_PREFIX[layout]
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if hd and key.startswith(hd):
            out["head." + key[len(hd):]] = value
        elif not hd and key.startswith(("deconv_layers.", "final_layer.")):
            out["head." + key] = value
        elif key.startswith(bb):
            out["backbone." + key[len(bb):]] = value
        # anything else (MMPose's data preprocessor buffers, a classifier) is not part of the pose network
    bottleneck = "backbone.layer1.0.conv3.weight" in out
    blocks = {int(k.split(".")[2]) for k in out if k.startswith("backbone.layer3.")}
    depth = _DEPTHS.get((bottleneck, len(blocks)))
    if depth is None:
        raise CheckpointError(f"{where}: a ResNet with {len(blocks)} blocks in layer3 "
                              f"({'bottleneck' if bottleneck else 'basic'} blocks) is not one of ResNet-18/34/50/101/"
                              "152")
    deconvs = sorted({int(k.split(".")[2]) for k in out if k.startswith("head.deconv_layers.") and
                      out[k].ndim == 4})
    first = out["head.deconv_layers.0.weight"]
    kwargs: dict[str, Any] = {}
    if len(deconvs) != 3:
        kwargs["head_num_deconv"] = len(deconvs)
    if first.shape[1] != 256:
        kwargs["head_channels"] = int(first.shape[1])
    if first.shape[2] != 4:
        kwargs["head_kernel_size"] = int(first.shape[2])
    for key in list(out):  # BatchNorm counters absent from files saved before PyTorch 0.4.1
        if key.endswith(".running_var"):
            out.setdefault(key[: -len("running_var")] + "num_batches_tracked", torch.tensor(0, dtype=torch.long))
    num_keypoints = int(out["head.final_layer.weight"].shape[0])
    return out, {"name": f"simplebaseline_r{depth}", "kwargs": kwargs, "num_keypoints": num_keypoints}, layout


def _input_size_from_name(name: str) -> tuple[int, int] | None:
    match = _SIZE_IN_NAME.search(name)
    return (int(match.group(1)), int(match.group(2))) if match else None


def _spec_dict(model_name: str, kwargs: dict[str, Any], input_size: tuple[int, int], layout: str,
               source: str) -> dict[str, Any]:
    from ..codec import HeatmapCodec
    from ..spec import PoseSpec

    codec = HeatmapCodec(input_size, sigma=2.0, unbiased=False, decode="quarter")
    return PoseSpec(model_name=model_name, input_size=input_size, keypoint_set="coco17", model_kwargs=kwargs,
                    codec=codec.to_dict(), heatmap_activation="identity", flip_test=True,
                    channel_order="bgr" if layout == "simplebaseline-official" else "rgb", source=source).to_dict()


def foreign_checkpoint(obj: Any, path: str | Path, name: str | None = None,
                       input_size: tuple[int, int] | None = None) -> dict[str, Any]:
    """A fasterpose checkpoint dict (``format``, ``spec``, ``model``; no ``config``) for a loaded foreign file.

    Args:
        obj: what ``torch.load`` returned for the file.
        path: the file, for messages and the recorded source.
        name: the published name, if it is one.
        input_size: ``(height, width)``; default: the ``HxW`` in the file name, else 256x192.

    Raises:
        CheckpointError: not a SimpleBaseline checkpoint we can read, or not 17 COCO keypoints.
    """
    from ..checkpoint import CHECKPOINT_FORMAT

    state, model, layout = convert_pose_state_dict(_tensors(obj, str(path)), str(path))
    if model["num_keypoints"] != 17:
        raise CheckpointError(f"{path}: its head predicts {model['num_keypoints']} keypoints; only COCO's 17 are "
                              "supported for imported checkpoints")
    size = input_size or _input_size_from_name(Path(path).name)
    if size is None:
        size = (256, 192)
        logger.warning("%s: no HxW input size in the file name; assuming 256x192", path)
    source = f"{name} ({layout}, {PUBLISHED[name].url})" if name else f"{Path(path).name} ({layout})"
    logger.info("converted %s (%s layout) into %s at %dx%d", path, layout, model["name"], *size)
    return {"format": CHECKPOINT_FORMAT, "spec": _spec_dict(model["name"], model["kwargs"], size, layout, source),
            "model": state, "config": None}


def published_checkpoint(name: str, progress: bool = True) -> dict[str, Any]:
    """Download (once, hash-checked, into torch hub's cache) and convert the published weights ``name``."""
    from ..checkpoint import read_torch_file
    from ..hub import cached_download

    entry = PUBLISHED[name]
    path = cached_download(entry.url, sha256_prefix=entry.sha256_prefix, progress=progress)
    try:
        obj = read_torch_file(path, what=f"published weights {name}")  # hash-checked, and still no code run from it
    except CheckpointError as e:
        raise CheckpointError(f"{e}. Delete {path} and run again to download it afresh") from None
    return foreign_checkpoint(obj, path, name=name, input_size=entry.input_size)
