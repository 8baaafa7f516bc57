"""Model registry: ``create_model(name, ...)`` and ``list_models()``.

Each variant is a small function registered with :func:`register_model` (timm style). Two families:

- ``fasterpose_*``: backbone stride-32 (or 16) feature -> :class:`~fasterpose.models.heads.SubPixelHead`.
  Overrides: ``output_stride`` (32/16), ``head_channels``, ``head_num_convs``, ``head_kernel_size``, ``final_bias``,
  ``final_kernel`` (3: ESPCN's 3x3 sub-pixel conv, the default on ResNets; 1: per-cell 1x1, the default on
  MobileNetV2/ShuffleNetV2), ``zero_init_residual`` and ``num_stages`` (ResNet backbones; 3 ends the trunk after
  ``layer3``, a stride-16 feature: ``fasterpose_r18_l3``).
- ``simplebaseline_*``: ResNet -> :class:`~fasterpose.models.heads.DeconvHead` (3 deconvs at stride 32, 2 at 16).
  Overrides: ``output_stride``, ``head_channels``, ``head_num_deconv``, ``head_kernel_size``, ``final_bias``.
"""

from __future__ import annotations

import difflib
import math
import numbers
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import CheckpointError, ConfigError
from ..spec import PoseSpec
from .backbones import TORCHVISION_URLS, build_backbone, imagenet_weights, load_pretrained
from .heads import RCE_FINAL_BIAS, DeconvHead, SubPixelHead
from .loading import checkpoint_spec, load_pose_checkpoint, load_weights
from .pose_model import PoseModel

__all__ = ["create_model", "list_models", "model_from_checkpoint", "model_info", "register_model", "ModelInfo",
           "UnknownModelError"]


class UnknownModelError(ConfigError, KeyError):
    """Unknown model name. A ``KeyError`` (registry lookup) and a ``ConfigError``/``ValueError`` (user input)."""

    def __str__(self) -> str:
        # KeyError.__str__ would repr() the message (quotes and escaped newlines); show it as written.
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class ModelInfo:
    """Static description of a registered model.

    Attributes:
        name: registry name.
        family: ``"fasterpose"`` or ``"simplebaseline"``.
        backbone: torchvision backbone name (``"resnet50"``, ``"mobilenet_v2"``, ...); also the name of the
            torchvision ImageNet checkpoint that ``pretrained`` expects.
        head: head class name.
        description: one line.
        overrides: keyword overrides accepted by ``create_model`` besides ``num_keypoints`` and ``pretrained``.
    """

    name: str
    family: str
    backbone: str
    head: str
    description: str
    overrides: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_FASTERPOSE_OVERRIDES = ("output_stride", "head_channels", "head_num_convs", "head_kernel_size", "final_bias",
                         "final_kernel", "zero_init_residual", "num_stages")
_SIMPLEBASELINE_OVERRIDES = ("output_stride", "head_channels", "head_num_deconv", "head_kernel_size", "final_bias")
_FAMILIES = {"fasterpose": ("SubPixelHead", _FASTERPOSE_OVERRIDES),
             "simplebaseline": ("DeconvHead", _SIMPLEBASELINE_OVERRIDES)}

#: ``pretrained`` value that downloads torchvision's ImageNet weights of the backbone.
IMAGENET = "imagenet"

_REGISTRY: dict[str, Callable[..., PoseModel]] = {}
_INFO: dict[str, ModelInfo] = {}


