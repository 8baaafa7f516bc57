"""``PoseSpec``: everything inference needs to know about a trained model, torch free.

A spec travels inside every checkpoint (``ckpt["spec"]``) and inside exported ONNX files (metadata key
``fasterpose_spec``, JSON), so ``eval``, ``predict`` and ``export`` need nothing but the file.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field, fields
from typing import Any

from .keypoints import COCO17, KeypointSet, get_keypoint_set

#: The longest spec JSON read from a file's metadata (ONNX, safetensors): a spec is a few kB even with hundreds of
#: keypoints; a larger one is not a spec, and parsing it would only cost memory.
MAX_SPEC_JSON_CHARS = 1 << 20
#: The metadata key a file's spec is stored under, in ONNX and safetensors files alike.
SPEC_METADATA_KEY = "fasterpose_spec"


@dataclass
class PoseSpec:
    """Attributes:
    model_name: registry name for ``fasterpose.create_model``.
    model_kwargs: keyword overrides passed to ``create_model`` (e.g. ``{"output_stride": 16}``);
        ``num_keypoints`` is taken from the keypoint set.
    input_size: model input ``(height, width)`` in pixels, e.g. ``(256, 192)``.
    keypoint_set: the whole :class:`~fasterpose.keypoints.KeypointSet` (names, flip pairs, skeleton, sigmas, sides);
        stored as its dict. A name (``"coco17"``, ``"mpii16"``: what files written before sets were stored hold)
        or a dict is turned into the set.
    codec: keyword arguments of :class:`fasterpose.codec.HeatmapCodec`.
    heatmap_activation: ``"sigmoid"`` for RCE-trained models (scores become probabilities), ``"identity"`` for
        MSE-trained ones. Models always output logits; the activation is applied before decoding.
    flip_test: whether inference averages with the horizontally flipped crop by default.
    category_id: id of the keypoint category of the annotation file the model was trained on (``predict`` writes it
        as the results' ``category_id``, so ``eval-results`` scores them against that file); ``None`` when the
        training data had none (MPII) or the file predates it: results then say 1, COCO's person.
    channel_order: ``"rgb"`` (the input is RGB; every model trained here, MMPose's) or ``"bgr"`` (OpenCV's order
        fed as is, with the RGB-ordered ImageNet statistics: the official SimpleBaseline release). See
        :func:`fasterpose.geometry.normalize_crop`.
    source: where the weights came from (a published name and URL, or a converted file), or ``""``.
    """

    model_name: str
    input_size: tuple[int, int]
    keypoint_set: KeypointSet = field(default_factory=lambda: COCO17)
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    codec: dict[str, Any] = field(default_factory=dict)
    heatmap_activation: str = "sigmoid"
    flip_test: bool = True
    category_id: int | None = None
    channel_order: str = "rgb"
    source: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.input_size, (list, tuple)) or len(self.input_size) != 2:
            raise ValueError(f"input_size must be [height, width], got {self.input_size!r}")
        self.input_size = (int(self.input_size[0]), int(self.input_size[1]))
        if min(self.input_size) < 1:
            raise ValueError(f"input_size must be two positive numbers of pixels, got {list(self.input_size)}")
        for name in ("model_kwargs", "codec"):
            value = getattr(self, name)
            if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
                raise ValueError(f"{name} must be a dict of named options, got {value!r:.200}")
        if isinstance(self.keypoint_set, str):
            try:
                self.keypoint_set = get_keypoint_set(self.keypoint_set)
            except KeyError as e:
                raise ValueError(e.args[0]) from None
        elif isinstance(self.keypoint_set, dict):
            self.keypoint_set = KeypointSet.from_dict(self.keypoint_set)
        elif not isinstance(self.keypoint_set, KeypointSet):
            raise ValueError(f"keypoint_set must be a KeypointSet, its dict or a name, got {self.keypoint_set!r}")
        if self.category_id is not None:
            if isinstance(self.category_id, bool) or not isinstance(self.category_id, int):
                raise ValueError(f"category_id must be an integer (a COCO category id) or None, got "
                                 f"{self.category_id!r}")
        if self.heatmap_activation not in ("sigmoid", "identity"):
            raise ValueError(f"heatmap_activation must be 'sigmoid' or 'identity', got {self.heatmap_activation!r}")
        if self.channel_order not in ("rgb", "bgr"):
            raise ValueError(f"channel_order must be 'rgb' or 'bgr', got {self.channel_order!r}")

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: copy.deepcopy(getattr(self, f.name)) for f in fields(self)}
        d["input_size"] = list(self.input_size)
        d["keypoint_set"] = self.keypoint_set.to_dict()
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PoseSpec:
        if not isinstance(d, dict):
            raise ValueError(f"a PoseSpec must be a mapping of its fields, got {type(d).__name__}")
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown PoseSpec fields {sorted(unknown)}; known: {sorted(known)}")
        return cls(**d)

    @classmethod
    def from_json(cls, text: str) -> PoseSpec:
        """Parse a spec stored as JSON; at most :data:`MAX_SPEC_JSON_CHARS` characters (``ValueError`` beyond)."""
        if len(text) > MAX_SPEC_JSON_CHARS:
            raise ValueError(f"the spec JSON is {len(text)} characters long, more than the {MAX_SPEC_JSON_CHARS} a "
                             "spec can need")
        return cls.from_dict(json.loads(text))
