"""Detectors read as their exporters wrote them: MMDeploy's description files (deploy.json, pipeline.json,
detail.json) in a folder, a zip or beside a bare graph; YOLOX's Focus stem as Slice nodes and as MMDeploy's
transpose rewrite (graphs built with onnx.helper and exported from torch); RTMDet's convolution stem; Ultralytics'
metadata; and a clear request for ``--detector-layout`` where the graph does not say."""

from __future__ import annotations

import json
import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from test_detect import MMDEPLOY_DETS, MMDEPLOY_LABELS, _graph, _image  # noqa: E402

from fasterpose.detect import OnnxDetector, open_detector  # noqa: E402
from fasterpose.detect.onnx_detector import identify_layout  # noqa: E402
from fasterpose.errors import ConfigError  # noqa: E402

RTMDET_MEAN, RTMDET_STD = [103.53, 116.28, 123.675], [57.375, 57.12, 58.395]
MMDEPLOY_OUTPUTS = {"dets": MMDEPLOY_DETS, "labels": MMDEPLOY_LABELS}


def _pixel(det: OnnxDetector) -> np.ndarray:
    """The network input at the top-left pixel of ``_image()`` (BGR (10, 20, 30))."""
    x, _ = det.preprocess(_image())
    return x[0, :, 0, 0]


# ---------------------------------------------------------------------------------------------- bare graphs


@pytest.mark.parametrize("stem", ["TransposeFocus", "TransposeFocusFused"])
def test_transpose_focus_is_yolox(tmp_path: Path, stem: str) -> None:
    """MMDeploy's focus__forward__default (reshape, 6-D transpose, reshape into the first convolution; an optimiser
    may fold the first two reshapes) is YOLOX, normalised as YOLOX (BGR 0-255, no mean/std), not as RTMDet."""
    det = OnnxDetector(_graph(tmp_path / "end2end.onnx", (320, 320), MMDEPLOY_OUTPUTS, stem=stem))
    assert det.layout.name == "yolox" and det.layout.mean is None and not det.layout.rgb
    assert "Transpose -> Reshape -> Conv" in det.reason and "BGR 0-255" in det.reason
    np.testing.assert_array_equal(_pixel(det), [10, 20, 30])
    np.testing.assert_allclose(det(_image()), [[100, 50, 100, 100, 0.9]], rtol=1e-6)


def test_unknown_stem_asks_for_the_layout(tmp_path: Path) -> None:
    path = _graph(tmp_path / "odd_stem.onnx", (320, 320), MMDEPLOY_OUTPUTS)  # ReduceMean first: neither family
    with pytest.raises(ConfigError, match=r"ReduceMean.*--detector-layout"):
        OnnxDetector(path)
    det = OnnxDetector(path, layout="rtmdet")
    assert det.layout.name == "rtmdet" and "given (--detector-layout)" in det.reason


def test_without_the_onnx_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The stem cannot be read without onnx: an end2end graph needs --detector-layout (never a silent RTMDet);
    layouts that the outputs alone show still work."""
    mm = _graph(tmp_path / "mm.onnx", (320, 320), MMDEPLOY_OUTPUTS, stem="Slice")
    out = np.zeros((1, 5, 6), np.float32)
    nms = _graph(tmp_path / "nms.onnx", (320, 320), {"output0": out})
    monkeypatch.setitem(sys.modules, "onnx", None)  # `import onnx` raises ImportError
    with pytest.raises(ConfigError, match=r"pip install onnx.*--detector-layout"):
        OnnxDetector(mm)
    assert OnnxDetector(mm, layout="yolox").layout.name == "yolox"
    assert OnnxDetector(nms).layout.name == "ultralytics_nms"


def test_ultralytics_metadata_decides(tmp_path: Path) -> None:
    """(1, 84, 6) on a 64x64 input has one row per anchor point (64 + 16 + 4): by shape, raw YOLOX with one class.
    Ultralytics' metadata says it is its NMS output (x1 y1 x2 y2 score class)."""
    out = np.zeros((1, 84, 6), np.float32)
    assert OnnxDetector(_graph(tmp_path / "plain.onnx", (64, 64), {"output0": out})).layout.name == "yolox_raw"
    meta = {"author": "Ultralytics", "task": "detect", "imgsz": "[64, 64]", "names": "{0: 'person'}"}
    det = OnnxDetector(_graph(tmp_path / "yolo.onnx", (64, 64), {"output0": out}, metadata=meta))
    assert det.layout.name == "ultralytics_nms" and "metadata names Ultralytics" in det.reason
    assert "RGB" in det.reason and "centred" in det.reason
    raw = OnnxDetector(_graph(tmp_path / "raw.onnx", (64, 64), {"output0": np.zeros((1, 6, 84), np.float32)},
                              metadata=meta))
    assert raw.layout.name == "ultralytics"


