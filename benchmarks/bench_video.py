"""End-to-end video benchmark: frames per second and milliseconds per stage (read, detect, pose, track, smooth, draw,
write), and on the synthetic clip with known truth the persons found, identity switches, keypoint error and jitter.

Inputs: OpenCV's ``vtest.avi`` (768x576 pedestrians; ``--video``, default ``benchmarks/data/vtest.avi``, else the
20-frame ``tests/data/people/vtest_short.avi``; the full file is OpenCV's ``samples/data/vtest.avi``, Apache-2.0)
with its real detector boxes (``tests/data/people/vtest_detections.json``), and the synthetic clip (``fasterpose
synth --video``, written to a temporary folder) with its ground-truth boxes. Box sources: HOG every frame, HOG
every ``--det-every`` frames, the given boxes every frame and every N frames, and ``--detector FILE.onnx`` every
frame and every N frames when given. Each configuration runs at each ``--threads`` value (pose model, detector and
OpenCV all capped).

    python benchmarks/bench_video.py --checkpoint outputs/demo/checkpoint.pth --out benchmarks/results/video.json

Detector architectures without their weights (``--arch``, default YOLOX-nano, YOLOX-tiny and RTMDet-tiny; ``none``
to skip): each is built with random weights in the published export's layout and input size
(``benchmarks/detector_graphs.py``) and run on every detection frame inside the real pipeline for its cost, while
the boxes the pipeline gets are the given ones of that frame, so tracking, recall and switches equal the "given"
rows' and the frames per second are those the detector would give. Rows ``ARCH~`` (every frame) and ``ARCH~/N``.

Every row gives frames per second, detector calls (``detection_frames``), milliseconds per stage, the thread split
(``threads_pose``, ``threads_detector``, ``threads_opencv``: one pipeline thread runs them in turn) and the JSON the
CPU and its class (:mod:`fasterpose.cpu`).

Prints a markdown table and writes every number as JSON (atomically). Run it on an idle machine: timings of a
loaded machine are meaningless (the recall / switch / error figures do not depend on the load).
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from fasterpose.cpu import cpu_class, format_cpu
from fasterpose.data.detections import match_detections, read_detections
from fasterpose.data.synthetic.clip import ClipConfig, write_clip
from fasterpose.deploy.predictor import Predictor
from fasterpose.detect import HogDetector, OnnxDetector, open_detector
from fasterpose.evaluation.tracking import evaluate_tracking
from fasterpose.io_utils import atomic_write_json
from fasterpose.video.frames import FrameReader, FrameWriter
from fasterpose.video.pipeline import Pipeline
from fasterpose.visualize import draw_poses

ROOT = Path(__file__).resolve().parents[1]
VTEST = ROOT / "benchmarks" / "data" / "vtest.avi"
VTEST_SHORT = ROOT / "tests" / "data" / "people" / "vtest_short.avi"
VTEST_DETS = ROOT / "tests" / "data" / "people" / "vtest_detections.json"

sys.path.insert(0, str(Path(__file__).resolve().parent))
from detector_graphs import PUBLISHED, build_onnx  # noqa: E402  (a sibling script, not a package)


class GivenBoxesAtDetectorCost:
    """A detector for the Pipeline that runs ``detector`` on the frame for its cost and returns the given
    detections of the frame (set :attr:`index` before each frame), so tracking is that of the given boxes."""

    def __init__(self, detector: Any, given: Any) -> None:
        self.detector = detector
        self.given = given
        self.index = 0

    def __call__(self, image: np.ndarray) -> np.ndarray:
        self.detector(image)
        return np.asarray(match_detections(self.given, self.index), np.float64).reshape(-1, 5)


def run_video(video: Path, predictor: Predictor, detector: Any, det_every: int, given: Any, smooth: bool,
              max_frames: int | None, threads: int, out_dir: Path,
              idle_every: int = 1) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One end-to-end run: read, boxes, pose, track, smooth, draw, write. Returns the timing and the results."""
    cv2.setNumThreads(threads)
    cap = cv2.VideoCapture(str(video))
    ok, first = cap.read()
    if not ok:
        raise SystemExit(f"cannot read {video}")
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    h, w = first.shape[:2]
    writer = cv2.VideoWriter(str(out_dir / "drawn.avi"), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    pipe = Pipeline(predictor, detector, det_every=det_every, smoothing=True if smooth else None, fps=fps,
                    idle_every=idle_every)
    results: list[dict[str, Any]] = []
    draw_ms = 0.0
    reader = FrameReader(cap, first, max_frames)
    frame_writer = FrameWriter(writer)
    t0 = time.perf_counter()
    try:
        for index, frame in reader:
            if isinstance(detector, GivenBoxesAtDetectorCost):
                detector.index = index
            boxes = None
            if given is not None and pipe.wants_detection():
                boxes = np.asarray(match_detections(given, index), np.float64).reshape(-1, 5)
            people = pipe(frame, boxes)
            t1 = time.perf_counter()
            kp = np.stack([p["keypoints"] for p in people]) if people else np.zeros((0, 17, 3))
            drawn = draw_poses(frame, kp, predictor.keypoint_set, labels=[f"#{p['track_id']}" for p in people])
            t2 = time.perf_counter()
            frame_writer.write(drawn)
            draw_ms += 1e3 * (t2 - t1)
            for p in people:
                results.append({"frame": index, "image_id": index, "keypoints": p["keypoints"].ravel().tolist(),
                                "bbox": p["box"].tolist(), "track_id": p["track_id"], "det": p["detected"]})
    finally:
        reader.close()
        frame_writer.close()
        writer.release()
        cap.release()
    wall = time.perf_counter() - t0
    write_ms = frame_writer.wait_ms
    s = pipe.summary()
    n = max(s["frames"], 1)
    timing = {"frames": s["frames"], "fps": round(s["frames"] / wall, 2), "total_ms": round(1e3 * wall / n, 2),
              "read_wait_ms": round(reader.wait_ms / n, 2), **{k: v for k, v in s.items() if k.endswith("_ms")},
              "draw_ms": round(draw_ms / n, 2), "write_wait_ms": round(write_ms / n, 2),
              "detection_frames": s["detection_frames"], "persons_per_frame": round(len(results) / n, 2),
              "threads_pose": threads, "threads_detector": threads, "threads_opencv": threads}
    return timing, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    model = parser.add_mutually_exclusive_group(required=True)
    model.add_argument("--checkpoint", help="pose checkpoint (run with onnxruntime through a temporary export)")
    model.add_argument("--onnx", help="pose model exported by `fasterpose export`")
    parser.add_argument("--video", default=None, help=f"vtest.avi (default {VTEST}, else {VTEST_SHORT.name})")
    parser.add_argument("--frames", type=int, default=200, help="frames of vtest.avi (default 200)")
    parser.add_argument("--clip-frames", type=int, default=300, help="frames of the synthetic clip (default 300)")
    parser.add_argument("--clip-seed", type=int, default=0, help="seed of the synthetic clip (default 0)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--det-every", type=int, default=5)
    parser.add_argument("--idle-det-every", type=int, default=1, metavar="K",
                        help="while nobody is tracked, detect every K frames (predict's --idle-det-every; default 1)")
    parser.add_argument("--detector", help="person detector ONNX file (YOLOX, RTMDet, Ultralytics) or a published "
                        "detector's name (`fasterpose weights list`, e.g. yolox_tiny_humanart)")
    parser.add_argument("--arch", nargs="+", default=list(PUBLISHED), choices=[*PUBLISHED, "none"],
                        help="detector architectures timed with random weights (default: all; none: skip)")
    parser.add_argument("--flip", action="store_true", help="flip test on (default off: the real-time setting)")
    parser.add_argument("--only", choices=("vtest", "clip"), help="run one input only")
    parser.add_argument("--out", default=None, help="write the numbers as JSON here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    video = Path(args.video) if args.video else (VTEST if VTEST.is_file() else VTEST_SHORT)
    rows: list[dict[str, Any]] = []
    archs = [a for a in args.arch if a != "none"]
    with tempfile.TemporaryDirectory(prefix="bench_video_") as tmp:
        tmp_dir = Path(tmp)
        graphs = [build_onnx(a, tmp_dir) for a in archs]
        clip = write_clip(tmp_dir / "clip", seed=args.clip_seed, config=ClipConfig(num_frames=args.clip_frames))
        gt = json.loads(Path(clip["keypoints"]).read_text())
        inputs = {"vtest": (video, read_detections(VTEST_DETS, score_thr=0.3), args.frames),
                  "clip": (Path(clip["video"]), read_detections(clip["detections"]), None)}
        for threads in args.threads:
            predictor = Predictor(args.onnx or args.checkpoint, backend="onnxruntime", threads=threads,
                                  flip_test=args.flip)
            onnx_det = open_detector(args.detector, threads=threads) if args.detector else None
            hog = HogDetector()
            n = args.det_every
            configs = [("hog", 1, hog, False), (f"hog/{n}", n, hog, False), ("given", 1, None, False),
                       (f"given/{n}", n, None, False), ("given+smooth", 1, None, True)]
            if onnx_det is not None:
                configs += [("onnx", 1, onnx_det, False), (f"onnx/{n}", n, onnx_det, False)]
            arch_dets = [(g.name, OnnxDetector(g.path, layout=g.family, threads=threads)) for g in graphs]
            for name, (path, given, max_frames) in inputs.items():
                if args.only and name != args.only:
                    continue
                at_cost = [(f"{a}~{'' if every == 1 else f'/{every}'}", every, GivenBoxesAtDetectorCost(d, given),
                            False) for a, d in arch_dets for every in (1, n)]
                for label, every, det, smooth in configs + at_cost:
                    timing, results = run_video(path, predictor, det, every, given if det is None else None, smooth,
                                                max_frames, threads, tmp_dir, args.idle_det_every)
                    row = {"input": name, "boxes": label, "threads": threads, **timing}
                    if name == "clip":
                        row.update({k: round(v, 4) if isinstance(v, float) else v
                                    for k, v in evaluate_tracking(gt, results).items()})
                    rows.append(row)
                    print(json.dumps(row), flush=True)

    cols = ["input", "boxes", "threads", "fps", "detection_frames", "total_ms", "read_wait_ms", "detect_ms", "pose_ms",
            "model_ms", "track_ms", "smooth_ms", "draw_ms", "write_wait_ms", "recall", "switches_per_100",
            "kpt_error_px", "jitter_px"]
    print(f"\nCPU: {format_cpu()}; threads: the pose model, the detector and OpenCV each get "
          "the row's threads, and one pipeline thread runs them in turn")
    print("\n| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(str(r.get(c, "")) for c in cols) + " |")
    # Detection every N frames against every frame, same box source and threads: share of the persons kept.
    for r in rows:
        if r["input"] == "clip" and "/" in r["boxes"] and "~" not in r["boxes"]:
            base = next(b for b in rows if b["input"] == "clip" and b["threads"] == r["threads"]
                        and b["boxes"] == r["boxes"].split("/")[0])
            print(f"clip, {r['boxes']}, {r['threads']} thread(s): keeps {r['found'] / max(base['found'], 1):.3f} of "
                  f"the persons found with detection on every frame; {r['switches_per_100']:.2f} id switches per "
                  "100 track-frames")
    if args.out:
        atomic_write_json(args.out, {"cpu": format_cpu(), "cpu_class": cpu_class(), "platform": platform.platform(),
                                     "video": str(video), "det_every": args.det_every,
                                     "idle_det_every": args.idle_det_every, "flip_test": args.flip,
                                     "clip_seed": args.clip_seed, "detector_graphs": {
                                         g.name: {"input_size": list(g.input_size), "params": g.params,
                                                  "gmacs": round(g.gmacs, 3)} for g in graphs},
                                     "rows": rows}, indent=1)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
