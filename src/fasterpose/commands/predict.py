"""``fasterpose predict INPUT``: poses on an image, a folder, a video file or a webcam; drawn skeletons + results json.

This module parses the options, opens the model and the box source, stages the outputs and prints the summary. Where
person boxes come from: :mod:`fasterpose.detect.sources` (``--boxes``, ``--detector``, ``--full-image``, HOG by
default). Every image and frame goes through one :class:`~fasterpose.video.pipeline.Pipeline` (a photo: one frame,
no tracking), fed by :mod:`fasterpose.video.runner` (the frame loop, the one place Ctrl-C ends).

Outputs in ``--out``: ``results.json`` (COCO keypoint results, no rescoring or NMS, plus ``bbox``, ``file_name``,
and ``frame``, ``track_id`` for videos), ``keypoint_set.json`` (the keypoint names, skeleton, flip pairs, sigmas)
and drawn images ``<stem>.jpg`` or a drawn video ``<stem>_pose.mp4``; docs/design.md describes them. They are
written into a staging folder inside ``--out`` and moved into place at the end: an output that would replace an
input, or another run's results, is refused before any work; a failed run leaves nothing; Ctrl-C keeps what was done
(``results_incomplete.json`` marks it); a second run into ``--out`` at the same time is refused.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from ..video.runner import FrameRun as _Run  # the per-frame step (the signal tests hook _Run.process)
from . import _options as opt

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", metavar="INPUT", help="image, folder of images, video file, or webcam index (0, 1..)")
    model = parser.add_mutually_exclusive_group(required=True)
    model.add_argument("--checkpoint", "--weights", dest="checkpoint", metavar="CKPT",
                       help="fasterpose checkpoint (.pt), published weights by name (`fasterpose weights list`) or a "
                       "SimpleBaseline file of MMPose or the official release")
    model.add_argument("--onnx", metavar="MODEL", help="ONNX model written by `fasterpose export`")
    boxes = parser.add_mutually_exclusive_group()
    boxes.add_argument("--boxes", metavar="DETS.json", help="person detections (COCO results or wrapper json)")
    boxes.add_argument("--full-image", action="store_true", help="one person box = the whole image")
    boxes.add_argument("--hog", action="store_true", help="OpenCV HOG people detector (the default)")
    boxes.add_argument("--detector", metavar="FILE.onnx|NAME",
                       help="person detector ONNX file: YOLOX/RTMDet (MMDeploy, rtmlib) or Ultralytics YOLOv8/11, or "
                       "a published one by name, downloaded once (`fasterpose weights list`), e.g. yolox_tiny_humanart")
    parser.add_argument("--detector-layout", choices=("yolox", "rtmdet", "yolox_raw", "ultralytics", "ultralytics_nms"),
                        help="the --detector file's layout (default: read from the graph)")
    parser.add_argument("--det-every", type=opt.positive_int, default=1, metavar="N",
                        help="videos: detect every N frames, boxes from the last poses between (default 1)")
    parser.add_argument("--redetect-thr", type=opt.fraction, default=0.3, metavar="S",
                        help="videos with --det-every > 1: detect again on the next frame when a person's mean "
                        "keypoint score drops below S and below its score on the last detection frame "
                        "(default 0.3; 0 = never early)")
    parser.add_argument("--early-roi", action="store_true",
                        help="videos: a re-detection asked by a confidence drop searches only around the tracks "
                        "(HOG; faster, may miss people: docs/results.md)")
    parser.add_argument("--det-lag", type=opt.non_negative_int, default=0, metavar="L",
                        help="videos: run the detector in its own thread beside the pose model; its boxes of frame t "
                        "join at frame t+L, moved by their tracks' motion (default 0: in turn with the pose model)")
    parser.add_argument("--det-threads", type=opt.thread_count, default=None, metavar="N",
                        help="the detector's threads (default: with --det-lag, half of --threads; else --threads)")
    parser.add_argument("--idle-det-every", type=opt.positive_int, default=1, metavar="K",
                        help="videos: while nobody is tracked, detect every K frames (default 1: every frame)")
    parser.add_argument("--smooth", action="store_true", help="videos: one-euro smoothing of the keypoints per track")
    parser.add_argument("--out", default="predictions", metavar="DIR", help="output folder (default: predictions)")
    parser.add_argument("--backend", choices=("torch", "onnxruntime"),
                        help="default: torch for --checkpoint, onnxruntime for --onnx")
    parser.add_argument("--threads", type=opt.thread_count, default=None,
                        help="intra-op threads (default: library default)")
    parser.add_argument("--max-batch", type=opt.positive_int, default=32, metavar="N",
                        help="most persons per model call; a crowd goes through in batches of N (default 32)")
    parser.add_argument("--det-thr", type=opt.float_range(0.0), default=0.3,
                        help="minimum box score (default 0.3)")
    parser.add_argument("--box-category", type=opt.non_negative_int, default=None, metavar="ID",
                        help="category_id of the --boxes entries to read (default: the model's keypoint category)")
    parser.add_argument("--kpt-thr", type=opt.fraction, default=0.3,
                        help="minimum keypoint score to draw (default 0.3)")
    parser.add_argument("--no-flip", action="store_true", help="disable the flip test (faster)")
    parser.add_argument("--show-boxes", action="store_true", help="draw the person boxes")
    parser.add_argument("--max-frames", type=opt.positive_int, default=None, help="stop a video/webcam after N frames")
    parser.add_argument("--video-format", choices=("mp4", "avi"), default="mp4",
                        help="drawn video container: mp4 (mp4v) or avi (MJPG); default mp4")
    parser.add_argument("--show", action="store_true", help="show frames in a window (needs OpenCV with GUI)")
    parser.add_argument("--no-draw", action="store_true", help="write only results.json")


def _check_outputs(out: Path, names: list[str], inputs: list[Path]) -> None:
    """Refuse, before any work, outputs that would replace an input file or something that is not a regular file,
    and an ``--out`` that is not a (creatable, writable) folder."""
    from ..io_utils import check_writable_folder, writable_target

    if out.exists() and not out.is_dir():
        raise DataError(f"--out {out} is a file, not a folder; give a folder for the drawn images and results.json")
    check_writable_folder(out, f"--out {out}")
    inputs_resolved = {p.resolve(): p for p in inputs}
    for name in names:
        target = writable_target(out / name).resolve()  # raises for directories, devices, ...
        if target in inputs_resolved:
            raise DataError(f"--out {out}: writing {name} would overwrite the input file {inputs_resolved[target]}; "
                            "fasterpose never replaces its inputs. Choose another --out folder")


def _check_not_another_run(out: Path, file_names: set[str]) -> None:
    """Refuse an ``--out`` that holds another run's results (other inputs): its results.json would be replaced while
    that run's drawings stayed, a folder that no longer says what it holds. Re-running on the same inputs is fine."""
    import json

    previous = out / "results.json"
    if not previous.is_file():
        return
    try:
        earlier = {r.get("file_name") for r in json.loads(previous.read_text()) if isinstance(r, dict)}
    except (OSError, ValueError, TypeError):
        earlier = {"?"}
    earlier.discard(None)
    other = sorted(earlier - file_names)
    if other:
        raise DataError(f"--out {out} holds the results of another run (of {', '.join(other[:3])}"
                        f"{' ...' if len(other) > 3 else ''}); this run would replace its results.json and leave its "
                        "drawings. Write to a new folder, or remove that run's outputs first")


