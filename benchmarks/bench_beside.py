"""Detection beside pose: what ``--det-lag`` (the detector in its own thread, its boxes merged L frames later) and
``--idle-det-every`` (the detector backing off while nobody is tracked) buy and cost, end to end through the real
:class:`~fasterpose.video.pipeline.Pipeline`.

On the synthetic clip with known truth (``fasterpose synth --video``, seeds ``--seeds``) and optionally on a real
video (``--video``, e.g. OpenCV's vtest.avi: time only), each configuration ``(det_lag, idle_every)`` is run with
HOG (or ``--detector``) every ``--det-every`` frames, at ``--threads`` split between the detector and the pose model
as ``fasterpose predict`` splits them. Per row: frames per second (read, boxes, pose, track; no drawing), detector
calls and ms per call, the time the pose thread waited for a detection, and on the clip the persons found (recall
against the truth), identity switches per 100, keypoint error and the frames lost to late first appearances
(``first_found_delay``, summed over persons).

    python benchmarks/bench_beside.py --checkpoint outputs/demo/last.pt --video benchmarks/data/vtest.avi \\
        --out benchmarks/results/beside.json

Prints a markdown table and writes every number as JSON. Timings of a loaded machine mean nothing; the recall,
switch and delay figures do not depend on the load (the merge frame is fixed).
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from fasterpose.cpu import cpu_class, format_cpu
from fasterpose.data.synthetic.clip import ClipConfig, write_clip
from fasterpose.deploy.predictor import Predictor
from fasterpose.detect.sources import open_box_source
from fasterpose.evaluation.tracking import evaluate_tracking
from fasterpose.io_utils import atomic_write_json
from fasterpose.video.media import VideoInput
from fasterpose.video.pipeline import Pipeline


def run(video: Path, predictor: Predictor, source: Any, lag: int, idle: int, det_every: int,
        max_frames: int | None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One pass over a video: timing and the results (``frame``, ``bbox``, ``keypoints``, ``track_id``)."""
    frames = VideoInput(str(video), max_frames)
    pipe = Pipeline(predictor, source, det_every=det_every, fps=frames.fps, det_lag=lag, idle_every=idle)
    results: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    try:
        for index, frame in frames:
            for p in pipe(frame):
                results.append({"frame": index, "image_id": index, "bbox": p["box"].tolist(),
                                "keypoints": p["keypoints"].ravel().tolist(), "track_id": p["track_id"]})
    finally:
        pipe.close()
        frames.close()
    wall = time.perf_counter() - t0
    s = pipe.summary()
    calls = max(s["detector_calls"], 1)
    return {"frames": s["frames"], "fps": round(s["frames"] / wall, 2), "detector_calls": s["detector_calls"],
            "detector_ms_per_call": round(s["detector_ms"] * s["frames"] / calls, 2),
            "wait_ms_per_frame": s["detector_wait_ms"], "pose_ms_per_frame": s["pose_ms"]}, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    model = parser.add_mutually_exclusive_group(required=True)
    model.add_argument("--checkpoint", help="pose checkpoint (torch backend)")
    model.add_argument("--onnx", help="pose model exported by `fasterpose export` (onnxruntime)")
    parser.add_argument("--video", help="a real video to time as well (no truth), e.g. benchmarks/data/vtest.avi")
    parser.add_argument("--frames", type=int, default=200, help="frames of --video (default 200)")
    parser.add_argument("--clip-frames", type=int, default=300, help="frames of each synthetic clip (default 300)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="synthetic clips (default 0 1 2)")
    parser.add_argument("--threads", type=int, default=2, help="threads in all (default 2)")
    parser.add_argument("--det-every", type=int, default=5)
    parser.add_argument("--lags", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--idle", type=int, nargs="+", default=[1, 4, 8], help="--idle-det-every values")
    parser.add_argument("--detector", help="person detector ONNX file or published name (default: HOG)")
    parser.add_argument("--out", help="write the numbers as JSON here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench_beside_") as tmp:
        inputs = [(f"clip{seed}", write_clip(Path(tmp) / f"clip{seed}", seed=seed,
                                              config=ClipConfig(num_frames=args.clip_frames))) for seed in args.seeds]
        if args.video:
            inputs.append((Path(args.video).stem, {"video": Path(args.video), "keypoints": None}))
        for lag in args.lags:
            det_threads = max(1, args.threads // 2) if lag else args.threads
            pose_threads = max(1, args.threads - det_threads) if lag else args.threads
            predictor = Predictor(args.onnx or args.checkpoint, threads=pose_threads, flip_test=False)
            h, w = predictor.input_size
            predictor(np.zeros((h, w, 3), np.uint8), [[0, 0, w, h]])  # one-off initialisation out of the timing
            source = open_box_source(detector=args.detector, threads=det_threads)
            for idle in args.idle:
                for name, clip in inputs:
                    limit = args.frames if clip["keypoints"] is None else None
                    timing, results = run(clip["video"], predictor, source, lag, idle, args.det_every, limit)
                    row = {"input": name, "det_lag": lag, "idle_every": idle, "pose_threads": pose_threads,
                           "detector_threads": det_threads, **timing}
                    if clip["keypoints"] is not None:
                        score = evaluate_tracking(json.loads(Path(clip["keypoints"]).read_text()), results)
                        row.update({k: score[k] for k in ("recall", "switches_per_100", "kpt_error_px",
                                                          "first_found_delay", "never_found")})
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    keys = ["input", "det_lag", "idle_every", "fps", "detector_calls", "detector_ms_per_call", "wait_ms_per_frame",
            "recall", "switches_per_100", "kpt_error_px", "first_found_delay"]
    print(f"\n{format_cpu()}; --threads {args.threads}, --det-every {args.det_every}, "
          f"detector {args.detector or 'HOG'}\n")
    print("| " + " | ".join(keys) + " |\n|" + "---|" * len(keys))
    for r in rows:
        print("| " + " | ".join(f"{r[k]:.3g}" if isinstance(r.get(k), float) else str(r.get(k, "")) for k in keys)
              + " |")
    if args.out:
        atomic_write_json(args.out, {"cpu": format_cpu(), "cpu_class": cpu_class(), "threads": args.threads,
                                     "det_every": args.det_every, "detector": args.detector or "hog", "rows": rows})


if __name__ == "__main__":
    main()
