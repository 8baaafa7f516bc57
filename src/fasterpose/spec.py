"""``PoseSpec``: everything inference needs to know about a trained model, torch free.

A spec travels inside every checkpoint (``ckpt["spec"]``) and inside exported ONNX files (metadata key
``fasterpose_spec``, JSON), so ``eval``, ``predict`` and ``export`` need nothing but the file.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class PoseSpec:
    """Attributes:
    model_name: registry name for ``fasterpose.create_model``.
    model_kwargs: keyword overrides passed to ``create_model`` (e.g. ``{"output_stride": 16}``);
        ``num_keypoints`` is taken from the keypoint set.
    input_size: model input ``(height, width)`` in pixels, e.g. ``(256, 192)``.
    keypoint_set: name in :mod:`fasterpose.keypoints` (``"coco17"`` or ``"mpii16"``).
    codec: keyword arguments of :class:`fasterpose.codec.HeatmapCodec`.
    heatmap_activation: ``"sigmoid"`` for RCE-trained models (scores become probabilities), ``"identity"`` for
        MSE-trained ones. Models always output logits; the activation is applied before decoding.
    flip_test: whether inference averages with the horizontally flipped crop by default.
    channel_order: ``"rgb"`` (the input is RGB; every model trained here, MMPose's) or ``"bgr"`` (OpenCV's order
        fed as is, with the RGB-ordered ImageNet statistics: the official SimpleBaseline release). See
        :func:`fasterpose.geometry.normalize_crop`.
    source: where the weights came from (a published name and URL, or a converted file), or ``""``.
    """

    model_name: str
    input_size: tuple[int, int]
    keypoint_set: str = "coco17"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    codec: dict[str, Any] = field(default_factory=dict)
    heatmap_activation: str = "sigmoid"
    flip_test: bool = True
    channel_order: str = "rgb"
    source: str = ""

    def __post_init__(self) -> None:
        self.input_size = (int(self.input_size[0]), int(self.input_size[1]))
        if self.heatmap_activation not in ("sigmoid", "identity"):
            raise ValueError(f"heatmap_activation must be 'sigmoid' or 'identity', got {self.heatmap_activation!r}")
        if self.channel_order not in ("rgb", "bgr"):
            raise ValueError(f"channel_order must be 'rgb' or 'bgr', got {self.channel_order!r}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["input_size"] = list(self.input_size)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PoseSpec:
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown PoseSpec fields {sorted(unknown)}; known: {sorted(known)}")
        return cls(**d)

    @classmethod
    def from_json(cls, text: str) -> PoseSpec:
        return cls.from_dict(json.loads(text))
