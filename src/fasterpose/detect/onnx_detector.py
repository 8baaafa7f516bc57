"""Person detectors from ONNX files, in the layouts people have: YOLOX and RTMDet exported by MMDeploy (rtmlib's
detectors), raw YOLOX, and Ultralytics YOLOv8/YOLO11 exports (raw or with NMS in the graph).

Each layout fixes its preprocessing and decoding:

============== ===================== ============================= ========================================= =======
layout         letterbox             input                         output                                    NMS
============== ===================== ============================= ========================================= =======
``yolox``      top-left, pad 114     BGR 0-255                     ``dets`` (1, N, 5) x1 y1 x2 y2 score,     in graph
                                                                   ``labels`` (1, N) (optional)
``rtmdet``     top-left, pad 114     BGR, minus mean / std         as ``yolox``                              in graph
                                     (103.53, 116.28, 123.675) /
                                     (57.375, 57.12, 58.395)
``yolox_raw``  top-left, pad 114     BGR 0-255                     (1, N, 5 + C): grid offsets, log sizes    0.45
                                                                   (strides 8, 16, 32), objectness, classes
``ultralytics`` centred, pad 114     RGB / 255                     (1, 4 + C, N): cx cy w h, class scores    0.7
``ultralytics_nms`` as above         RGB / 255                     (1, N, 6) x1 y1 x2 y2 score class         in graph
============== ===================== ============================= ========================================= =======

Coordinates are detector-input pixels; boxes are mapped back through the letterbox, clipped to the image, filtered
to the person class (``person_class``, 0 in COCO and Human-Art) and the score threshold, and returned as
``(M, 5)`` ``(x, y, w, h, score)`` by descending score. The NMS IoU thresholds are those of the source projects
(rtmlib for YOLOX, Ultralytics' ``predict`` for its models).

:func:`detect_layout` reads the layout from the graph: outputs named ``dets`` and ``labels`` are MMDeploy's (YOLOX
when the input first goes through ``Slice`` nodes, the Focus stem of YOLOX's CSPDarknet; RTMDet otherwise, whose
CSPNeXt stem starts with a convolution); a single output ``(1, N, 6)`` is Ultralytics with NMS, ``(1, N, 5)`` YOLOX
with NMS, ``(1, 4 + C, N)`` with ``4 + C < N`` raw Ultralytics, ``(1, N, 5 + C)`` raw YOLOX (``N`` = the anchor
points of strides 8, 16 and 32). When the graph does not say (dynamic shapes, renamed outputs), give the layout.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CheckpointError, ConfigError, check_argument
from .boxes import cxcywh_to_xyxy, nms, xyxy_to_xywh
from .letterbox import letterbox


@dataclass(frozen=True)
class Layout:
    """Pre- and post-processing of one detector family."""

    name: str
    centered: bool  # letterbox padding split around the image (Ultralytics) or right/below it
    rgb: bool  # channel order of the network input
    scale: float  # input = pixels * scale, then (input - mean) / std
    mean: tuple[float, float, float] | None
    std: tuple[float, float, float] | None
    nms_thr: float | None  # None: NMS is in the graph


LAYOUTS: dict[str, Layout] = {
    "yolox": Layout("yolox", False, False, 1.0, None, None, None),
    "rtmdet": Layout("rtmdet", False, False, 1.0, (103.53, 116.28, 123.675), (57.375, 57.12, 58.395), None),
    "yolox_raw": Layout("yolox_raw", False, False, 1.0, None, None, 0.45),
    "ultralytics": Layout("ultralytics", True, True, 1.0 / 255.0, None, None, 0.7),
    "ultralytics_nms": Layout("ultralytics_nms", True, True, 1.0 / 255.0, None, None, None),
}
DEFAULT_INPUT_SIZE = (640, 640)


def _dims(shape: Any) -> list[int | None]:
    return [d if isinstance(d, int) and d > 0 else None for d in shape]


def _input_consumer_ops(path: Path, input_name: str) -> set[str]:
    """Op types of the nodes that read the graph input (empty when the onnx package is missing)."""
    try:
        import onnx
    except ImportError:
        return set()
    model = onnx.load(str(path), load_external_data=False)
    return {n.op_type for n in model.graph.node if input_name in n.input}


def detect_layout(path: str | os.PathLike, session: Any) -> str:
    """The layout name of a detector graph (see the module docstring).

    Raises:
        ConfigError: the outputs fit no known layout.
    """
    outputs = session.get_outputs()
    names = [o.name for o in outputs]
    if "dets" in names:
        ops = _input_consumer_ops(Path(path), session.get_inputs()[0].name)
        return "yolox" if "Slice" in ops else "rtmdet"
    if len(outputs) == 1 and len(outputs[0].shape) == 3:
        _, a, b = _dims(outputs[0].shape)
        in_shape = _dims(session.get_inputs()[0].shape)
        if len(in_shape) == 4 and in_shape[2] and in_shape[3] and b is not None and b >= 6:
            anchors = sum((in_shape[2] // s) * (in_shape[3] // s) for s in (8, 16, 32))
            if a == anchors:  # one row per anchor point: raw YOLOX (even with one class, 6 columns)
                return "yolox_raw"
        if b == 6:
            return "ultralytics_nms"
        if b == 5:
            return "yolox"
        if a is not None and b is not None and 5 <= a < b:
            return "ultralytics"
        if a is not None and b is not None and 6 <= b < a:
            return "yolox_raw"
    shapes = ", ".join(f"{o.name} {o.shape}" for o in outputs)
    raise ConfigError(f"detector {path}: cannot tell its layout from its outputs ({shapes}); give it with "
                      f"--detector-layout ({', '.join(LAYOUTS)})")


class OnnxDetector:
    """A person detector from an ONNX file.

    Args:
        path: the ``.onnx`` file.
        layout: a key of :data:`LAYOUTS`; ``None`` = read from the graph (:func:`detect_layout`).
        score_thr: minimum person score.
        nms_thr: IoU threshold of the NMS for layouts without NMS in the graph (default: the layout's).
        input_size: ``(height, width)`` for graphs with a dynamic input size (default: the graph's, else 640x640).
        person_class: class index of "person" (0 in COCO and Human-Art).
        threads: onnxruntime intra-op threads (``None``: its default).

    Calling ``detector(image_bgr)`` returns ``(M, 5)`` boxes ``(x, y, w, h, score)`` in image pixels.
    """

    def __init__(self, path: str | os.PathLike, layout: str | None = None, score_thr: float = 0.3,
                 nms_thr: float | None = None, input_size: tuple[int, int] | None = None, person_class: int = 0,
                 threads: int | None = None) -> None:
        from ..deploy.onnx_io import ort_session

        check_argument(isinstance(path, (str, os.PathLike)), "OnnxDetector(path)", path, "the path of an ONNX file")
        self.path = Path(path)
        if not self.path.is_file():
            from ..io_utils import not_a_file

            raise CheckpointError(f"detector file {self.path} {not_a_file(self.path)}; give the person detector's "
                                  ".onnx file")
        try:
            self.session = ort_session(self.path, threads=threads)
        except Exception as e:  # noqa: BLE001 - onnxruntime raises its own exception types
            raise CheckpointError(f"onnxruntime could not load the detector {self.path} ({type(e).__name__}: "
                                  f"{str(e).splitlines()[0] if str(e) else ''}); is it a complete ONNX file?") from e
        if layout is not None and layout not in LAYOUTS:
            raise ConfigError(f"unknown detector layout {layout!r}; use one of {', '.join(LAYOUTS)}")
        self.layout = LAYOUTS[layout or detect_layout(self.path, self.session)]
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        shape = _dims(inp.shape)
        if len(shape) != 4 or shape[1] not in (3, None):
            raise CheckpointError(f"detector {self.path}: input {inp.name} must be (1, 3, H, W), got {inp.shape}")
        graph_size = (shape[2], shape[3]) if shape[2] and shape[3] else None
        if input_size is not None and graph_size is not None and tuple(input_size) != graph_size:
            raise ConfigError(f"detector {self.path} takes {graph_size[0]}x{graph_size[1]} inputs, not "
                              f"{input_size[0]}x{input_size[1]}")
        self.input_size: tuple[int, int] = tuple(input_size or graph_size or DEFAULT_INPUT_SIZE)  # type: ignore[assignment]
        if not 0 <= score_thr <= 1:
            raise ConfigError(f"detector score threshold must be in [0, 1], got {score_thr}")
        self.score_thr = float(score_thr)
        self.nms_thr = self.layout.nms_thr if nms_thr is None else float(nms_thr)
        self.person_class = int(person_class)
        self.output_names = [o.name for o in self.session.get_outputs()]

    def preprocess(self, image: np.ndarray) -> tuple[np.ndarray, Any]:
        """``(1, 3, H, W)`` float32 network input and the :class:`~fasterpose.detect.letterbox.Letterbox`."""
        lb = self.layout
        padded, box = letterbox(image, self.input_size, lb.centered)
        x = padded[..., ::-1] if lb.rgb else padded
        x = x.astype(np.float32)
        if lb.scale != 1.0:
            x *= np.float32(lb.scale)
        if lb.mean is not None and lb.std is not None:
            x = (x - np.asarray(lb.mean, np.float32)) / np.asarray(lb.std, np.float32)
        return np.ascontiguousarray(x.transpose(2, 0, 1)[None]), box

    def decode(self, outputs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Person boxes ``(M, 4)`` corner format in detector-input pixels and their scores, before NMS."""
        name = self.layout.name
        if name in ("yolox", "rtmdet"):
            dets = outputs.get("dets", outputs[self.output_names[0]]).reshape(-1, 5)
            keep = np.ones(len(dets), bool)
            if "labels" in outputs:
                keep = outputs["labels"].reshape(-1) == self.person_class
            return dets[keep, :4], dets[keep, 4]
        out = outputs[self.output_names[0]][0]
        if name == "ultralytics_nms":
            keep = np.round(out[:, 5]).astype(np.int64) == self.person_class
            return out[keep, :4], out[keep, 4]
        if name == "ultralytics":
            pred = out.T  # (N, 4 + C)
            cls = pred[:, 4:]
            keep = cls.argmax(axis=1) == self.person_class
            return cxcywh_to_xyxy(pred[keep, :4]), cls[keep, self.person_class]
        # yolox_raw: per anchor point (grid x + dx, grid y + dy) * stride, exp(log size) * stride
        grids, strides = [], []
        h, w = self.input_size
        for s in (8, 16, 32):
            gy, gx = np.mgrid[0:h // s, 0:w // s]
            grids.append(np.stack([gx.ravel(), gy.ravel()], axis=1))
            strides.append(np.full((gx.size, 1), s))
        grid, stride = np.concatenate(grids), np.concatenate(strides)
        if len(grid) != len(out):
            raise CheckpointError(f"detector {self.path}: {len(out)} raw YOLOX predictions, but a {h}x{w} input "
                                  f"has {len(grid)} anchor points at strides 8, 16, 32; wrong --detector-layout?")
        centre = (out[:, :2] + grid) * stride
        size = np.exp(out[:, 2:4]) * stride
        scores = out[:, 4:5] * out[:, 5:]
        keep = scores.argmax(axis=1) == self.person_class
        return (cxcywh_to_xyxy(np.concatenate([centre, size], axis=1)[keep]),
                scores[keep, self.person_class])

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """``(M, 5)`` person boxes ``(x, y, w, h, score)`` in image pixels, by descending score."""
        inputs, box = self.preprocess(image)
        values = self.session.run(None, {self.input_name: inputs})
        boxes, scores = self.decode(dict(zip(self.output_names, values)))
        boxes, scores = np.asarray(boxes, np.float64).reshape(-1, 4), np.asarray(scores, np.float64).reshape(-1)
        ok = np.isfinite(scores) & np.isfinite(boxes).all(axis=1) & (scores >= self.score_thr)
        boxes, scores = boxes[ok], scores[ok]
        if self.nms_thr is not None and len(boxes):
            keep = nms(boxes, scores, self.nms_thr)
            boxes, scores = boxes[keep], scores[keep]
        boxes = box.to_image(boxes)
        h, w = image.shape[:2]
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
        xywh = xyxy_to_xywh(boxes)
        ok = (xywh[:, 2] >= 1) & (xywh[:, 3] >= 1)
        order = np.argsort(-scores[ok], kind="stable")
        return np.concatenate([xywh[ok], scores[ok, None]], axis=1)[order]

    def __repr__(self) -> str:
        return (f"OnnxDetector({self.path.name}, layout={self.layout.name}, input={self.input_size[0]}x"
                f"{self.input_size[1]}, score_thr={self.score_thr}, nms_thr={self.nms_thr})")