def _torch_detector(path: Path, stem: str, dynamic: bool) -> Path:
    """A tiny detector exported by torch's own ONNX exporter: the Focus stem as YOLOX writes it (strided slices) or
    as MMDeploy rewrites it (reshape, permute, reshape), or RTMDet's plain convolution; then constant dets/labels
    (plus 0 * the features, so that they depend on the input)."""
    torch = pytest.importorskip("torch")

    class Tiny(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(12 if stem != "conv" else 3, 4, 3, padding=1)

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            if stem == "slice":
                x = torch.cat([x[..., ::2, ::2], x[..., 1::2, ::2], x[..., ::2, 1::2], x[..., 1::2, 1::2]], dim=1)
            elif stem == "transpose":  # the data movement of mmdeploy's focus__forward__default
                b, c, h, w = x.shape
                x = x.reshape(b, c, -1, 2, w)
                x = x.reshape(b, c, x.shape[2], 2, -1, 2)
                half_h, half_w = x.shape[2], x.shape[4]
                x = x.permute(0, 5, 3, 1, 2, 4).reshape(b, c * 4, half_h, half_w)
            zero = self.conv(x).mean() * 0
            return torch.from_numpy(MMDEPLOY_DETS) + zero, torch.from_numpy(MMDEPLOY_LABELS)

    axes = {"input": {2: "height", 3: "width"}} if dynamic else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation and the constant-tensor trace warnings
        torch.onnx.export(Tiny().eval(), torch.zeros(1, 3, 64, 64), str(path), input_names=["input"],
                          output_names=["dets", "labels"], dynamic_axes=axes, opset_version=13, dynamo=False)
    return path


@pytest.mark.parametrize(("stem", "dynamic", "layout"), [("transpose", True, "yolox"), ("transpose", False, "yolox"),
                                                         ("slice", True, "yolox"), ("conv", True, "rtmdet")])
def test_torch_exported_stems(tmp_path: Path, stem: str, dynamic: bool, layout: str) -> None:
    """The graphs torch writes (with Shape nodes for dynamic sizes) are recognised too."""
    path = _torch_detector(tmp_path / f"{stem}.onnx", stem, dynamic)
    import onnxruntime as ort

    name, reason = identify_layout(path, ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]))
    assert name == layout, reason


# ---------------------------------------------------------------------------------------------- MMDeploy's description


def _describe(folder: Path, model: str, mean: list[float], std: list[float], size: list[int] | None,
              input_shape: list[int] | None = None) -> None:
    """deploy.json, pipeline.json and detail.json with the fields MMDeploy's export_info.py writes."""
    folder.mkdir(parents=True, exist_ok=True)
    deploy = {"version": "1.3.1", "task": "Detector", "customs": [],
              "models": [{"name": model, "net": "end2end.onnx", "weights": "", "backend": "onnxruntime",
                          "precision": "FP32", "batch_size": 1, "dynamic_shape": True}]}
    transforms: list[dict] = [{"type": "LoadImageFromFile", "backend_args": None}]
    if size:
        transforms.append({"type": "Resize", "keep_ratio": True, "size": size})
    transforms += [{"type": "Pad", "pad_to_square": True, "pad_val": {"img": [114.0, 114.0, 114.0]}},
                   {"type": "Normalize", "to_rgb": False, "mean": mean, "std": std},
                   {"type": "Pad", "size_divisor": 32}, {"type": "DefaultFormatBundle"},
                   {"type": "Collect", "meta_keys": ["img_shape", "scale_factor", "pad_param"], "keys": ["img"]}]
    pipeline = {"pipeline": {"input": ["img"], "output": ["post_output"], "tasks": [
        {"type": "Task", "module": "Transform", "name": "Preprocess", "input": ["img"], "output": ["prep_output"],
         "transforms": transforms},
        {"name": model, "type": "Task", "module": "Net", "is_batched": False, "input": ["prep_output"],
         "output": ["infer_output"], "input_map": {"img": "input"}, "output_map": {}},
        {"type": "Task", "module": "mmdet", "name": "postprocess", "component": "ResizeBBox",
         "params": {"score_thr": 0.01, "nms": {"type": "nms", "iou_threshold": 0.65}},
         "output": ["post_output"], "input": ["prep_output", "infer_output"]}]}}
    detail = {"version": "1.3.1",
              "codebase": {"task": "ObjectDetection", "codebase": "mmdet", "version": "3.1.0",
                           "pth": f"{model}.pth", "config": f"configs/{model}_tiny_8xb8-300e_humanart.py"},
              "codebase_config": {"type": "mmdet", "task": "ObjectDetection", "model_type": "end2end"},
              "onnx_config": {"type": "onnx", "save_file": "end2end.onnx", "input_names": ["input"],
                              "output_names": ["dets", "labels"], "input_shape": input_shape, "opset_version": 11},
              "backend_config": {"type": "onnxruntime"}, "calib_config": {}}
    for name, data in (("deploy.json", deploy), ("pipeline.json", pipeline), ("detail.json", detail)):
        (folder / name).write_text(json.dumps(data, indent=4))


