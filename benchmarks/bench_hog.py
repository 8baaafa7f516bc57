"""HOG people detector settings: recall against known people and cost per call.

Inputs: the synthetic clip (``fasterpose synth --video``, seeds ``--seeds``, every ``--step``-th frame; truth =
``clip_keypoints.json``, persons 150-260 pixels tall in 480x360 frames) and ``vtest.avi`` (768x576 pedestrians,
60-175 pixels tall; ``benchmarks/data/vtest.avi`` else ``tests/data/people/vtest_short.avi``), on the frames
where the real detector of ``tests/data/people/vtest_detections.json`` found someone (score >= 0.3): recall there
is the share of *that* detector's persons HOG finds (the file misses many walkers, so precision on vtest is a lower
bound). A person counts as found by a box with IoU >= 0.5, matched one to one as
:func:`fasterpose.evaluation.tracking.evaluate_tracking` matches them (HOG's boxes are the person inside its window,
:data:`fasterpose.detect.hog.PERSON_IN_WINDOW`).

Cost: CPU milliseconds per call at one OpenCV thread (``time.process_time``: the work done, much less disturbed
by other processes than wall time), and wall milliseconds per call at ``--threads`` (median of ``--repeats``).
The ``roi`` rows look only around the given people of the frame (as the Pipeline would around its tracks).
Then the old detector, the default and step 1.15 are called in turn on every other frame at 1 and 2 threads (wall
time, robust to a load that changes between rows), and with ``--checkpoint`` the Pipeline runs each clip with the
old and the new HOG (recall, identity switches, keypoint error through :mod:`fasterpose.evaluation.tracking`).

    python benchmarks/bench_hog.py --out benchmarks/results/hog.json

Prints a markdown table and writes the JSON atomically.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from fasterpose.cpu import format_cpu
from fasterpose.data.synthetic.clip import ClipConfig, write_clip
from fasterpose.detect.hog import HogDetector
from fasterpose.evaluation.tracking import evaluate_tracking
from fasterpose.io_utils import atomic_write_json

ROOT = Path(__file__).resolve().parents[1]
VTEST = ROOT / "benchmarks" / "data" / "vtest.avi"
VTEST_SHORT = ROOT / "tests" / "data" / "people" / "vtest_short.avi"
VTEST_DETS = ROOT / "tests" / "data" / "people" / "vtest_detections.json"

# name -> HogDetector settings; "old" is the detector before this table (1.05 step, groups of 3), here with the
# person boxes inside its windows like every row (OLD below is it as it was, windows included).
OLD = {"scale": 1.05, "padding": 8, "hit_threshold": 0.0, "group_threshold": 2}
SETTINGS: dict[str, dict[str, Any]] = {
    "old (1.05, pad 8, hit 0, group 2)": OLD,
    "1.05, pad 8, hit 0, group 1": {"scale": 1.05, "padding": 8, "hit_threshold": 0.0},
    "1.1, pad 8, hit 0, group 2": {"scale": 1.1, "padding": 8, "hit_threshold": 0.0, "group_threshold": 2},
    "1.1, pad 16, hit -0.2, group 1 (default)": {},
    "1.15, pad 16, hit -0.2, group 1": {"scale": 1.15},
    "1.2, pad 16, hit -0.3, group 1": {"scale": 1.2, "hit_threshold": -0.3},
    "stride 16": {"win_stride": 16},
    "pad 0": {"padding": 0},
}
# Per-input person sizes (the "sizes the video holds"): min_height / max_height in frame pixels.
SIZES = {"clip": {"min_height": 140, "max_height": 280}, "vtest": {"min_height": 96, "max_height": 200}}


def _frames(video: Path, wanted: set[int] | None, step: int, limit: int | None) -> Iterator[tuple[int, np.ndarray]]:
    cap = cv2.VideoCapture(str(video))
    index = 0
    try:
        while limit is None or index < limit:
            ok, frame = cap.read()
            if not ok:
                break
            if (wanted is None and index % step == 0) or (wanted is not None and index in wanted):
                yield index, frame
            index += 1
    finally:
        cap.release()


def load_clip(clips: list[dict[str, str]], step: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(frame, truth boxes (G, 4) xywh) of the synthetic clips (:func:`write_clip`'s paths)."""
    out = []
    for clip in clips:
        truth: dict[int, list[list[float]]] = {}
        for a in json.loads(Path(clip["keypoints"]).read_text())["annotations"]:
            if a.get("num_keypoints", 1) > 0:
                truth.setdefault(a["image_id"], []).append(a["bbox"])
        out += [(f, np.asarray(truth.get(i, []), np.float64).reshape(-1, 4))
                for i, f in _frames(Path(clip["video"]), None, step, None)]
    return out