def run(args: argparse.Namespace) -> int:
    from ..data.images import list_images
    from ..deploy.predictor import Predictor
    from ..detect.sources import open_box_source
    from ..io_utils import exclusive_folder, remove_stale_folders
    from ..video.media import VIDEO_SUFFIXES, drawn_image_names, fit_name

    src = args.input
    webcam = src.isdigit() and not Path(src).exists()
    if not webcam and not (Path(src).is_file() or Path(src).is_dir()):  # a FIFO or device would block the reader
        from ..io_utils import not_a_file

        raise DataError(f"input {src} {not_a_file(src)} (give an image, a folder, a video file or a webcam index)")
    # option values are checked where they are parsed (commands/_options.py)
    if args.detector_layout and not args.detector:
        raise DataError("--detector-layout describes a --detector FILE.onnx; give the file too")
    # The detector beside the pose model gets its own share of --threads; in turn, each may use them all.
    video = webcam or Path(src).suffix.lower() in VIDEO_SUFFIXES
    beside = video and args.det_lag > 0 and not args.boxes and not args.full_image
    args.det_lag = args.det_lag if beside else 0  # a detections file or the whole image costs nothing to wait for
    args.det_threads = args.det_threads or (max(1, args.threads // 2) if beside and args.threads else args.threads)
    args.pose_threads = max(1, args.threads - args.det_threads) if beside and args.threads else args.threads
    predictor = Predictor(args.checkpoint or args.onnx, backend=args.backend or ("onnxruntime" if args.onnx else
                          "torch"), threads=args.pose_threads, flip_test=False if args.no_flip else None,
                          max_batch=args.max_batch)
    _warn_if_not_person(predictor.keypoint_set, args)  # before a detector is downloaded
    category_id = 1 if predictor.spec.category_id is None else predictor.spec.category_id
    source = open_box_source(args.boxes, args.full_image, args.detector, args.detector_layout, args.det_thr,
                             category_id, args.box_category, args.det_threads)
    logger.info("%r", predictor)
    # One warm-up call so that the timing summary does not include one-off initialisation (oneDNN / ORT arenas).
    h, w = predictor.input_size
    predictor(np.zeros((h, w, 3), np.uint8), [[0, 0, w, h]])
    out, path = Path(args.out), Path(src)
    if video:
        kind, inputs = ("webcam", []) if webcam else ("video", [path])
        names = [fit_name(f"{f'webcam{src}' if webcam else path.stem}_pose", f".{args.video_format}")]
    else:
        kind, (inputs, skipped) = "images", list_images(path) if path.is_dir() else ([path], [])
        names = list(drawn_image_names(inputs).values())
    _check_outputs(out, ["results.json", "keypoint_set.json", *([] if args.no_draw else names)], inputs)
    if not webcam:  # a webcam's frames are new each time: nothing to mix up
        _check_not_another_run(out, {p.name for p in inputs})
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"cannot create the output folder --out {out} ({e.strerror}); give a writable folder") from e
    try:
        with exclusive_folder(out, "predict"):  # a second run into --out at the same time is refused
            if not webcam:  # again, now that no other run can write results.json
                _check_not_another_run(out, {p.name for p in inputs})
            remove_stale_folders(out, ".predict-")  # staging folders of killed runs
            run_ = _Run(predictor, None, args, category_id)
            _predict(run_, int(src) if webcam else src, kind, inputs, out, source)
            _summary(run_, kind, skipped if kind == "images" else [], out, source)
            return 0
    except BaseException:
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()  # a failed run leaves no empty folder behind
        raise


def _warn_if_not_person(keypoint_set: Any, args: argparse.Namespace) -> None:
    """Warn when a person detector gives the boxes of a model whose keypoints are not a person's (an animal, a hand,
    a car): it would find the persons in the image, not the model's objects."""
    from ..keypoints.names import looks_like_person

    if args.boxes or args.full_image or looks_like_person(keypoint_set.name, keypoint_set.names):
        return
    source = f"--detector {args.detector}" if args.detector else "OpenCV's HOG people detector (the default)"
    names = ", ".join(keypoint_set.names[:4]) + (", ..." if keypoint_set.num_keypoints > 4 else "")
    logger.warning("the model's keypoints (%s: %s) are not a person's, but its boxes come from %s, which finds "
                   "persons only: give the boxes of your objects with --boxes DETS.json, or use --full-image when "
                   "each image shows one object", keypoint_set.name, names, source)


def _predict(run: Any, src: str | int, kind: str, inputs: list[Path], out: Path, source: Any) -> None:
    """Predict into a staging folder inside ``--out``, then move the outputs into place (renames need no disk
    space: a disk that fills up cannot leave new drawings beside old results)."""
    from ..evaluation.coco import write_results
    from ..io_utils import atomic_write_json, temp_folder, writable_target
    from ..video.pipeline import Pipeline
    from ..video.runner import run_images, run_video

    args = run.options
    run.pipeline = Pipeline(run.predictor, source, det_every=args.det_every, smoothing=True if args.smooth else None,
                            kpt_thr=args.kpt_thr, redetect_thr=args.redetect_thr, tracking=kind != "images",
                            det_lag=args.det_lag, idle_every=args.idle_det_every,
                            early_roi=args.early_roi)
    t0 = time.perf_counter()
    with temp_folder(".predict-", out) as stage_dir:
        stage = Path(stage_dir)
        if kind == "images":
            written = run_images(run, inputs, source, stage)
        else:
            written = run_video(run, src, source, stage)
        run.wall = time.perf_counter() - t0
        write_results(stage / "results.json", run.results)
        atomic_write_json(stage / "keypoint_set.json", run.predictor.keypoint_set.to_dict())
        marker = out / "results_incomplete.json"
        if run.interrupted:
            atomic_write_json(stage / marker.name, {"incomplete": True, "frames" if kind != "images" else "images":
                                                    run.frames, "note": "interrupted by the user"})
            written.append(stage / marker.name)
        for f in written:  # the staging folder is inside --out: same file system, atomic renames
            os.replace(f, writable_target(out / f.name))
        if not run.interrupted and marker.is_file():
            marker.unlink()  # this run's results.json is complete
        os.replace(stage / "keypoint_set.json", writable_target(out / "keypoint_set.json"))
        os.replace(stage / "results.json", writable_target(out / "results.json"))
    run.written = [out / f.name for f in written if (out / f.name).is_file() and f.name != marker.name]
    if args.show:
        import cv2

        cv2.destroyAllWindows()


def _summary(run: Any, kind: str, skipped: list[str], out: Path, source: Any) -> None:
    from ..cpu import cpu_class

    predictor, n = run.predictor, max(run.frames, 1)
    unit = "images" if kind == "images" else "frames"
    print(f"{run.frames} {unit}, {run.persons} persons ({predictor.backend}, {predictor.spec.model_name} "
          f"{predictor.input_size[0]}x{predictor.input_size[1]}, flip test {'on' if predictor.flip_test else 'off'})")
    reason = getattr(getattr(source, "detector", None), "reason", None)  # an ONNX detector says how it was read
    print(f"person boxes: {getattr(source, 'name', type(source).__name__)}{f'; {reason}' if reason else ''}")
    print(f"ms per {unit[:-1]}: total {1e3 * run.wall / n:.1f} (read, boxes, crop, model, decode, draw, write), "
          f"model {run.model_ms / n:.1f}, crop+normalize {run.pre_ms / n:.1f}, decode+map back {run.post_ms / n:.1f}")
    if run.pipeline.tracking:
        s = run.pipeline.summary()
        print(f"ms per frame by stage: read (waiting) {run.stage_ms['read'] / n:.1f}, detect {s['detect_ms']:.1f} "
              f"({s['detection_frames']} of {s['frames']} frames, --det-every {run.pipeline.det_every}), pose "
              f"{s['pose_ms']:.1f} (model {s['model_ms']:.1f}), track {s['track_ms']:.1f}, smooth "
              f"{s['smooth_ms']:.1f}, draw {run.stage_ms['draw'] / n:.1f}, write (waiting) "
              f"{run.stage_ms['write'] / n:.1f}; {len(set(r['track_id'] for r in run.results))} tracks")
        o = run.options
        print(f"{run.frames / max(run.wall, 1e-9):.1f} frames per second; detector {s['detector_calls']} calls "
              f"({s['roi_calls']} around tracks only), {s['detector_ms']:.1f} ms per frame"
              f"{' in its own thread' if s['det_lag'] else ''} (--det-lag "
              f"{s['det_lag']}, waited {s['detector_wait_ms']:.1f}); threads: pose {o.pose_threads or 'default'}, "
              f"detector {o.det_threads or 'default'}; CPU {cpu_class()}")
    if skipped:
        print(f"{len(skipped)} entries of the folder skipped (not images OpenCV reads): {', '.join(skipped[:5])}"
              f"{' ...' if len(skipped) > 5 else ''}")
    if run.missing:
        print(f"{run.missing} images skipped: no entry in {run.options.boxes}")
    if run.unreadable:
        print(f"{len(run.unreadable)} images could not be read and were skipped: {', '.join(run.unreadable)}")
    if run.truncated:
        print(f"warning: suspect input (results may be wrong there): {', '.join(run.truncated)}")
    if run.interrupted:
        print(f"interrupted: kept the {run.frames} {unit} processed before the stop (Ctrl-C or a signal; see "
              "results_incomplete.json)")
    if run.pipeline.skipped_boxes:
        print(f"{run.pipeline.skipped_boxes} boxes skipped: less than one pixel of them lies inside their image")
    what = "video" if unit == "frames" else "images"
    drawn = f" and {len(run.written)} drawn {what} to {out}" if run.written else ""
    print(f"wrote {out / 'results.json'} (keypoint names in keypoint_set.json){drawn}")