def test_folder_description_wins_over_the_graph(tmp_path: Path) -> None:
    """deploy.json says YOLOX although the stem is a plain convolution: the export's own word is taken."""
    folder = tmp_path / "yolox_export"
    _describe(folder, "yolox", [0, 0, 0], [1, 1, 1], [320, 320])
    _graph(folder / "end2end.onnx", (320, 320), MMDEPLOY_OUTPUTS, stem="Conv")
    det = open_detector(folder)
    assert det.layout.name == "yolox" and det.layout.mean is None
    assert "deploy.json names the model 'yolox'" in det.reason and str(folder) in det.reason
    np.testing.assert_array_equal(_pixel(det), [10, 20, 30])
    # the bare graph given by path reads the description beside it the same way
    assert OnnxDetector(folder / "end2end.onnx").layout.name == "yolox"


def test_rtmdet_normalisation_and_input_size_from_the_description(tmp_path: Path) -> None:
    """An RTMDet export with its own mean/std and a 416x320 (width x height) Resize on a graph of dynamic size."""
    folder = tmp_path / "rtm"
    mean, std = [100.0, 110.0, 120.0], [50.0, 60.0, 70.0]
    _describe(folder, "rtmdet", mean, std, [416, 320])
    path = _graph(folder / "end2end.onnx", (320, 416), MMDEPLOY_OUTPUTS, stem="Conv")
    model = onnx.load(str(path))
    for dim, name in zip(model.graph.input[0].type.tensor_type.shape.dim[2:], ("height", "width")):
        dim.dim_param = name
    onnx.save(model, str(path))
    det = open_detector(folder)
    assert det.layout.name == "rtmdet" and det.input_size == (320, 416)
    np.testing.assert_allclose(_pixel(det), (np.array([10, 20, 30]) - mean) / std, rtol=1e-6)
    assert "Normalize: mean [100.0, 110.0, 120.0]" in det.reason and "input 320x416" in det.reason


def test_detail_json_alone_and_input_shape(tmp_path: Path) -> None:
    """Without deploy.json and pipeline.json, detail.json's model config names the family (RTMDet: its usual
    normalisation) and onnx_config.input_shape (width, height) the size."""
    folder = tmp_path / "detail_only"
    _describe(folder, "rtmdet", RTMDET_MEAN, RTMDET_STD, None, input_shape=[640, 480])
    (folder / "deploy.json").unlink()
    (folder / "pipeline.json").unlink()
    from fasterpose.detect.export_info import info_from_texts
    from fasterpose.detect.onnx_detector import layout_from_info

    info = info_from_texts({"detail.json": (folder / "detail.json").read_text()}, str(folder))
    assert info is not None and info.layout == "rtmdet" and info.input_size == (480, 640)
    assert not info.normalisation_stated and "rtmdet_tiny_8xb8-300e_humanart.py" in info.reason
    layout = layout_from_info(info)
    assert list(layout.mean) == RTMDET_MEAN and list(layout.std) == RTMDET_STD and not layout.rgb


def test_zip_export(tmp_path: Path) -> None:
    """rtmlib's zips: a folder with end2end.onnx and the three json files; the description is read from the zip."""
    src = tmp_path / "src"
    _describe(src, "yolox", [0, 0, 0], [1, 1, 1], [320, 320])
    _graph(src / "end2end.onnx", (320, 320), MMDEPLOY_OUTPUTS, stem="Conv")
    archive = tmp_path / "yolox_tiny_8xb8-300e_humanart-6f3252f9.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in sorted(src.iterdir()):
            zf.write(f, f"yolox_tiny/{f.name}")
    det = open_detector(archive)
    assert det.layout.name == "yolox" and "deploy.json names the model 'yolox'" in det.reason
    assert det.path == archive.with_name(archive.name + ".end2end.onnx") and det.path.is_file()
    np.testing.assert_allclose(det(_image()), [[100, 50, 100, 100, 0.9]], rtol=1e-6)
    assert open_detector(archive, layout="rtmdet").layout.name == "rtmdet"  # the user's word wins


def test_bad_descriptions_are_named(tmp_path: Path) -> None:
    folder = tmp_path / "bad"
    _describe(folder, "yolox", [0, 0, 0], [1, 1, 1], [320, 320])
    _graph(folder / "end2end.onnx", (320, 320), MMDEPLOY_OUTPUTS, stem="Conv")
    (folder / "pipeline.json").write_text("{not json")
    with pytest.raises(ConfigError, match=r"pipeline.json is not valid JSON"):
        open_detector(folder)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "model.onnx").write_text("a folder of graphs without MMDeploy's description")
    with pytest.raises(ConfigError, match="is a directory, not an MMDeploy export"):
        open_detector(empty)
    (folder / "end2end.onnx").rename(folder / "a.onnx")
    (folder / "b.onnx").write_bytes((folder / "a.onnx").read_bytes())
    with pytest.raises(ConfigError, match="one detector graph"):
        open_detector(folder)
    # a description of another family name: the graph decides
    other = tmp_path / "other"
    _describe(other, "fasterrcnn", [0, 0, 0], [1, 1, 1], [320, 320])
    _graph(other / "end2end.onnx", (320, 320), MMDEPLOY_OUTPUTS, stem="TransposeFocus")
    det = open_detector(other)
    assert det.layout.name == "yolox" and "Transpose" in det.reason