def load_vtest(video: Path, step: int, limit: int | None) -> list[tuple[np.ndarray, np.ndarray]]:
    """(frame, the given detector's boxes) on every ``step``-th frame that has any."""
    given: dict[int, list[list[float]]] = {}
    for d in json.loads(VTEST_DETS.read_text())["detections"]:
        if d["score"] >= 0.3:
            given.setdefault(int(d["image_id"]), []).append(d["bbox"])
    wanted = set(sorted(given)[::step])
    return [(f, np.asarray(given[i], np.float64)) for i, f in _frames(video, wanted, 1, limit)]


def _entries(boxes: np.ndarray, frame: int) -> list[dict[str, Any]]:
    """Boxes as entries of :func:`~fasterpose.evaluation.tracking.evaluate_tracking` (no keypoints, no identity)."""
    return [{"image_id": frame, "frame": frame, "bbox": b[:4].tolist(), "keypoints": [0.0] * 51, "track_id": 0,
             "num_keypoints": 1} for b in boxes]


def measure(data: list[tuple[np.ndarray, np.ndarray]], det: HogDetector, roi: bool, threads: int,
            repeats: int) -> dict[str, Any]:
    """Recall, precision and cost of one detector on one input."""
    truth_entries: list[dict[str, Any]] = []
    found_entries: list[dict[str, Any]] = []
    cpu: list[float] = []
    wall: list[float] = []
    for index, (frame, truth) in enumerate(data):
        region = truth if roi else None
        cv2.setNumThreads(1)
        t = time.process_time()
        found = det.detect(frame, region)
        cpu.append(time.process_time() - t)
        cv2.setNumThreads(threads)
        for _ in range(repeats):
            t = time.perf_counter()
            det.detect(frame, region)
            wall.append(time.perf_counter() - t)
        truth_entries += _entries(truth, index)
        found_entries += _entries(found, index)
    # Found = matched one to one by IoU >= 0.5, greedily, as the video evaluation matches persons.
    scores = evaluate_tracking({"annotations": truth_entries}, found_entries)
    tp, n_truth, n_found = scores["found"], len(truth_entries), len(found_entries)
    return {"frames": len(data), "recall": round(tp / max(n_truth, 1), 3),
            "precision": round(tp / max(n_found, 1), 3), "cpu_ms_1t": round(1e3 * float(np.mean(cpu)), 2),
            f"wall_ms_{threads}t": round(1e3 * float(np.median(wall)), 2)}


