"""Person detectors from ONNX files (fasterpose.detect): layout detection, letterbox and its inverse, decoding, class
filter, score threshold and NMS, on small ONNX graphs built here whose outputs are known constants."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from _opencv import needs_hog  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from fasterpose.detect import OnnxDetector, detect_layout  # noqa: E402
from fasterpose.detect.boxes import box_iou, nms  # noqa: E402
from fasterpose.detect.letterbox import letterbox  # noqa: E402
from fasterpose.errors import CheckpointError, ConfigError  # noqa: E402

IMAGE_HW = (200, 400)  # letterboxed into 320x320: ratio 0.8, resized 160x320


def _stem_nodes(stem: str, size: tuple[int, int], inits: list) -> tuple[list, str]:
    """Nodes that take the graph input first: YOLOX's Focus as Slice nodes or as MMDeploy's rewrite (reshape,
    6-D transpose, reshape: a space-to-depth) into a convolution, RTMDet's convolution, or a plain ReduceMean."""
    h, w = size
    nodes: list = []
    if stem == "Slice":
        for name, v in (("starts", [0]), ("ends", [1]), ("axes", [1])):
            inits.append(numpy_helper.from_array(np.array(v, np.int64), name))
        nodes.append(helper.make_node("Slice", ["input", "starts", "ends", "axes"], ["sliced"]))
        return nodes, "sliced"
    x, channels = "input", 3
    if stem.startswith("TransposeFocus"):  # "TransposeFocusFused": the two first reshapes folded into one
        for name, shape in (("s1", [1, 3, h // 2, 2, w]), ("s2", [1, 3, h // 2, 2, w // 2, 2]),
                            ("s3", [1, 12, h // 2, w // 2])):
            inits.append(numpy_helper.from_array(np.array(shape, np.int64), name))
        if stem == "TransposeFocusFused":
            nodes.append(helper.make_node("Reshape", ["input", "s2"], ["r2"]))
        else:
            nodes += [helper.make_node("Reshape", ["input", "s1"], ["r1"]),
                      helper.make_node("Reshape", ["r1", "s2"], ["r2"])]
        nodes += [helper.make_node("Transpose", ["r2"], ["t"], perm=[0, 5, 3, 1, 2, 4]),
                  helper.make_node("Reshape", ["t", "s3"], ["focused"])]
        x, channels = "focused", 12
    if stem == "Conv" or stem.startswith("TransposeFocus"):
        inits.append(numpy_helper.from_array(np.full((4, channels, 3, 3), 0.01, np.float32), "stem_w"))
        nodes.append(helper.make_node("Conv", [x, "stem_w"], ["stem_out"], pads=[1, 1, 1, 1]))
        return nodes, "stem_out"
    return nodes, "input"


def _graph(path: Path, size: tuple[int, int], outputs: dict[str, np.ndarray], stem: str = "ReduceMean",
           metadata: dict[str, str] | None = None) -> Path:
    """An ONNX graph whose outputs are the given constants (float outputs plus 0 * mean(stem output), so that they
    depend on the input); ``stem`` is what reads the input first (:func:`_stem_nodes`); ``metadata`` becomes the
    model's metadata_props (as Ultralytics writes them)."""
    inits: list = []
    nodes, x = _stem_nodes(stem, size, inits)
    nodes.append(helper.make_node("ReduceMean", [x], ["mean"], keepdims=0))
    inits.append(numpy_helper.from_array(np.array(0.0, np.float32), "zero"))
    nodes.append(helper.make_node("Mul", ["mean", "zero"], ["nothing"]))
    graph_outputs = []
    for name, value in outputs.items():
        const = numpy_helper.from_array(value, f"{name}_const")
        inits.append(const)
        if value.dtype == np.float32:
            nodes.append(helper.make_node("Add", [f"{name}_const", "nothing"], [name]))
            elem = TensorProto.FLOAT
        else:
            nodes.append(helper.make_node("Identity", [f"{name}_const"], [name]))
            elem = TensorProto.INT64
        graph_outputs.append(helper.make_tensor_value_info(name, elem, list(value.shape)))
    graph = helper.make_graph(nodes, "detector", [helper.make_tensor_value_info(
        "input", TensorProto.FLOAT, [1, 3, size[0], size[1]])], graph_outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    if metadata:
        helper.set_model_props(model, metadata)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _image(color: tuple[int, int, int] = (10, 20, 30)) -> np.ndarray:
    return np.full((*IMAGE_HW, 3), color, np.uint8)


# Detector-input box (80, 40)-(160, 120) with top-left letterboxing = image (100, 50)-(200, 150).
MMDEPLOY_DETS = np.array([[[80, 40, 160, 120, 0.9], [0, 0, 10, 10, 0.2], [100, 100, 200, 200, 0.8]]], np.float32)
MMDEPLOY_LABELS = np.array([[0, 0, 2]], np.int64)


def test_letterbox_placement_and_inverse() -> None:
    img = _image()
    top, lb = letterbox(img, (320, 320), centered=False)
    assert lb.ratio == pytest.approx(0.8) and (lb.pad_x, lb.pad_y) == (0, 0)
    assert (top[:160] == (10, 20, 30)).all() and (top[160:] == 114).all()
    mid, lb2 = letterbox(img, (320, 320), centered=True)
    assert (lb2.pad_x, lb2.pad_y) == (0, 80)
    assert (mid[:80] == 114).all() and (mid[80:240] == (10, 20, 30)).all() and (mid[240:] == 114).all()
    np.testing.assert_allclose(lb2.to_image(np.array([[80, 120, 160, 200]])), [[100, 50, 200, 150]])
    np.testing.assert_allclose(lb.to_image(np.array([[80, 40, 160, 120]])), [[100, 50, 200, 150]])


def test_yolox_mmdeploy(tmp_path: Path) -> None:
    path = _graph(tmp_path / "yolox.onnx", (320, 320), {"dets": MMDEPLOY_DETS, "labels": MMDEPLOY_LABELS},
                  stem="Slice")
    det = OnnxDetector(path)
    assert det.layout.name == "yolox" and det.input_size == (320, 320)
    # low score and non-person label dropped; mapped back through the top-left letterbox
    np.testing.assert_allclose(det(_image()), [[100, 50, 100, 100, 0.9]], rtol=1e-6)
    x, _ = det.preprocess(_image())
    assert x.shape == (1, 3, 320, 320) and x.dtype == np.float32
    np.testing.assert_array_equal(x[0, :, 0, 0], [10, 20, 30])  # BGR, 0-255, no normalisation
    np.testing.assert_array_equal(x[0, :, 200, 0], [114, 114, 114])
    assert len(OnnxDetector(path, score_thr=0.95)(_image())) == 0


def test_rtmdet_mmdeploy_normalises(tmp_path: Path) -> None:
    path = _graph(tmp_path / "rtmdet.onnx", (320, 320), {"dets": MMDEPLOY_DETS, "labels": MMDEPLOY_LABELS},
                  stem="Conv")
    det = OnnxDetector(path)
    assert det.layout.name == "rtmdet" and "convolution" in det.reason
    np.testing.assert_allclose(det(_image()), [[100, 50, 100, 100, 0.9]], rtol=1e-6)
    x, _ = det.preprocess(_image())
    expected = (np.array([10, 20, 30]) - [103.53, 116.28, 123.675]) / [57.375, 57.12, 58.395]
    np.testing.assert_allclose(x[0, :, 0, 0], expected, rtol=1e-5)
    # a label output is optional: one (1, N, 5) output is YOLOX with NMS in the graph (rtmlib's other export)
    single = OnnxDetector(_graph(tmp_path / "single.onnx", (320, 320), {"out": MMDEPLOY_DETS}, stem="Slice"))
    assert single.layout.name == "yolox"
    np.testing.assert_allclose(single(_image())[:, :4], [[100, 50, 100, 100], [125, 125, 125, 75]])  # clipped


def test_ultralytics_with_nms(tmp_path: Path) -> None:
    out = np.zeros((1, 5, 6), np.float32)
    out[0, 0] = [80, 120, 160, 200, 0.9, 0]
    out[0, 1] = [80, 120, 160, 200, 0.95, 5]  # another class
    out[0, 2] = [0, 60, 400, 300, 0.5, 0]  # runs past the image: clipped to it
    path = _graph(tmp_path / "yolo_nms.onnx", (320, 320), {"output0": out})
    det = OnnxDetector(path)
    assert det.layout.name == "ultralytics_nms"
    np.testing.assert_allclose(det(_image()), [[100, 50, 100, 100, 0.9], [0, 0, 400, 200, 0.5]], rtol=1e-6)
    x, _ = det.preprocess(_image())
    np.testing.assert_allclose(x[0, :, 100, 0], np.array([30, 20, 10]) / 255, rtol=1e-6)  # RGB / 255, centred
    np.testing.assert_allclose(x[0, :, 0, 0], 114 / 255, rtol=1e-6)


def test_ultralytics_raw_class_filter_threshold_nms(tmp_path: Path) -> None:
    pred = np.zeros((8, 6), np.float32)  # (N, 4 + C) with C = 2 classes; exported transposed as (1, 6, 8)
    pred[0] = [120, 160, 80, 80, 0.9, 0.1]  # A: input (80, 120)-(160, 200)
    pred[1] = [122, 160, 80, 80, 0.85, 0.0]  # IoU 0.95 with A: suppressed
    pred[2] = [250, 160, 40, 80, 0.6, 0.0]  # C: kept
    pred[3] = [50, 160, 40, 80, 0.5, 0.9]  # another class wins: dropped
    pred[4] = [300, 100, 20, 20, 0.2, 0.0]  # below the score threshold
    path = _graph(tmp_path / "yolo_raw.onnx", (320, 320), {"output0": pred.T[None].copy()})
    det = OnnxDetector(path)
    assert det.layout.name == "ultralytics" and det.nms_thr == 0.7
    np.testing.assert_allclose(det(_image()), [[100, 50, 100, 100, 0.9], [287.5, 50, 50, 100, 0.6]], rtol=1e-6)
    # with a looser NMS both overlapping boxes stay
    assert len(OnnxDetector(path, nms_thr=0.99)(_image())) == 3


def test_yolox_raw_grid_decoding(tmp_path: Path) -> None:
    out = np.zeros((1, 8 * 8 + 4 * 4 + 2 * 2, 6), np.float32)  # 64x64 input, strides 8, 16, 32; one class
    out[0, 3 * 8 + 2] = [0.5, 0.5, np.log(4), np.log(2), 0.9, 1.0]  # cell (2, 3) at stride 8
    out[0, 64 + 5] = [0, 0, 0, 0, 0.5, 0.4]  # objectness x class = 0.2 < 0.3
    path = _graph(tmp_path / "yolox_raw.onnx", (64, 64), {"output": out})
    det = OnnxDetector(path)
    assert det.layout.name == "yolox_raw"
    # centre (2.5, 3.5) * 8 = (20, 28), size (4, 2) * 8 = (32, 16)
    np.testing.assert_allclose(det(np.zeros((64, 64, 3), np.uint8)), [[4, 20, 32, 16, 0.9]], rtol=1e-5)


def _iou_scalar(a: np.ndarray, b: np.ndarray) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - iw * ih
    return iw * ih / union


def test_nms_matches_a_scalar_reference() -> None:
    """Vectorised NMS and IoU against plain loops (torchvision.ops.nms's rule: drop when IoU > thr)."""
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 100, (150, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(5, 40, (150, 2))], axis=1)
    scores = rng.uniform(0, 1, 150)
    for thr in (0.3, 0.5, 0.7):
        kept: list[int] = []
        for i in np.argsort(-scores):
            if all(_iou_scalar(boxes[i], boxes[k]) <= thr for k in kept):
                kept.append(int(i))
        np.testing.assert_array_equal(nms(boxes, scores, thr), kept)
    ref = [[_iou_scalar(a, b) for b in boxes[:30]] for a in boxes[:20]]
    np.testing.assert_allclose(box_iou(boxes[:20], boxes[:30]), ref, rtol=1e-12)


def test_bad_detectors_are_named_errors(tmp_path: Path) -> None:
    odd = _graph(tmp_path / "odd.onnx", (64, 64), {"scores": np.zeros((1, 3), np.float32)})
    with pytest.raises(ConfigError, match="--detector-layout"):
        OnnxDetector(odd)
    with pytest.raises(ConfigError, match="unknown detector layout"):
        OnnxDetector(odd, layout="yolov99")
    with pytest.raises(CheckpointError, match="does not exist"):
        OnnxDetector(tmp_path / "missing.onnx")
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    with pytest.raises(CheckpointError, match="could not load"):
        OnnxDetector(broken)
    session = OnnxDetector(odd, layout="ultralytics_nms").session
    with pytest.raises(ConfigError, match="odd.onnx"):
        detect_layout(odd, session)


def test_published_detector_table_is_consistent() -> None:
    from fasterpose.detect import LAYOUTS
    from fasterpose.detect.zoo import DETECTORS

    for name, d in DETECTORS.items():
        assert d.layout in LAYOUTS and d.url.startswith("https://") and d.url.endswith(".zip"), name
        assert all(s % 32 == 0 for s in d.input_size), name  # strides 8, 16, 32


@needs_hog
def test_hog_on_images_smaller_than_its_window() -> None:
    """No person fits in an image smaller than HOG's 64x128 window; OpenCV crashed the process on some of these."""
    from fasterpose.detect import hog_people_boxes

    for hw in ((96, 80), (300, 47), (60, 200), (127, 64)):
        assert hog_people_boxes(np.full((*hw, 3), 90, np.uint8)).shape == (0, 5)
