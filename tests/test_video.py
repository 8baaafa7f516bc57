"""Video: the synthetic clip with known truth, track ids, one-euro smoothing, the Pipeline (detection every N frames,
pose-guided boxes, early re-detection) and the tracking scores."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from _opencv import needs_hog

from fasterpose.data.synthetic.clip import ClipConfig, render_clip, write_clip
from fasterpose.detect.sources import DetectorBoxes
from fasterpose.errors import DataError
from fasterpose.evaluation.tracking import evaluate_tracking
from fasterpose.keypoints import COCO17
from fasterpose.video.pipeline import Pipeline, pose_box
from fasterpose.video.smooth import OneEuroConfig, OneEuroFilter
from fasterpose.video.track import Tracker

SMALL = ClipConfig(num_frames=24, size=(120, 160), walkers=2)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return write_clip(tmp_path_factory.mktemp("clip") / "clip", seed=3, config=SMALL)


def test_clip_truth(clip: dict) -> None:
    gt = json.loads(Path(clip["keypoints"]).read_text())
    assert clip["frames"] == 24 and clip["tracks"] == 3 and len(gt["images"]) == 24
    cap = cv2.VideoCapture(str(clip["video"]))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 24 and cap.read()[1].shape == (120, 160, 3)
    cap.release()
    by_track: dict[int, list[dict]] = {}
    for a in gt["annotations"]:
        by_track.setdefault(a["track_id"], []).append(a)
        kp = np.array(a["keypoints"]).reshape(17, 3)
        x, y, w, h = a["bbox"]
        lab = kp[:, 2] > 0
        assert ((kp[lab, 0] >= x) & (kp[lab, 0] <= x + w) & (kp[lab, 1] >= y) & (kp[lab, 1] <= y + h)).all()
    still = [np.array(a["keypoints"]) for a in sorted(by_track[1], key=lambda a: a["image_id"])]
    assert len(still) == 24 and all(np.array_equal(still[0], s) for s in still)  # the standing figure never moves
    for tid in (2, 3):  # walkers move (0.02 heights a frame when not turning)
        xs = [a["bbox"][0] + a["bbox"][2] / 2 for a in sorted(by_track[tid], key=lambda a: a["image_id"])]
        assert np.abs(np.diff(xs)).sum() > 10
    dets = json.loads(Path(clip["detections"]).read_text())
    assert dets["frames"] == 24 and len(dets["detections"]) == len(gt["annotations"])
    # same seed, same truth
    again = [p for _, persons in render_clip(3, SMALL) for p in persons]
    assert [p["track_id"] for p in again] == [a["track_id"] for a in gt["annotations"]]


def test_clip_never_replaces_another(clip: dict, tmp_path: Path) -> None:
    folder = Path(clip["video"]).parent
    before = Path(clip["keypoints"]).read_bytes()
    with pytest.raises(DataError, match="other parameters"):
        write_clip(folder, seed=4, config=SMALL)
    assert Path(clip["keypoints"]).read_bytes() == before
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "clip.avi").write_bytes(b"my holiday video")
    with pytest.raises(DataError, match="not a clip of ours"):
        write_clip(mine, config=SMALL)
    assert (mine / "clip.avi").read_bytes() == b"my holiday video"
    with pytest.raises(DataError, match="clip.avi, which fasterpose did not record writing there"):
        write_clip(mine, config=ClipConfig(num_frames=2, size=(64, 64)), overwrite=True)  # a clip of ours only
    assert (mine / "clip.avi").read_bytes() == b"my holiday video"
    ours = tmp_path / "ours"
    shutil.copytree(folder, ours)
    assert write_clip(ours, seed=4, config=SMALL, overwrite=True)["frames"] == SMALL.num_frames  # ours: replaced


def test_clip_config_errors() -> None:
    with pytest.raises(DataError, match="num_frames"):
        ClipConfig(num_frames=0)
    with pytest.raises(DataError, match="at least one figure"):
        ClipConfig(walkers=0, standing=False)


def test_tracking_scores_hand_counted(clip: dict) -> None:
    gt = json.loads(Path(clip["keypoints"]).read_text())
    perfect = [{"frame": a["image_id"], "image_id": a["image_id"], "keypoints": a["keypoints"], "bbox": a["bbox"],
                "track_id": a["track_id"] + 10} for a in gt["annotations"]]
    s = evaluate_tracking(gt, perfect)
    assert s["recall"] == 1.0 and s["id_switches"] == 0 and s["kpt_error_px"] == 0 and s["jitter_px"] == 0
    # tracks 2 and 3 swap ids from frame 12 on: two switches; frame 5 lost entirely: 3 persons missed
    swapped = []
    for r in perfect:
        if r["frame"] == 5:
            continue
        r = dict(r)
        if r["frame"] >= 12 and r["track_id"] in (12, 13):
            r["track_id"] = 25 - r["track_id"]
        swapped.append(r)
    s = evaluate_tracking(gt, swapped)
    assert s["id_switches"] == 2 and s["found"] == s["gt_person_frames"] - 3
    # the standing figure's predictions jump by (3, 4) px every other frame: jitter 5 px
    def shake(r: dict) -> dict:
        jump = np.array([3, 4, 0]) * (r["frame"] % 2)
        return dict(r, keypoints=(np.array(r["keypoints"]).reshape(17, 3) + jump).ravel().tolist())

    shaky = [shake(r) if r["track_id"] == 11 else r for r in perfect]
    assert evaluate_tracking(gt, shaky)["jitter_px"] == pytest.approx(5.0)


def _pose(cx: float, cy: float, h: float, score: float = 0.9, w: float | None = None) -> np.ndarray:
    """A (17, 3) pose spread over a box of height ``h`` and width ``w`` (default ``h / 2``) centred on (cx, cy)."""
    w = h / 2 if w is None else w
    rng = np.random.default_rng(0)
    pts = rng.uniform(-0.5, 0.5, (17, 2)) * [w, h]
    pts[0], pts[1] = [-w / 2, -h / 2], [w / 2, h / 2]  # extent exactly the box
    return np.concatenate([pts + [cx, cy], np.full((17, 1), score)], axis=1)


def _box(kp: np.ndarray) -> np.ndarray:
    lo, hi = kp[:, :2].min(0), kp[:, :2].max(0)
    return np.concatenate([lo, hi - lo])


def test_tracker_births_matches_and_deaths() -> None:
    tr = Tracker(COCO17.sigmas, max_missed=2)
    a, b = _pose(50, 100, 80), _pose(200, 100, 80)
    ids = tr.update(0, np.stack([a, b]), np.stack([_box(a), _box(b)]))
    assert ids.tolist() == [1, 2]
    a2, b2 = _pose(54, 100, 80), _pose(196, 100, 80)  # moved a little, given in the other order
    assert tr.update(1, np.stack([b2, a2]), np.stack([_box(b2), _box(a2)])).tolist() == [2, 1]
    c = _pose(400, 100, 80)
    assert tr.update(2, np.stack([c, a2]), np.stack([_box(c), _box(a2)])).tolist() == [3, 1]  # birth
    # track 2 unseen for frames 2, 3, 4 (> max_missed): forgotten; the person coming back gets a new id
    tr.update(3, a2[None], _box(a2)[None])
    tr.update(4, a2[None], _box(a2)[None])
    assert 2 not in tr.tracks
    assert tr.update(5, np.stack([a2, b2]), np.stack([_box(a2), _box(b2)])).tolist() == [1, 4]
    # a known id is kept without matching
    assert tr.update(6, b2[None], _box(b2)[None], known_ids=np.array([1])).tolist() == [1]


def test_one_euro_by_hand() -> None:
    cfg = OneEuroConfig(min_cutoff=1.0, beta=0.0, d_cutoff=1.0)
    f = OneEuroFilter(cfg)
    kp0 = np.array([[10.0, 20.0, 0.9]])
    np.testing.assert_array_equal(f(kp0, 0.0, 100.0), kp0)  # the first sample passes through
    out = f(np.array([[20.0, 20.0, 0.9]]), 0.04, 100.0)
    alpha = 1 / (1 + (1 / (2 * math.pi * 1.0)) / 0.04)  # tau = 1 / (2 pi f_c), alpha = 1 / (1 + tau / dt)
    np.testing.assert_allclose(out[0, :2], [10 + alpha * 10, 20.0])
    assert out[0, 2] == 0.9
    # confidence: a keypoint with score 0 does not move; half the reference score moves half as much
    g = OneEuroFilter(cfg)
    g(np.array([[0.0, 0.0, 0.9], [0.0, 0.0, 0.9]]), 0.0, 100.0)
    out = g(np.array([[10.0, 0.0, 0.0], [10.0, 0.0, 0.25]]), 0.04, 100.0)
    np.testing.assert_allclose(out[:, 0], [0.0, 0.5 * alpha * 10])
    # jitter on a still point is reduced; a steady motion is followed (beta raises the cutoff)
    rng = np.random.default_rng(1)
    h = OneEuroFilter(OneEuroConfig())
    raw = 100 + rng.normal(0, 2, (50, 1, 2))
    sm = np.array([h(np.concatenate([r, [[0.9]]], 1), i / 25, 100.0)[0, :2] for i, r in enumerate(raw)])
    assert np.abs(np.diff(sm, axis=0)).mean() < 0.4 * np.abs(np.diff(raw[:, 0], axis=0)).mean()


class _FakePredictor:
    """Stands in for the pose model: a fixed pose whose extent plus the Pipeline's margin (0.1 of the longer side
    on every side) is the box, with a given score."""

    keypoint_set = COCO17

    def __init__(self) -> None:
        self.score = 0.9
        self.calls: list[np.ndarray] = []
        self.last_timing = {"preprocess_ms": 0.0, "model_ms": 0.0, "postprocess_ms": 0.0, "persons": 0}

    def __call__(self, image: np.ndarray, boxes: np.ndarray) -> list[dict]:
        boxes = np.asarray(boxes, np.float64).reshape(-1, 5)
        self.calls.append(boxes.copy())
        out = []
        for b in boxes:
            h = b[3] / 1.2
            kp = _pose(b[0] + b[2] / 2, b[1] + b[3] / 2, h, self.score, w=b[2] - 0.2 * h)
            out.append({"keypoints": kp, "box": b[:4], "box_score": float(b[4]), "valid": True})
        return out


def test_pipeline_detects_every_n_and_propagates_boxes() -> None:
    frames = np.zeros((12, 240, 320, 3), np.uint8)
    det_calls = []

    def detector(image: np.ndarray) -> np.ndarray:
        det_calls.append(len(det_calls))
        return np.array([[40.0, 60.0, 60.0, 120.0, 0.8], [200.0, 50.0, 50.0, 100.0, 0.7]])

    pred = _FakePredictor()
    pipe = Pipeline(pred, detector, det_every=5)
    results = [pipe(f) for f in frames]
    assert len(det_calls) == 3 and pipe.summary()["detection_frames"] == 3  # frames 0, 5, 10
    assert [[p["track_id"] for p in r] for r in results] == [[1, 2]] * 12
    assert [r[0]["detected"] for r in results] == [i % 5 == 0 for i in range(12)]
    # between detections the box is the pose's extent plus its margin: here the detector's box again
    for boxes in pred.calls:
        np.testing.assert_allclose(boxes[:, :4], [[40, 60, 60, 120], [200, 50, 50, 100]], atol=1e-9)
    # a propagated pose with a low mean score triggers a detection on the next frame
    pipe.reset()
    pred.score = 0.9
    pipe(frames[0])
    pred.score = 0.1
    pipe(frames[1])
    assert pipe.wants_detection()
    # ... but a pose already that weak on the detector's own box does not ask again on every frame (a poor HOG box:
    # the detector would give the same box again), until its confidence drops below its detection-frame level
    pipe.reset()
    det_calls.clear()
    pred.score = 0.1
    pipe(frames[0])
    pipe(frames[1])
    assert not pipe.wants_detection()
    pred.score = 0.05
    pipe(frames[2])
    assert pipe.wants_detection()
    with pytest.raises(ValueError, match="no detector"):
        Pipeline(pred)(frames[0])


def test_pose_box_minimum_and_too_few_keypoints() -> None:
    kp = np.zeros((17, 3))
    kp[:3] = [[10, 10, 0.9], [12, 11, 0.9], [11, 12, 0.9]]
    np.testing.assert_allclose(pose_box(kp, 0.3, 0.1, 16.0), [3, 3, 16, 16])  # the minimum size
    kp[:3] = [[10, 10, 0.9], [30, 50, 0.9], [20, 30, 0.9]]  # extent 20 x 40: margin 4 on every side
    np.testing.assert_allclose(pose_box(kp, 0.3, 0.1, 16.0), [6, 6, 28, 48])
    kp[2, 2] = 0.1
    assert pose_box(kp, 0.3, 0.1, 16.0) is None


def test_predict_video_det_every_with_onnx_detector(clip: dict, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """``fasterpose predict clip.avi --detector FILE.onnx --det-every 5``: results carry track ids, a drawn video."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from test_detect import _graph

    from fasterpose import create_model
    from fasterpose.checkpoint import save_checkpoint
    from fasterpose.cli import main
    from fasterpose.spec import PoseSpec

    torch.manual_seed(0)
    size = (64, 48)
    spec = PoseSpec(model_name="fasterpose_r18", input_size=size, codec={"input_size": list(size)})
    ckpt = tmp_path / "r18.pth"
    save_checkpoint(ckpt, {"spec": spec, "model": create_model("fasterpose_r18").state_dict(), "config": None})
    out = np.zeros((1, 3, 6), np.float32)  # Ultralytics with NMS, 160x160 input = the 120x160 frame + 20 px bands
    out[0, 0] = [10, 30, 70, 130, 0.9, 0]
    out[0, 1] = [90, 40, 150, 140, 0.8, 0]
    detector = _graph(tmp_path / "det.onnx", (160, 160), {"output0": out})
    dest = tmp_path / "out"
    assert main(["predict", str(clip["video"]), "--checkpoint", str(ckpt), "--detector", str(detector),
                 "--det-every", "5", "--redetect-thr", "0", "--out", str(dest), "--threads", "1", "--no-flip",
                 "--smooth", "--video-format", "avi"]) == 0
    summary = capsys.readouterr().out
    assert "detect" in summary and "5 of 24 frames" in summary
    results = json.loads((dest / "results.json").read_text())
    assert {r["frame"] for r in results} <= set(range(24)) and all(r["track_id"] >= 1 for r in results)
    first = [r for r in results if r["frame"] == 0]
    np.testing.assert_allclose(sorted(r["bbox"] for r in first), [[10, 10, 60, 100], [90, 20, 60, 100]], atol=0.01)
    cap = cv2.VideoCapture(str(dest / "clip_pose.avi"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 24  # every frame written (by the writer thread)
    cap.release()
    assert main(["predict", str(clip["video"]), "--checkpoint", str(ckpt), "--det-every", "0", "--out",
                 str(tmp_path / "o2")]) == 2
    assert "--det-every: must be an integer >= 1" in capsys.readouterr().err


def test_pipeline_keeps_boxes_of_merged_poses() -> None:
    """Someone walking behind another: both poses land on the front person (OKS ~1). Neither track's box moves onto
    the front person until the next detection (a pose-guided box would put both tracks on one person)."""
    pred = _FakePredictor()
    plain = pred.__class__.__call__

    def collapse(self: _FakePredictor, image: np.ndarray, boxes: np.ndarray) -> list[dict]:
        out = plain(self, image, boxes)
        for p in out[1:]:
            p["keypoints"] = out[0]["keypoints"].copy()
        return out

    pred.__class__ = type("Collapsing", (_FakePredictor,), {"__call__": collapse})
    dets = np.array([[40.0, 60.0, 60.0, 120.0, 0.8], [70.0, 70.0, 40.0, 80.0, 0.7]])
    pipe = Pipeline(pred, lambda image: dets, det_every=5)
    for _ in range(3):
        people = pipe(np.zeros((240, 320, 3), np.uint8))
    assert [p["track_id"] for p in people] == [1, 2]
    np.testing.assert_allclose(pred.calls[-1][:, :4], dets[:, :4])


@needs_hog  # the benchmark's rows include HOG boxes
def test_bench_video_runs(tmp_path: Path) -> None:
    """``benchmarks/bench_video.py`` with tiny settings: every configuration runs, the table and the JSON come out."""
    import subprocess
    import sys

    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    from fasterpose import create_model
    from fasterpose.checkpoint import save_checkpoint
    from fasterpose.spec import PoseSpec

    torch.manual_seed(0)
    spec = PoseSpec(model_name="fasterpose_r18", input_size=(128, 96), codec={"input_size": [128, 96]})
    ckpt = tmp_path / "r18.pth"
    save_checkpoint(ckpt, {"spec": spec, "model": create_model("fasterpose_r18").state_dict(), "config": None})
    out = tmp_path / "video.json"
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, str(root / "benchmarks" / "bench_video.py"), "--checkpoint", str(ckpt),
                           "--frames", "3", "--clip-frames", "6", "--threads", "1", "--arch", "yolox_nano",
                           "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(out.read_text())
    rows = report["rows"]
    assert [(r["input"], r["boxes"]) for r in rows] == [
        (i, b) for i in ("vtest", "clip")
        for b in ("hog", "hog/5", "given", "given/5", "given+smooth", "yolox_nano~", "yolox_nano~/5")]
    assert all(r["frames"] == (3 if r["input"] == "vtest" else 6) for r in rows)
    assert all(0 <= r["recall"] <= 1 for r in rows if r["input"] == "clip")
    assert "| input | boxes |" in proc.stdout
    assert report["cpu_class"] and report["detector_graphs"]["yolox_nano"]["input_size"] == [416, 416]
    # The random-weight detector runs on each detection frame for its cost, but the boxes are the given ones:
    # detector calls and tracking equal the given boxes' rows.
    by = {(r["input"], r["boxes"]): r for r in rows}
    for inp in ("vtest", "clip"):
        for every in ("", "/5"):
            arch, given = by[(inp, f"yolox_nano~{every}")], by[(inp, f"given{every}")]
            assert arch["detection_frames"] == given["detection_frames"] and arch["detect_ms"] > 0
            assert arch["threads_pose"] == arch["threads_detector"] == 1
            if inp == "clip":
                assert (arch["recall"], arch["id_switches"]) == (given["recall"], given["id_switches"])


class _RoiDetector:
    """A detector with ``detect(image, roi=None)`` (as HOG has): fixed boxes, recording each call's frame and roi."""

    def __init__(self, boxes: np.ndarray) -> None:
        self.boxes, self.calls = boxes, []
        self.frame = 0

    def detect(self, image: np.ndarray, roi: np.ndarray | None = None) -> np.ndarray:
        self.calls.append((self.frame, None if roi is None else np.array(roi)))
        return self.boxes.copy()

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return self.detect(image)


def _run_dropping(pipe: Pipeline, pred: _FakePredictor, detector: _RoiDetector | None = None, frames: int = 8) -> None:
    """Frame 0 at pose score 0.9, then 0.1: the drop on frame 1 asks an early detection on frame 2."""
    for i in range(frames):
        if detector is not None:
            detector.frame = i
        pred.score = 0.9 if i == 0 else 0.1
        pipe(np.zeros((240, 320, 3), np.uint8))


def test_early_redetection_searches_around_tracks() -> None:
    """An early re-detection (a confidence drop) asks a detector that has ``detect(image, roi=)`` around the tracked
    boxes only; scheduled ones and those with nobody tracked search the whole frame, and the schedule counts from the
    last full-frame detection. A source without regions is called as before, on the same frames."""
    dets = np.array([[40.0, 60.0, 60.0, 120.0, 0.8], [200.0, 50.0, 50.0, 100.0, 0.7]])
    pred = _FakePredictor()
    det = _RoiDetector(dets)
    assert DetectorBoxes(det).has_roi and not DetectorBoxes(lambda image: dets).has_roi
    pipe = Pipeline(pred, det, det_every=5, early_roi=True)
    _run_dropping(pipe, pred, det)
    assert [(f, roi is None) for f, roi in det.calls] == [(0, True), (2, False), (5, True)]
    np.testing.assert_allclose(det.calls[1][1], dets[:, :4])  # the tracks' boxes (kept: the weak pose has none)
    s = pipe.summary()
    assert (s["detector_calls"], s["roi_calls"], s["detection_frames"]) == (3, 1, 3)
    # off (the default), or a plain function: the whole frame each time, and the early detection moves the schedule
    # as before
    off = _RoiDetector(dets)
    pipe = Pipeline(pred, off, det_every=5)
    _run_dropping(pipe, pred, off)
    assert [(f, roi) for f, roi in off.calls] == [(0, None), (2, None), (7, None)] and pipe.summary()["roi_calls"] == 0
    plain: list[int] = []
    pipe = Pipeline(pred, lambda image: plain.append(pipe.frame) or dets, det_every=5, early_roi=True)
    _run_dropping(pipe, pred)
    assert plain == [0, 2, 7] and pipe.summary()["roi_calls"] == 0
    # nobody tracked after a drop: the detection that follows searches the whole frame
    empty = _RoiDetector(np.zeros((0, 5)))
    pipe = Pipeline(pred, empty, det_every=5)
    pred.score = 0.9
    pipe(np.zeros((240, 320, 3), np.uint8))
    pipe(np.zeros((240, 320, 3), np.uint8))
    assert [roi for _, roi in empty.calls] == [None, None]