def interleaved(inputs: dict[str, list[tuple[np.ndarray, np.ndarray]]], repeats: int) -> list[dict[str, Any]]:
    """Wall milliseconds per call (median) of the old detector, the default and step 1.15 at 1 and 2 OpenCV threads,
    called in turn on each frame, so that a change in the machine's load touches all three alike."""
    dets = {"old (windows)": HogDetector(**OLD, box="window"), "default": HogDetector(),
            "step 1.15": HogDetector(scale=1.15)}
    rows = []
    for threads in (1, 2):
        cv2.setNumThreads(threads)
        for name, data in inputs.items():
            times: dict[str, list[float]] = {k: [] for k in dets}
            for _ in range(repeats):
                for frame, _truth in data:
                    for k, det in dets.items():
                        t = time.perf_counter()
                        det.detect(frame)
                        times[k].append(time.perf_counter() - t)
            row = {"input": name, "threads": threads,
                   **{k: round(1e3 * float(np.median(v)), 2) for k, v in times.items()}}
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def run_pipelines(clips: list[dict[str, str]], checkpoint: str, det_every: int, threads: int, tmp: Path
                  ) -> list[dict[str, Any]]:
    """The Pipeline with the old HOG (its windows as boxes) and the new default on each clip, detecting every frame
    and every ``det_every`` frames: persons found, identity switches and keypoint error summed over the clips."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_video import run_video  # a sibling script

    from fasterpose.deploy.predictor import Predictor

    predictor = Predictor(checkpoint, backend="onnxruntime", threads=threads, flip_test=False)
    rows = []
    for name, kwargs in (("old (windows)", {**OLD, "box": "window"}), ("new default", {})):
        for every in (1, det_every):
            total = {"found": 0, "gt": 0, "switches": 0, "err": 0.0, "det": 0, "frames": 0, "detect_ms": 0.0}
            for clip in clips:
                timing, results = run_video(Path(clip["video"]), predictor, HogDetector(**kwargs), every, None,
                                            False, None, threads, tmp)
                scores = evaluate_tracking(json.loads(Path(clip["keypoints"]).read_text()), results)
                total["found"] += scores["found"]
                total["gt"] += scores["gt_person_frames"]
                total["switches"] += scores["id_switches"]
                total["err"] += scores["kpt_error_px"] * scores["found"] if scores["found"] else 0.0
                total["det"] += timing["detection_frames"]
                total["frames"] += timing["frames"]
                total["detect_ms"] += timing["detect_ms"] * timing["frames"]
            row = {"hog": name, "det_every": every, "recall": round(total["found"] / max(total["gt"], 1), 3),
                   "switches_per_100": round(100 * total["switches"] / max(total["found"], 1), 2),
                   "kpt_error_px": round(total["err"] / max(total["found"], 1), 2),
                   "detection_frames": total["det"], "detect_ms": round(total["detect_ms"] / total["frames"], 2)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--video", default=None, help=f"vtest.avi (default {VTEST}, else {VTEST_SHORT.name})")
    parser.add_argument("--vtest-step", type=int, default=6, help="every Nth vtest frame with given boxes (6)")
    parser.add_argument("--vtest-frames", type=int, default=None, help="read at most this many vtest frames")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="synthetic clip seeds (0 1 2)")
    parser.add_argument("--clip-frames", type=int, default=300, help="frames per synthetic clip (300)")
    parser.add_argument("--clip-step", type=int, default=6, help="every Nth clip frame (6)")
    parser.add_argument("--threads", type=int, default=2, help="OpenCV threads of the wall-time column (2)")
    parser.add_argument("--repeats", type=int, default=3, help="wall-time repeats per frame (3)")
    parser.add_argument("--settings", nargs="+", default=None, help=f"a subset of: {', '.join(SETTINGS)}")
    parser.add_argument("--checkpoint", default=None, help="also run the Pipeline (this pose model) on each clip "
                        "with the old and the new HOG, detecting every frame and every --det-every frames")
    parser.add_argument("--det-every", type=int, default=5, help="the Pipeline rows' detection interval (5)")
    parser.add_argument("--out", default=None, help="write the numbers as JSON here")
    args = parser.parse_args()

    video = Path(args.video) if args.video else (VTEST if VTEST.is_file() else VTEST_SHORT)
    rows: list[dict[str, Any]] = []
    pipeline_rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench_hog_") as tmp:
        clips = [write_clip(Path(tmp) / f"clip{seed}", seed=seed, config=ClipConfig(num_frames=args.clip_frames))
                 for seed in args.seeds]
        inputs = {"clip": load_clip(clips, args.clip_step), "vtest": load_vtest(video, args.vtest_step,
                                                                                 args.vtest_frames)}
        if args.checkpoint:
            pipeline_rows = run_pipelines(clips, args.checkpoint, args.det_every, args.threads, Path(tmp))
    names = args.settings or list(SETTINGS)
    plans = [(n, SETTINGS[n], False, False) for n in names]
    plans += [("default, person sizes given", {}, True, False), ("default, roi = the people", {}, False, True),
              ("default, person sizes + roi", {}, True, True)]
    for name, kwargs, sized, roi in plans:
        for inp, data in inputs.items():
            det = HogDetector(**kwargs, **(SIZES[inp] if sized else {}))
            row = {"setting": name, "input": inp, **measure(data, det, roi, args.threads, args.repeats)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    cols = ["setting", "input", "frames", "recall", "precision", "cpu_ms_1t", f"wall_ms_{args.threads}t"]
    print("\n| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(str(r.get(c, "")) for c in cols) + " |")
    ab = interleaved({k: v[::2] for k, v in inputs.items()}, max(args.repeats, 1))
    print("\nWall ms per call, the three called in turn on each frame:\n| input | threads | old (windows) | default | "
          "step 1.15 |\n|---|---|---|---|---|")
    for r in ab:
        print(f"| {r['input']} | {r['threads']} | {r['old (windows)']} | {r['default']} | {r['step 1.15']} |")
    if pipeline_rows:
        cols = ["hog", "det_every", "recall", "switches_per_100", "kpt_error_px", "detection_frames", "detect_ms"]
        print("\nPipeline on the clips (seeds " + " ".join(map(str, args.seeds)) + "):\n| " + " | ".join(cols)
              + " |\n|" + "---|" * len(cols))
        for r in pipeline_rows:
            print("| " + " | ".join(str(r.get(c, "")) for c in cols) + " |")
    if args.out:
        atomic_write_json(args.out, {"cpu": format_cpu(), "video": str(video), "sizes": SIZES, "rows": rows,
                                     "interleaved_wall_ms": ab, "pipeline_rows": pipeline_rows}, indent=1)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