def register_model(family: str, backbone: str) -> Callable[[Callable[..., PoseModel]], Callable[..., PoseModel]]:
    """Decorator registering ``fn`` under ``fn.__name__``; the docstring's first line becomes the description."""

    def decorator(fn: Callable[..., PoseModel]) -> Callable[..., PoseModel]:
        head, overrides = _FAMILIES[family]
        description = (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else ""
        _REGISTRY[fn.__name__] = fn
        _INFO[fn.__name__] = ModelInfo(fn.__name__, family, backbone, head, description, overrides)
        return fn

    return decorator


# The type and least value of each family option: a wrong-typed value (``head_channels: "256"``, ``1.5``) would
# otherwise fail deep inside torch with a traceback that names neither the option nor the value.
_OPTION_TYPES: dict[str, tuple[type, float | None]] = {
    "output_stride": (int, None), "head_channels": (int, 1), "head_num_convs": (int, 0), "head_kernel_size": (int, 1),
    "final_kernel": (int, 1), "num_stages": (int, None), "head_num_deconv": (int, 0), "final_bias": (float, None),
    "zero_init_residual": (bool, None),
}
_OPTIONAL = ("final_kernel", "head_num_deconv")  # None: the default for the backbone


def _check_option_type(name: str, key: str, value: Any) -> None:
    kind, least = _OPTION_TYPES.get(key, (object, None))
    if value is None and key in _OPTIONAL:
        return
    if kind is bool:
        ok = isinstance(value, bool)
    elif kind is int:
        ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    elif kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    else:
        ok = True
    if ok and least is not None:
        ok = value >= least
    if not ok:
        what = {bool: "true or false", int: "an integer", float: "a finite number"}.get(kind, "valid")
        more = f" >= {least:g}" if least is not None else ""
        raise ConfigError(f"model {name}: option {key} must be {what}{more}, got {value!r} "
                          f"({type(value).__name__})")


def check_num_keypoints(value: Any) -> int:
    """``num_keypoints`` as an int >= 1, or a :class:`ConfigError` naming the value (not a TypeError from torch)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ConfigError(f"num_keypoints must be an integer >= 1, got {value!r}")
    return int(value)


def _check_overrides(name: str, overrides: dict[str, Any], valid: tuple[str, ...]) -> None:
    given_twice = sorted({"num_keypoints", "pretrained", "weights"} & set(overrides))
    if given_twice:
        raise ConfigError(f"model {name}: {', '.join(given_twice)} is not a model option here: the keypoint count "
                          "comes from the keypoint set (data.keypoints) and the weights from model.pretrained / "
                          f"weights; remove it from the model options ({overrides})")
    unknown = sorted(set(overrides) - set(valid))
    if unknown:
        raise ConfigError(f"model {name} got unknown option(s) {', '.join(unknown)}; valid options: "
                          f"num_keypoints, pretrained, {', '.join(valid)}")
    stride = overrides.get("output_stride", 32)
    if stride not in (16, 32):
        raise ConfigError(f"model {name}: output_stride must be 32 or 16, got {stride!r}")
    for key, value in overrides.items():
        _check_option_type(name, key, value)


def _fasterpose(name: str, backbone: str, num_keypoints: int, output_stride: int = 32, head_channels: int = 256,
                head_num_convs: int = 1, head_kernel_size: int = 3, final_bias: float = RCE_FINAL_BIAS,
                final_kernel: int | None = None, zero_init_residual: bool = False, num_stages: int = 4) -> PoseModel:
    if final_kernel is None:
        # ResNets: ESPCN's 3x3 sub-pixel conv (+2.6% MACs on R50 at 256x192, clearly faster learning from scratch).
        # Light backbones: 1x1, since a 3x3 conv to K*r*r channels would add 35-55% to their MACs and double their
        # parameters, and it did not help ShuffleNetV2 in our one CPU trial (docs/results.md).
        final_kernel = 3 if backbone.startswith("resnet") else 1
    if num_stages not in (3, 4):
        raise ConfigError(f"model {name}: num_stages must be 3 or 4, got {num_stages!r}")
    if num_stages == 3 and not backbone.startswith("resnet"):
        raise ConfigError(f"model {name}: num_stages=3 needs a ResNet backbone, not {backbone}")
    if num_stages == 3 and output_stride != 16:
        raise ConfigError(f"model {name}: a 3-stage ResNet has output stride 16, not {output_stride}; "
                          "drop output_stride or set it to 16")
    body = build_backbone(backbone, output_stride, num_stages=num_stages)
    if zero_init_residual:
        if not hasattr(body, "zero_init_residual_"):
            raise ConfigError(f"model {name}: zero_init_residual needs a ResNet backbone, not {backbone}")
        body.zero_init_residual_()
    head = SubPixelHead(body.out_channels, num_keypoints, feature_stride=output_stride, out_stride=4,
                        num_convs=head_num_convs, channels=head_channels, kernel_size=head_kernel_size,
                        final_bias=final_bias, final_kernel=final_kernel)
    return PoseModel(body, head, name, num_keypoints)


def _simplebaseline(name: str, backbone: str, num_keypoints: int, output_stride: int = 32, head_channels: int = 256,
                    head_num_deconv: int | None = None, head_kernel_size: int = 4,
                    final_bias: float = 0.0) -> PoseModel:
    body = build_backbone(backbone, output_stride)
    # Enough x2 stages to go from the feature stride to stride 4: 3 at stride 32, 2 at stride 16.
    num_deconv = (output_stride // 4).bit_length() - 1 if head_num_deconv is None else head_num_deconv
    if output_stride // 2 ** num_deconv != 4:
        raise ConfigError(f"model {name}: head_num_deconv={num_deconv} at output_stride {output_stride} gives "
                          f"heatmap stride {output_stride / 2 ** num_deconv:g}, not 4; leave head_num_deconv unset")
    head = DeconvHead(body.out_channels, num_keypoints, num_deconv=num_deconv, channels=head_channels,
                      kernel=head_kernel_size, final_bias=final_bias)
    return PoseModel(body, head, name, num_keypoints)


def _build(family: str, name: str, backbone: str, num_keypoints: int, overrides: dict[str, Any]) -> PoseModel:
    _check_overrides(name, overrides, _FAMILIES[family][1])
    builder = _fasterpose if family == "fasterpose" else _simplebaseline
    return builder(name, backbone, num_keypoints, **overrides)


# --- FasterPose variants -------------------------------------------------------------------------------------------

@register_model("fasterpose", "resnet18")
def fasterpose_r18(num_keypoints: int = 17, **overrides: Any) -> PoseModel:
    """FasterPose, ResNet-18 stride-32 feature, sub-pixel head (r=8)."""
    return _build("fasterpose", "fasterpose_r18", "resnet18", num_keypoints, overrides)


@register_model("fasterpose", "resnet18")
def fasterpose_r18_l3(num_keypoints: int = 17, **overrides: Any) -> PoseModel:
    """FasterPose, ResNet-18 cut after layer3 (stride-16 feature, 256 ch), sub-pixel head (r=4)."""
    # The paper's thesis pushed one step further: the deep, expensive stage buys little. At 192x128 it costs half the
    # MACs of fasterpose_r18 at stride 16 (whose dilated layer4 runs at stride 16); the CPU demo's recipe where the
    # CPU has no native bf16 (docs/results.md).
    overrides.setdefault("output_stride", 16)
    overrides.setdefault("num_stages", 3)
    return _build("fasterpose", "fasterpose_r18_l3", "resnet18", num_keypoints, overrides)


@register_model("fasterpose", "resnet34")
def fasterpose_r34(num_keypoints: int = 17, **overrides: Any) -> PoseModel:
    """FasterPose, ResNet-34 stride-32 feature, sub-pixel head (r=8)."""
    return _build("fasterpose", "fasterpose_r34", "resnet34", num_keypoints, overrides)


@register_model("fasterpose", "resnet50")
def fasterpose_r50(num_keypoints: int = 17, **overrides: Any) -> PoseModel:
    """FasterPose, ResNet-50 stride-32 feature, sub-pixel head (r=8)."""
    return _build("fasterpose", "fasterpose_r50", "resnet50", num_keypoints, overrides)


@register_model("fasterpose", "resnet101")
def fasterpose_r101(num_keypoints: int = 17, **overrides: Any) -> PoseModel:
    """FasterPose, ResNet-101 stride-32 feature, sub-pixel head (r=8)."""
    return _build("fasterpose", "fasterpose_r101", "resnet101", num_keypoints, overrides)


@register_model("fasterpose", "resnet152")
def fasterpose_r152(num_keypoints: int = 17, **overrides: Any) -> PoseModel:
    """FasterPose, ResNet-152 stride-32 feature, sub-pixel head (r=8)."""
    return _build("fasterpose", "fasterpose_r152", "resnet152", num_keypoints, overrides)


@register_model("fasterpose", "mobilenet_v2")
def fasterpose_mbv2(num_keypoints: int = 17, **overrides: Any) -> PoseModel:
    """FasterPose, MobileNetV2 (1.0) stride-32 feature, sub-pixel head (r=8)."""
    return _build("fasterpose", "fasterpose_mbv2", "mobilenet_v2", num_keypoints, overrides)


@register_model("fasterpose", "shufflenet_v2_x1_0")
def fasterpose_shufflev2(num_keypoints: int = 17, **overrides: Any) -> PoseModel:
    """FasterPose, ShuffleNetV2 x1.0 stride-32 feature, sub-pixel head (r=8)."""
    return _build("fasterpose", "fasterpose_shufflev2", "shufflenet_v2_x1_0", num_keypoints, overrides)


# --- SimpleBaseline variants ---------------------------------------------------------------------------------------

@register_model("simplebaseline", "resnet18")
def simplebaseline_r18(num_keypoints: int = 17, **overrides: Any) -> PoseModel:
    """SimpleBaseline, ResNet-18 + 3 deconvs (256 channels, 4x4)."""
    return _build("simplebaseline", "simplebaseline_r18", "resnet18", num_keypoints, overrides)


@register_model("simplebaseline", "resnet34")
def simplebaseline_r34(num_keypoints: int = 17, **overrides: Any) -> PoseModel:
    """SimpleBaseline, ResNet-34 + 3 deconvs (256 channels, 4x4)."""
    return _build("simplebaseline", "simplebaseline_r34", "resnet34", num_keypoints, overrides)


@register_model("simplebaseline", "resnet50")
def simplebaseline_r50(num_keypoints: int = 17, **overrides: Any) -> PoseModel:
    """SimpleBaseline, ResNet-50 + 3 deconvs (256 channels, 4x4)."""
    return _build("simplebaseline", "simplebaseline_r50", "resnet50", num_keypoints, overrides)


@register_model("simplebaseline", "resnet101")
def simplebaseline_r101(num_keypoints: int = 17, **overrides: Any) -> PoseModel:
    """SimpleBaseline, ResNet-101 + 3 deconvs (256 channels, 4x4)."""
    return _build("simplebaseline", "simplebaseline_r101", "resnet101", num_keypoints, overrides)


@register_model("simplebaseline", "resnet152")
def simplebaseline_r152(num_keypoints: int = 17, **overrides: Any) -> PoseModel:
    """SimpleBaseline, ResNet-152 + 3 deconvs (256 channels, 4x4)."""
    return _build("simplebaseline", "simplebaseline_r152", "resnet152", num_keypoints, overrides)


# --- public API ----------------------------------------------------------------------------------------------------

def list_models() -> list[str]:
    """Registered model names, in registration order (FasterPose variants first)."""
    return list(_REGISTRY)


def _lookup(name: str) -> str:
    if name in _REGISTRY:
        return name
    close = difflib.get_close_matches(str(name), list(_REGISTRY), n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise UnknownModelError(f"unknown model {name!r}.{hint} Known models: {', '.join(_REGISTRY)}")


def check_model_options(name: str, options: Any) -> None:
    """Refuse model options (a config's ``model.kwargs``, distill's ``--student-opt``) before any work: not a mapping,
    a key that ``create_model`` takes by itself (``num_keypoints``), an option the model does not have, or a value
    of the wrong type. An unknown model name is left to :func:`create_model`, which suggests the closest.

    Raises:
        ConfigError: naming the model, the option and the value.
    """
    if not isinstance(options, dict) or not all(isinstance(k, str) for k in options):
        raise ConfigError(f"model {name}: the model options must be a mapping of option names to values, got "
                          f"{options!r}")
    if name in _INFO:
        _check_overrides(name, options, _INFO[name].overrides)
    else:
        for key, value in options.items():
            _check_option_type(str(name), key, value)


def model_info(name: str) -> ModelInfo:
    """Static description of a registered model (family, backbone, head, accepted overrides)."""
    return _INFO[_lookup(name)]


def create_model(name: str, num_keypoints: int = 17, pretrained: str | os.PathLike | None = None,
                 weights: str | os.PathLike | None = None, **overrides: Any) -> PoseModel:
    """Build a registered model.

    Args:
        name: one of :func:`list_models`, e.g. ``"fasterpose_r50"``.
        num_keypoints: K, heatmap channels (17 for COCO, 16 for MPII).
        pretrained: ``"imagenet"`` (torchvision's published ImageNet weights of the backbone, downloaded once into
            torch hub's cache and hash-checked; URLs in :data:`~fasterpose.models.backbones.TORCHVISION_URLS`), the
            path of such a checkpoint file (see :func:`fasterpose.models.backbones.load_pretrained`), or ``None``
            for random initialisation.
        weights: weights of the whole model: a fasterpose checkpoint or ``.safetensors`` export, the name of
            published weights (:data:`fasterpose.models.published.PUBLISHED`, downloaded once) or a SimpleBaseline
            file of MMPose or the official release. Its model must be ``name``; its options and keypoint count are
            taken from it. The input normalisation and decoding it needs are in the spec that
            :func:`fasterpose.models.loading.load_pose_checkpoint` returns with it (``Predictor(weights)`` uses
            them).
        **overrides: family options, e.g. ``output_stride=16``, ``head_channels=128``; see the module docstring.

    Returns:
        A :class:`PoseModel` mapping ``(N, 3, H, W)`` to heatmap logits ``(N, K, H/4, W/4)``.

    Raises:
        UnknownModelError: ``name`` is not registered (the message suggests the closest names).
        ConfigError: an unknown or invalid override.
        CheckpointError: ``pretrained`` is missing, unreadable or does not fit the backbone, or its download failed
            (:class:`fasterpose.hub.DownloadError`, naming the URL and the cache folder).
    """
    name = _lookup(name)
    fn = _REGISTRY[name]
    if weights is not None:
        return _with_weights(name, weights, pretrained, overrides)
    num_keypoints = check_num_keypoints(num_keypoints)
    backbone = _INFO[name].backbone
    if pretrained is True:
        raise ConfigError(f"pretrained must be 'imagenet' or the path of a torchvision ImageNet checkpoint file, "
                          f"not True; for {name}: pretrained='imagenet' downloads {TORCHVISION_URLS[backbone]}")
    if pretrained == IMAGENET:
        pretrained = imagenet_weights(backbone)
    elif pretrained and not Path(pretrained).is_file():
        raise CheckpointError(f"pretrained backbone checkpoint {pretrained} does not exist; pass "
                              f"pretrained='imagenet' to download {TORCHVISION_URLS[backbone]}, or the path of that "
                              "file")
    model = fn(num_keypoints=int(num_keypoints), **overrides)
    if pretrained:
        load_pretrained(model.backbone, pretrained)
    return model


def _with_weights(name: str, weights: str | os.PathLike, pretrained: Any, overrides: dict[str, Any]) -> PoseModel:
    if pretrained or overrides:
        raise ConfigError(f"create_model({name!r}, weights=...) takes the model's options from the weights; drop "
                          f"{'pretrained' if pretrained else ', '.join(sorted(overrides))}")
    ckpt = load_pose_checkpoint(weights)
    if ckpt["spec"]["model_name"] != name:
        raise CheckpointError(f"weights {weights} are for {ckpt['spec']['model_name']}, not {name}; use "
                              f"create_model({ckpt['spec']['model_name']!r}, weights=...)")
    return model_from_checkpoint(ckpt, where=weights)[0]


def model_from_checkpoint(checkpoint: str | os.PathLike | dict[str, Any], where: Any = None
                          ) -> tuple[PoseModel, PoseSpec]:
    """Build the model a checkpoint describes and load its weights. Returns ``(model.eval(), spec)``.

    Args:
        checkpoint: a checkpoint dict, or anything :func:`~fasterpose.models.loading.load_pose_checkpoint` reads (a
            fasterpose ``.pt``, a ``.safetensors`` export, a published name, an MMPose or official SimpleBaseline
            file).
        where: how to name the checkpoint in messages (default: the path, or "the checkpoint").
    """
    ckpt = checkpoint if isinstance(checkpoint, dict) else load_pose_checkpoint(checkpoint)
    where = where if where is not None else (checkpoint if not isinstance(checkpoint, dict) else "the checkpoint")
    spec = checkpoint_spec(ckpt, where)
    model = create_model(spec.model_name, num_keypoints=spec.keypoint_set.num_keypoints, **spec.model_kwargs)
    return load_weights(model, ckpt, spec).eval(), spec
