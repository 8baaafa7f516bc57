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

:func:`identify_layout` says which layout a graph has and why (kept as :attr:`OnnxDetector.reason`):

1. MMDeploy's description beside the file (``deploy.json``, ``pipeline.json``, ``detail.json``; see
   :mod:`fasterpose.detect.export_info`) names the family, its normalisation and input size; it wins.
2. Ultralytics' export metadata (``author``, read by onnxruntime): ``(1, N, 6)`` with NMS, ``(1, 4 + C, N)`` raw.
3. Outputs ``dets`` (and ``labels``), or one ``(1, N, 5)`` output, are an end2end graph with NMS inside: YOLOX when
   the input goes through its Focus stem, either as ``Slice`` nodes (the original) or as MMDeploy's rewrite
   (``focus__forward__default``: Reshape -> Reshape -> Transpose with a 6-D perm -> Reshape -> Conv, a
   space-to-depth); RTMDet when the input goes straight into a convolution (CSPNeXt's stem). Telling them apart needs
   the ``onnx`` package; without it, or with another stem, the layout must be given.
4. One other output: ``(1, N, 5 + C)`` with ``N`` the anchor points of strides 8, 16 and 32 (or ``6 <= 5 + C < N``)
   is raw YOLOX, ``(1, N, 6)`` Ultralytics with NMS, ``(1, 4 + C, N)`` with ``4 + C < N`` raw Ultralytics.

When the graph does not say (dynamic shapes, renamed outputs, no onnx package), give the layout
(``--detector-layout``); guessing would normalise the input wrongly and lose the boxes silently.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CheckpointError, ConfigError, check_argument
from .boxes import cxcywh_to_xyxy, nms, xyxy_to_xywh
from .export_info import ExportInfo, info_beside
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


_SHAPE_OPS = {"Reshape", "Transpose", "Squeeze", "Unsqueeze", "Flatten", "Identity"}


def _perm_length(node: Any) -> int:
    return max((len(a.ints) for a in node.attribute if a.name == "perm"), default=0)


def _stem(path: Path, input_name: str) -> tuple[str, str] | None:
    """What the graph input goes through first: ``("focus" | "conv" | "other", description)``; ``None`` when the onnx
    package is missing. ``Shape`` nodes are skipped: they read only the input's size (dynamic-shape exports)."""
    try:
        import onnx
    except ImportError:
        return None
    model = onnx.load(str(path), load_external_data=False)
    consumers: dict[str, list[Any]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    def readers(name: str) -> list[Any]:
        return [n for n in consumers.get(name, []) if n.op_type != "Shape"]

    first = readers(input_name)
    ops = sorted({n.op_type for n in first})
    if "Slice" in ops:
        return "focus", "the input goes through Slice nodes (YOLOX's Focus stem)"
    if "SpaceToDepth" in ops:
        return "focus", "the input goes through SpaceToDepth (YOLOX's Focus stem)"
    if ops == ["Conv"]:
        return "conv", "the input goes straight into a convolution (RTMDet's CSPNeXt stem; YOLOX's starts with Focus)"
    if len(first) == 1 and first[0].op_type in _SHAPE_OPS:
        # MMDeploy's focus__forward__default: reshape (B, C, H/2, 2, W/2, 2), permute, reshape (B, 4C, H/2, W/2).
        chain, node = [], first[0]
        while node is not None and node.op_type in _SHAPE_OPS and len(chain) < 8:
            chain.append(node)
            nxt = readers(node.output[0])
            node = nxt[0] if len(nxt) == 1 else None
        kinds = [n.op_type for n in chain]
        wide_transpose = any(n.op_type == "Transpose" and _perm_length(n) >= 5 for n in chain)
        if node is not None and node.op_type == "Conv" and wide_transpose and kinds.count("Reshape") >= 2 \
                and kinds.index("Reshape") < kinds.index("Transpose") < len(kinds) - 1 - kinds[::-1].index("Reshape"):
            return "focus", (f"the input goes through {' -> '.join(kinds)} -> Conv, a space-to-depth (YOLOX's Focus "
                             "stem as MMDeploy rewrites it)")
        ops = kinds + ([node.op_type] if node is not None else [])
    return "other", f"the input goes first through {', '.join(ops) or 'nothing'}"


def _normalisation(layout: Layout) -> str:
    order = "RGB" if layout.rgb else "BGR"
    scale = "0-255" if layout.scale == 1.0 else f"x {layout.scale:.6g}"
    norm = f", minus mean {list(layout.mean)} / std {list(layout.std)}" if layout.mean and layout.std else ""
    pad = "centred" if layout.centered else "top-left"
    return f"{order} {scale}{norm}, {pad} letterbox padded with 114"


def _ultralytics_meta(session: Any) -> dict[str, str]:
    """Ultralytics' export metadata (``author``, ``task``, ``imgsz``...), read by onnxruntime; empty for others."""
    try:
        meta = dict(session.get_modelmeta().custom_metadata_map)
    except Exception:  # noqa: BLE001 - a session stand-in without metadata
        return {}
    return meta if "ultralytics" in (meta.get("author", "") + meta.get("description", "")).lower() else {}


def _need_layout(path: Any, why: str) -> ConfigError:
    return ConfigError(f"detector {path}: cannot tell its layout: {why}; give it with --detector-layout "
                       f"({', '.join(LAYOUTS)})")


def identify_layout(path: str | os.PathLike, session: Any) -> tuple[str, str]:
    """The layout name of a detector graph and why (see the module docstring).

    Raises:
        ConfigError: the graph fits no known layout, or the family cannot be told apart (say ``--detector-layout``).
    """
    outputs = session.get_outputs()
    names = [o.name for o in outputs]
    single = len(outputs) == 1 and len(outputs[0].shape) == 3
    _, a, b = _dims(outputs[0].shape) if single else (None, None, None)
    meta = _ultralytics_meta(session)
    if meta and single and (b == 6 or (a is not None and b is not None and 5 <= a < b)):
        name = "ultralytics_nms" if b == 6 else "ultralytics"
        return name, (f"its metadata names Ultralytics (task {meta.get('task', '?')}) and its output is "
                      f"{outputs[0].shape}: {'boxes after NMS' if b == 6 else 'raw (4 + classes, anchors)'}")
    mmdeploy = "dets" in names or (single and b == 5)
    if mmdeploy:
        what = "outputs dets/labels (MMDeploy's end2end graph, NMS inside)" if "dets" in names else \
            f"one {outputs[0].shape} output (boxes and scores, NMS inside)"
        stem = _stem(Path(path), session.get_inputs()[0].name)
        if stem is None:
            raise _need_layout(path, f"it {what}, but telling YOLOX from RTMDet needs its stem and the onnx package "
                                     "is not installed (pip install onnx)")
        kind, seen = stem
        if kind == "focus":
            return "yolox", f"it {what} and {seen}"
        if kind == "conv":
            return "rtmdet", f"it {what} and {seen}"
        raise _need_layout(path, f"it {what}, but {seen}: neither YOLOX's Focus nor RTMDet's convolution")
    if single:
        in_shape = _dims(session.get_inputs()[0].shape)
        if len(in_shape) == 4 and in_shape[2] and in_shape[3] and b is not None and b >= 6:
            anchors = sum((in_shape[2] // s) * (in_shape[3] // s) for s in (8, 16, 32))
            if a == anchors:  # one row per anchor point: raw YOLOX (even with one class, 6 columns)
                return "yolox_raw", (f"its one output {outputs[0].shape} has a row per anchor point of strides 8, 16, "
                                     f"32 ({anchors}): raw YOLOX")
        if b == 6:
            return "ultralytics_nms", f"its one output {outputs[0].shape} is (1, N, 6): Ultralytics with NMS"
        if a is not None and b is not None and 5 <= a < b:
            return "ultralytics", f"its one output {outputs[0].shape} is (1, 4 + classes, N): raw Ultralytics"
        if a is not None and b is not None and 6 <= b < a:
            return "yolox_raw", f"its one output {outputs[0].shape} is (1, N, 5 + classes): raw YOLOX"
    shapes = ", ".join(f"{o.name} {o.shape}" for o in outputs)
    raise _need_layout(path, f"its outputs ({shapes}) fit no known layout")


def detect_layout(path: str | os.PathLike, session: Any) -> str:
    """The layout name of a detector graph (:func:`identify_layout` without the reason)."""
    return identify_layout(path, session)[0]


class OnnxDetector:
    """A person detector from an ONNX file.

    Args:
        path: the ``.onnx`` file.
        layout: a key of :data:`LAYOUTS` or a :class:`Layout`; ``None`` = from MMDeploy's description beside the
            file (:func:`~fasterpose.detect.export_info.info_beside`), else from the graph (:func:`identify_layout`).
        score_thr: minimum person score.
        nms_thr: IoU threshold of the NMS for layouts without NMS in the graph (default: the layout's).
        input_size: ``(height, width)`` for graphs with a dynamic input size (default: the graph's, else 640x640).
        person_class: class index of "person" (0 in COCO and Human-Art).
        threads: onnxruntime intra-op threads (``None``: its default).
        reason: why ``layout`` was chosen, when the caller chose it (kept in :attr:`reason`).
        description: MMDeploy's description of the export (e.g. read from its zip), used when ``layout`` is None;
            its input size applies to graphs with a dynamic input size.

    :attr:`reason` says which layout and normalisation are used and why. Calling ``detector(image_bgr)`` returns
    ``(M, 5)`` boxes ``(x, y, w, h, score)`` in image pixels.
    """

    def __init__(self, path: str | os.PathLike, layout: str | Layout | None = None, score_thr: float = 0.3,
                 nms_thr: float | None = None, input_size: tuple[int, int] | None = None, person_class: int = 0,
                 threads: int | None = None, reason: str | None = None,
                 description: ExportInfo | None = None) -> None:
        from ..deploy.onnx_io import ort_session

        check_argument(isinstance(path, (str, os.PathLike)), "OnnxDetector(path)", path, "the path of an ONNX file")
        self.path = Path(path)
        if not self.path.is_file():
            from ..io_utils import not_a_file

            raise CheckpointError(f"detector file {self.path} {not_a_file(self.path)}; give the person detector's "
                                  ".onnx file")
        try:
            self.session = ort_session(self.path, threads=threads)
        except CheckpointError:
            raise
        except Exception as e:  # noqa: BLE001 - onnxruntime raises its own exception types
            raise CheckpointError(f"onnxruntime could not load the detector {self.path} ({type(e).__name__}: "
                                  f"{str(e).splitlines()[0] if str(e) else ''}); is it a complete ONNX file?") from e
        if isinstance(layout, str) and layout not in LAYOUTS:
            raise ConfigError(f"unknown detector layout {layout!r}; use one of {', '.join(LAYOUTS)}")
        described = description if layout is None else None
        if isinstance(layout, Layout):
            self.layout = layout
        elif layout is not None:
            self.layout, reason = LAYOUTS[layout], reason or "given (--detector-layout)"
        elif described is not None or (described := info_beside(self.path)) is not None:
            self.layout, reason = layout_from_info(described), described.reason
        else:
            name, reason = identify_layout(self.path, self.session)
            self.layout = LAYOUTS[name]
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        shape = _dims(inp.shape)
        if len(shape) != 4 or shape[1] not in (3, None):
            raise CheckpointError(f"detector {self.path}: input {inp.name} must be (1, 3, H, W), got {inp.shape}")
        graph_size = (shape[2], shape[3]) if shape[2] and shape[3] else None
        if input_size is not None and graph_size is not None and tuple(input_size) != graph_size:
            raise ConfigError(f"detector {self.path} takes {graph_size[0]}x{graph_size[1]} inputs, not "
                              f"{input_size[0]}x{input_size[1]}")
        if input_size is None and graph_size is None and described is not None:
            input_size = described.input_size
        self.input_size: tuple[int, int] = tuple(input_size or graph_size or DEFAULT_INPUT_SIZE)  # type: ignore[assignment]
        #: which layout and normalisation were chosen and why, for the user (printed in summaries)
        self.reason = f"{self.layout.name} ({_normalisation(self.layout)}): {reason or 'given by the caller'}"
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
                f"{self.input_size[1]}, score_thr={self.score_thr}, nms_thr={self.nms_thr}, reason={self.reason!r})")


def layout_from_info(info: ExportInfo) -> Layout:
    """The family's :class:`Layout` with the normalisation the export states (the family's own when it states none)."""
    if not info.normalisation_stated:
        return LAYOUTS[info.layout]
    return replace(LAYOUTS[info.layout], mean=info.mean, std=info.std, rgb=info.rgb)
