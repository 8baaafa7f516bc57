"""``benchmarks/detector_graphs.py``: random-weight detector graphs in MMDeploy's end2end layout, read by
:class:`fasterpose.detect.OnnxDetector` as the published exports are."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def graphs():
    spec = importlib.util.spec_from_file_location("detector_graphs", ROOT / "benchmarks" / "detector_graphs.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["detector_graphs"] = module
    spec.loader.exec_module(module)
    return module


def test_published_sizes(graphs) -> None:
    """Parameters of the three architectures against the published figures (YOLOX README, mmdet RTMDet README)."""
    for name, (_, _, params_m, _, _) in graphs.PUBLISHED.items():
        net = graphs.build_net(name)
        assert sum(p.numel() for p in net.parameters()) / 1e6 == pytest.approx(params_m, rel=0.03), name
    # YOLOX-nano at 416: 1.08 GFLOPs published, counted as 2 x MACs (thop), i.e. 0.54 GMACs.
    assert graphs.gmacs(graphs.build_net("yolox_nano"), (416, 416)) == pytest.approx(0.54, rel=0.05)


def test_nano_graph_layout_and_nms(graphs, tmp_path) -> None:
    """The nano graph at 64x96: inputs and outputs as MMDeploy writes them, read as YOLOX by the detector, and its
    in-graph NMS keeps what numpy's NMS keeps on the network's own boxes and scores."""
    from fasterpose.detect import OnnxDetector, detect_layout
    from fasterpose.detect.boxes import box_iou

    g = graphs.build_onnx("yolox_nano", tmp_path, (64, 96), prior=0.1, spread=1.0)  # distinct scores, some kept
    session = ort.InferenceSession(str(g.path))
    assert [i.name for i in session.get_inputs()] == ["input"] and session.get_inputs()[0].shape == [1, 3, 64, 96]
    assert [o.name for o in session.get_outputs()] == ["dets", "labels"]
    assert detect_layout(g.path, session) == "yolox"
    x = np.random.default_rng(0).uniform(0, 255, (1, 3, 64, 96)).astype(np.float32)
    dets, labels = session.run(None, {"input": x})
    assert dets.ndim == 3 and dets.shape[0] == 1 and dets.shape[2] == 5 and labels.shape == dets.shape[:2]
    assert labels.dtype == np.int64 and 0 < dets.shape[1] <= graphs.KEEP_TOP_K

    with torch.no_grad():
        boxes, scores = graphs.build_net("yolox_nano", prior=0.1, spread=1.0)(torch.from_numpy(x))
    best, label = scores[0].max(-1)
    boxes, best, label = boxes[0].numpy(), best.numpy(), label.numpy()
    cand = best > graphs.SCORE_THR
    kept, kept_labels = dets[0], labels[0]
    # Every kept box is one of the network's candidates, with its score and label.
    for row, lab in zip(kept, kept_labels):
        d = np.abs(np.concatenate([boxes, best[:, None]], 1) - row).max(1)
        assert d.min() < 1e-3 and lab in label[d < 1e-3]
    # Greedy NMS: by descending score, no two kept boxes overlap more than the threshold, and every candidate left
    # out overlaps a kept box at least as confident more than it.
    assert (np.diff(kept[:, 4]) <= 1e-6).all() and (kept[:, 4] > graphs.SCORE_THR).all()
    iou = box_iou(kept[:, :4], kept[:, :4])
    assert (iou[np.triu_indices(len(kept), 1)] <= graphs.IOU_THR + 1e-5).all()
    assert len(kept) < graphs.KEEP_TOP_K  # so that every candidate left out was suppressed
    out = [i for i in np.flatnonzero(cand) if np.abs(kept[:, :4] - boxes[i]).max(1).min() > 1e-3]
    for i in out:
        suppressors = (box_iou(boxes[i][None], kept[:, :4])[0] > graphs.IOU_THR - 1e-5) & (kept[:, 4] >= best[i] - 1e-6)
        assert suppressors.any()
    detector = OnnxDetector(g.path, score_thr=0.0)
    assert detector.layout.name == "yolox"
    assert detector(np.full((48, 72, 3), 90, np.uint8)).shape[1] == 5
