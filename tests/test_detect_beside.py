"""Detection beside pose (``video/beside.py``, ``Pipeline(det_lag=L)``): boxes of frame t merged at exactly t + L
whatever the detector's speed, moved by their tracks' motion; the detector backs off while nobody is tracked; the
first-appearance cost measured by ``evaluate_tracking``."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import numpy as np
import pytest

from fasterpose.data.synthetic.clip import ClipConfig, write_clip
from fasterpose.detect.boxes import box_iou, xywh_to_xyxy
from fasterpose.detect.sources import BoxSource, DetectionFileBoxes
from fasterpose.evaluation.tracking import evaluate_tracking
from fasterpose.keypoints import COCO17
from fasterpose.video.beside import catch_up
from fasterpose.video.pipeline import Pipeline

CLIP = ClipConfig(num_frames=30, size=(120, 160), walkers=2)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return write_clip(tmp_path_factory.mktemp("clip") / "clip", seed=1, config=CLIP)


def test_catch_up_by_hand() -> None:
    """A box detected on frame 10, its track moving +3 px a frame in x: at frame 13 it has moved 6 px (10 -> 12)
    plus one more frame; a box that matches no track (a new person) stays where it was seen."""
    history = {7: {f: np.array([10.0 + 3 * (f - 10), 20, 40, 80]) for f in (10, 11, 12)},
               8: {12: np.array([300.0, 20, 40, 80])}}  # born after the detection frame: not matched
    dets = np.array([[12.0, 21, 40, 80, 0.9], [200, 20, 40, 80, 0.8]])
    moved = catch_up(dets, 10, 13, history)
    np.testing.assert_allclose(moved, [[12 + 6 + 3, 21, 40, 80, 0.9], [200, 20, 40, 80, 0.8]])
    np.testing.assert_allclose(catch_up(dets, 12, 13, {}), dets)  # nothing tracked: as detected


class _TruthPoses:
    """A pose model that is always right: for each box, the labelled pose of the clip's person it overlaps most
    (IoU >= 0.3; else no confident keypoint). One call per frame, as the Pipeline makes."""

    keypoint_set = COCO17

    def __init__(self, gt: dict) -> None:
        self.by_frame: dict[int, list[dict]] = {}
        for a in gt["annotations"]:
            self.by_frame.setdefault(a["image_id"], []).append(a)
        self.frame = 0
        self.last_timing = {"preprocess_ms": 0.0, "model_ms": 0.0, "postprocess_ms": 0.0, "persons": 0}

    def __call__(self, image: np.ndarray, boxes: np.ndarray) -> list[dict]:
        boxes = np.asarray(boxes, np.float64).reshape(-1, 5)
        truth = self.by_frame.get(self.frame, [])
        self.frame += 1
        out = []
        gt_boxes = np.array([a["bbox"] for a in truth], np.float64).reshape(-1, 4)
        sim = box_iou(xywh_to_xyxy(boxes[:, :4]), xywh_to_xyxy(gt_boxes))
        for i, b in enumerate(boxes):
            kp = np.zeros((17, 3))
            if sim.shape[1] and sim[i].max() >= 0.3:
                g = np.asarray(truth[int(sim[i].argmax())]["keypoints"], np.float64).reshape(17, 3)
                kp = np.concatenate([g[:, :2], 0.9 * (g[:, 2:] > 0)], axis=1)
            out.append({"keypoints": kp, "box": b[:4], "box_score": float(b[4]), "valid": True})
        return out


class _Slow(BoxSource):
    """The clip's boxes, each call taking a random time (the machine's speed must not change any result)."""

    def __init__(self, inner: BoxSource, seed: int) -> None:
        self.inner, self.rng, self.frames = inner, np.random.default_rng(seed), []

    def __call__(self, frame: np.ndarray, key: int | str = 0) -> np.ndarray:
        self.frames.append(key)
        time.sleep(float(self.rng.uniform(0, 0.02)))
        return self.inner(frame, key)


def _run(clip: dict, gt: dict, lag: int, seed: int = 0, det_every: int = 5, idle_every: int = 1,
         frames: range | None = None) -> tuple[list[dict], _Slow, dict]:
    source = _Slow(DetectionFileBoxes(clip["detections"]), seed)
    pipe = Pipeline(_TruthPoses(gt), source, det_every=det_every, det_lag=lag, idle_every=idle_every)
    image = np.zeros((*CLIP.size, 3), np.uint8)
    results = []
    try:
        for index in frames or range(CLIP.num_frames):
            for p in pipe(image, key=index):
                results.append({"frame": index, "image_id": index, "bbox": p["box"].round(6).tolist(),
                                "keypoints": p["keypoints"].ravel().tolist(), "track_id": p["track_id"],
                                "detected": p["detected"]})
    finally:
        pipe.close()
    return results, source, pipe.summary()


def test_detection_beside_is_deterministic_and_as_good_as_in_turn(clip: dict) -> None:
    gt = json.loads(Path(clip["keypoints"]).read_text())
    sync, sync_source, _ = _run(clip, gt, lag=0)
    lagged, lagged_source, summary = _run(clip, gt, lag=2, seed=1)
    again, _, _ = _run(clip, gt, lag=2, seed=2)  # other detector timings: the same results, exactly
    assert lagged == again
    # the detection of frame t is merged at exactly t + 2, nothing earlier
    assert lagged_source.frames[:3] == [0, 5, 10] and sync_source.frames[:3] == [0, 5, 10]
    merged = sorted({r["frame"] for r in lagged if r["detected"]})
    assert merged[:3] == [2, 7, 12] and min(r["frame"] for r in lagged) == 2
    assert summary["detector_calls"] == len(lagged_source.frames) and summary["det_lag"] == 2
    s_sync, s_lag = evaluate_tracking(gt, sync), evaluate_tracking(gt, lagged)
    persons = len(gt["annotations"]) / CLIP.num_frames
    # the two frames before the first merge are the only persons lost; no identity switch either way
    assert s_lag["found"] >= s_sync["found"] - 2 * persons - 1
    assert s_sync["id_switches"] == 0 and s_lag["id_switches"] == 0
    assert s_lag["kpt_error_px"] == pytest.approx(0.0, abs=1e-9)  # the boxes moved along still find their person


def test_back_off_while_nobody_is_tracked(clip: dict) -> None:
    """Nobody in view for the first 10 frames (frames where the truth holds nobody): with idle_every=4 the detector
    runs on frames 0, 4, 8 instead of every frame, and the persons appearing at frame 10 are found at frame 12: a
    delay of 2 frames each, counted by ``first_found_delay``."""
    gt = json.loads(Path(clip["keypoints"]).read_text())
    gt_late = dict(gt, annotations=[a for a in gt["annotations"] if a["image_id"] >= 10])
    detections = json.loads(Path(clip["detections"]).read_text())
    detections["detections"] = [d for d in detections["detections"] if d["image_id"] >= 10]
    late = Path(clip["detections"]).with_name("late.json")
    late.write_text(json.dumps(detections))
    clip_late = dict(clip, detections=late)
    every, every_source, _ = _run(clip_late, gt_late, lag=0, idle_every=1)
    backoff, backoff_source, _ = _run(clip_late, gt_late, lag=0, idle_every=4)
    assert every_source.frames[:11] == list(range(11)) and backoff_source.frames[:4] == [0, 4, 8, 12]
    people = len({a["track_id"] for a in gt_late["annotations"] if a["image_id"] == 10})
    assert evaluate_tracking(gt_late, every)["first_found_delay"] == 0
    assert evaluate_tracking(gt_late, backoff)["first_found_delay"] == 2 * people
    assert evaluate_tracking(gt_late, [])["never_found"] == len({a["track_id"] for a in gt_late["annotations"]})


def test_predict_with_the_detector_beside(clip: dict, tiny_model: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """``predict clip.avi --detector FILE.onnx --det-lag 2 --threads 2``: the same results.json twice, the detector's
    calls, the thread split and the CPU class in the summary; ``--det-lag 0`` detects on the same frames."""
    pytest.importorskip("onnx")
    from test_detect import _graph

    from fasterpose.cli import main

    out = np.zeros((1, 2, 6), np.float32)  # Ultralytics with NMS, 160x160 input = the 120x160 frame + 20 px bands
    out[0, 0] = [10, 30, 70, 130, 0.9, 0]
    out[0, 1] = [90, 40, 150, 140, 0.8, 0]
    detector = _graph(tmp_path / "det.onnx", (160, 160), {"output0": out})
    runs = {}
    for name, lag in (("a", "2"), ("b", "2"), ("sync", "0")):
        dest = tmp_path / name
        assert main(["predict", str(clip["video"]), "--onnx", str(tiny_model.with_suffix(".onnx")), "--detector",
                     str(detector), "--det-every", "5", "--det-lag", lag, "--threads", "2", "--no-flip",
                     "--no-draw", "--out", str(dest)]) == 0
        runs[name] = (json.loads((dest / "results.json").read_text()), capsys.readouterr().out)
    assert runs["a"][0] == runs["b"][0] and runs["a"][0]
    assert min(r["frame"] for r in runs["a"][0]) == 2 and min(r["frame"] for r in runs["sync"][0]) == 0
    summary = runs["a"][1]
    calls = int(re.search(r"frames per second; detector (\d+) calls", summary).group(1))
    merged = int(re.search(r"detect [\d.]+ \((\d+) of 30 frames", summary).group(1))
    assert merged <= calls <= merged + 1  # the last request may still be in flight at the end (dropped)
    assert "in its own thread (--det-lag 2" in summary and "threads: pose 1, detector 1; CPU " in summary
    assert "threads: pose 2, detector 2" in runs["sync"][1] and "in its own thread" not in runs["sync"][1]
    assert main(["predict", str(clip["video"]), "--onnx", str(tiny_model.with_suffix(".onnx")), "--det-lag", "-1",
                 "--out", str(tmp_path / "bad")]) == 2
    assert "--det-lag: must be an integer >= 0" in capsys.readouterr().err


def test_bench_beside_runs(tiny_model: Path, tmp_path: Path) -> None:
    """``benchmarks/bench_beside.py`` at a tiny size: every configuration runs, the JSON holds each row's numbers."""
    import subprocess
    import sys

    out = tmp_path / "beside.json"
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_beside.py"
    proc = subprocess.run([sys.executable, str(script), "--onnx", str(tiny_model.with_suffix(".onnx")),
                           "--clip-frames", "6", "--seeds", "0", "--lags", "0", "1", "--idle", "1", "3",
                           "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(out.read_text())
    assert [(r["det_lag"], r["idle_every"]) for r in report["rows"]] == [(0, 1), (0, 3), (1, 1), (1, 3)]
    assert all(r["frames"] == 6 and 0 <= r["recall"] <= 1 and r["first_found_delay"] >= 0 for r in report["rows"])
    assert report["cpu_class"] and "| input | det_lag |" in proc.stdout
