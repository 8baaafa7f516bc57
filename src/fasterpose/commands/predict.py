"""``fasterpose predict INPUT``: poses on an image, a folder, a video file or a webcam; drawn skeletons + results json.

Person boxes come from ``--boxes DETS.json`` (COCO detection results or the ``images``/``video`` wrappers, matched
by file name, image id or frame index; boxes of the model's keypoint category or ``--box-category``, or without
a ``category_id``), ``--detector FILE.onnx`` (YOLOX, RTMDet or Ultralytics ONNX files, :mod:`fasterpose.detect`;
or a published detector by name, :mod:`fasterpose.detect.zoo`),
``--full-image`` (one box = the whole image) or, by default, OpenCV's HOG people detector (``--hog``; weak but
dependency-free).

Videos and webcams go through a :class:`~fasterpose.video.pipeline.Pipeline`: boxes every ``--det-every`` frames and
pose-guided boxes between, track ids (``track_id`` in the results, drawn beside each person), optional one-euro
smoothing (``--smooth``).

Outputs in ``--out`` (default ``predictions``):

* ``results.json``: COCO keypoint results (``image_id``, ``category_id`` = the keypoint category of the model's
  training file (1 for models that do not know it), ``keypoints``, ``score`` = box score,
  keypoint third values = keypoint scores, no rescoring/NMS, so ``fasterpose eval-results`` can apply the recipe),
  plus ``bbox`` and ``file_name`` (and ``frame`` for videos). ``image_id`` is the detection file's id for the image,
  else the frame index (videos, webcam) or the running index of the image (0-based, sorted file names);
* ``keypoint_set.json``: the model's keypoint set (``names`` in the order of each result's keypoints, ``skeleton``,
  ``flip_pairs``, ``sigmas``), so the results can be read without the model;
* drawn images ``<stem>.jpg`` (``<stem>_<ext>.jpg`` when two inputs share a stem, e.g. ``photo.jpg`` and
  ``photo.png``), or a drawn video ``<stem>_pose.mp4`` (``mp4v``; ``--video-format avi`` for MJPG).

An output that would replace one of the inputs (``--out`` = the input folder, or ``.`` beside the photo) is refused
before any work, and so is one whose path is a directory or a device; a symlink is written through.

Everything is written to a staging folder / temporary files and moved into place at the end, so an unreadable
video leaves no partial outputs; an unreadable image in a folder is skipped and named. Ctrl-C keeps the frames or
images done so far (``results_incomplete.json`` marks them). The run holds ``--out`` (``io_utils.exclusive_folder``):
a second run into it at the same time is refused. An image that the ``--boxes`` file does not know (neither its
file name nor an id) is skipped with a warning and counted in the summary; if no image is known, it is an error.
Video frames without detections simply have no persons.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CheckpointError, ConfigError, DataError
from . import _options as opt

logger = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".avi", ".mp4", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv")


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
    parser.add_argument("--smooth", action="store_true", help="videos: one-euro smoothing of the keypoints per track")
    parser.add_argument("--out", default="predictions", metavar="DIR", help="output folder (default: predictions)")
    parser.add_argument("--backend", choices=("torch", "onnxruntime"),
                        help="default: torch for --checkpoint, onnxruntime for --onnx")
    parser.add_argument("--threads", type=opt.thread_count, default=None,
                        help="intra-op threads (default: library default)")
    parser.add_argument("--det-thr", type=opt.float_range(0.0), default=0.3,
                        help="minimum box score (default 0.3)")
    parser.add_argument("--box-category", type=int, default=None, metavar="ID",
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


# ---------------------------------------------------------------------- sources


def _list_images(folder: Path) -> list[Path]:
    from ..deploy.crops import IMAGE_SUFFIXES

    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"folder {folder} contains no images ({', '.join(IMAGE_SUFFIXES)})")
    return files


def _open_video(source: str | int) -> Any:
    import cv2

    cap = cv2.VideoCapture(source)
    if not cap.isOpened():
        what = f"webcam {source}" if isinstance(source, int) else f"video {source}"
        raise DataError(f"cannot open {what} (missing, unreadable or unsupported codec)")
    return cap


class _Boxes:
    """Person boxes per image / frame from the chosen source.

    ``category_id``: the model's keypoint category: the results are written with it, and a ``--boxes`` file's boxes
    of other categories are ignored (``--box-category`` reads another one).
    """

    def __init__(self, args: argparse.Namespace, category_id: int = 1) -> None:
        self.mode = "boxes" if args.boxes else "full" if args.full_image else "detector" if args.detector else "hog"
        self.det_thr = args.det_thr
        self.category_id = category_id
        self.dets = None
        self.path = args.boxes
        self.detector: Any = None
        if self.mode == "boxes":
            from ..data.detections import read_detections

            wanted = category_id if args.box_category is None else args.box_category
            what = "the model's keypoint category" if args.box_category is None else "--box-category"
            self.dets = read_detections(args.boxes, score_thr=args.det_thr, category_id=wanted)
            other = self.dets.num_other_category
            if other and not len(self.dets) + self.dets.num_below_threshold:
                raise DataError(f"{args.boxes}: none of its {other} boxes is of category {wanted} ({what}); to use "
                                "boxes of another category, pass --box-category ID")
            if other:
                logger.warning("%s: %d boxes of categories other than %d (%s) are ignored", args.boxes, other, wanted,
                               what)
            self.names = {Path(n).name: i for i, n in self.dets.file_names.items()}
            self.digit_ids: dict[str, int] | None = None  # set by match_files for a list that names no files
        elif self.mode == "hog":
            from ..detect import HogDetector

            self.detector = HogDetector(score_thr=args.det_thr)
        elif self.mode == "detector":
            from ..detect.zoo import open_detector

            self.detector = open_detector(args.detector, layout=args.detector_layout, score_thr=args.det_thr,
                                          threads=args.threads)

    def match_files(self, files: list[Path]) -> None:
        """Map image files to a plain ``--boxes`` list's ids by the digits in their names, refusing or reporting
        mappings that may be wrong (:func:`~fasterpose.data.detections.ids_from_file_names`)."""
        if self.dets is not None and not self.dets.file_names:
            from ..data.detections import ids_from_file_names

            self.digit_ids = ids_from_file_names(files, set(self.dets.boxes), str(self.path))

    def image_id(self, path: Path, fallback: int) -> int | None:
        """Image id of a file: from the detection file (its file name, else the digits of the stem mapped by
        :meth:`match_files`), else ``fallback``.

        Returns ``None`` when a ``--boxes`` file does not know the image.
        """
        if self.dets is None:
            return fallback
        if self.dets.file_names:
            return self.names.get(path.name)
        if self.digit_ids is None:
            self.match_files([path])
        return self.digit_ids.get(path.name)

    def __call__(self, image: np.ndarray, image_id: int) -> np.ndarray:
        """``(M, 5)`` boxes with scores for one image (already filtered by ``--det-thr``)."""
        if self.mode == "boxes":
            from ..data.detections import match_detections

            return np.asarray(match_detections(self.dets, int(image_id)), dtype=np.float64).reshape(-1, 5)
        if self.mode == "full":
            return np.array([[0.0, 0.0, image.shape[1], image.shape[0], 1.0]])
        return self.detector(image)


# ---------------------------------------------------------------------- main loop


class _Run:
    """Per-frame prediction, drawing, results and timing."""

    def __init__(self, predictor: Any, boxes: _Boxes, args: argparse.Namespace) -> None:
        self.predictor = predictor
        self.boxes = boxes
        self.args = args
        self.results: list[dict[str, Any]] = []
        self.frames = 0
        self.persons = 0
        self.skipped_boxes = 0
        self.unreadable: list[str] = []
        self.missing = 0  # images the --boxes file does not know
        self.truncated: list[str] = []
        self.interrupted = False
        self.model_ms = 0.0
        self.pre_ms = 0.0
        self.post_ms = 0.0
        self.pipeline: Any = None  # videos: set by _run_video
        self.stage_ms = {"read": 0.0, "draw": 0.0, "write": 0.0}

    def process(self, image: np.ndarray, image_id: int, file_name: str, frame: int | None = None) -> np.ndarray:
        from ..deploy.predictor import clip_boxes
        from ..evaluation.coco import make_results
        from ..visualize import draw_poses

        boxes = None
        if self.pipeline is None or (self.pipeline.detector is None and self.pipeline.wants_detection()):
            boxes = self.boxes(image, image_id)
            if len(boxes):
                _, valid = clip_boxes(boxes[:, :4], image.shape)
                self.skipped_boxes += int((~valid).sum())
                boxes = boxes[valid]
        if self.pipeline is not None:
            people = self.pipeline(image, boxes)
            boxes = np.array([np.append(p["box"], p["box_score"]) for p in people]).reshape(-1, 5)
        else:
            people = self.predictor(image, boxes)
        t = self.predictor.last_timing
        self.model_ms += t["model_ms"]
        self.pre_ms += t["preprocess_ms"]
        self.post_ms += t["postprocess_ms"]
        self.frames += 1
        self.persons += len(people)
        if people:
            kp = np.stack([p["keypoints"] for p in people])
            if not np.isfinite(kp).all():
                raise CheckpointError(f"the model produced non-finite keypoints (NaN or inf) on {file_name}: its "
                                      "weights are probably damaged (a NaN in the checkpoint). Nothing was written; "
                                      "use another checkpoint or re-export the model")
            res = make_results([image_id] * len(people), kp, np.array([p["box_score"] for p in people]),
                               np.array([p["box"][2] * p["box"][3] for p in people]), rescore=False, nms=None,
                               category_id=self.boxes.category_id)
            for r, p in zip(res, people):
                r["bbox"] = [round(float(v), 2) for v in p["box"]]
                r["file_name"] = file_name
                if frame is not None:
                    r["frame"] = frame
                if "track_id" in p:
                    r["track_id"] = p["track_id"]
            self.results.extend(res)
        else:
            kp = np.zeros((0, self.predictor.keypoint_set.num_keypoints, 3))
        if self.args.no_draw and not self.args.show:
            return image
        t0 = time.perf_counter()
        drawn = draw_poses(image, kp, self.predictor.keypoint_set, kpt_thr=self.args.kpt_thr,
                           boxes=boxes[:, :4] if self.args.show_boxes else None,
                           box_scores=boxes[:, 4] if self.args.show_boxes else None,
                           labels=[f"#{p['track_id']}" for p in people] if self.pipeline is not None else None)
        self.stage_ms["draw"] += 1e3 * (time.perf_counter() - t0)
        return drawn


def _show(frame: np.ndarray) -> bool:
    """Show a frame; ``True`` when the user pressed q or Esc."""
    import cv2

    try:
        cv2.imshow("fasterpose", frame)
        return (cv2.waitKey(1) & 0xFF) in (ord("q"), 27)
    except cv2.error as e:
        raise DataError("this OpenCV build has no GUI (opencv-python-headless); drop --show, the drawn "
                        "frames are written to --out") from e


def _progress(total: int | None, desc: str) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="frame" if desc != "images" else "img", dynamic_ncols=True,
                disable=None, leave=False)


def _truncated(path: Path) -> bool:
    """Whether a JPEG or PNG file ends before its end marker (a partial download or copy). Other formats: False."""
    suffix = path.suffix.lower()
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64))
            tail = f.read()
    except OSError:
        return False
    if suffix in (".jpg", ".jpeg"):
        return b"\xff\xd9" not in tail  # EOI marker (some writers pad after it)
    if suffix == ".png":
        return b"IEND" not in tail
    return False


def drawn_image_names(files: list[Path]) -> dict[Path, str]:
    """Output file name of each input image: ``<stem>.jpg``, or ``<stem>_<ext>.jpg`` when two inputs share a stem
    (``photo.jpg`` and ``photo.png`` -> ``photo_jpg.jpg`` and ``photo_png.jpg``; a number when that is not enough,
    as for ``photo.JPG`` and ``photo.jpg``), so no drawing replaces another."""
    stems: dict[str, int] = {}
    for f in files:
        stems[f.stem] = stems.get(f.stem, 0) + 1
    names: dict[Path, str] = {}
    used: set[str] = set()  # compared without case: some file systems (macOS, Windows) do not tell case apart
    for f in files:
        base = f.stem if stems[f.stem] == 1 else f"{f.stem}_{f.suffix.lstrip('.').lower()}"
        name, n = f"{base}.jpg", 1
        while name.lower() in used:  # photo.JPG and photo.jpg: photo_jpg.jpg and photo_jpg_2.jpg
            n += 1
            name = f"{base}_{n}.jpg"
        used.add(name.lower())
        names[f] = name
    return names


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


def _draw_images(run: _Run, files: list[Path], stage: Path, args: argparse.Namespace, out_names: dict[Path, str],
                 written: list[Path], bar: Any) -> None:
    """Predict and draw each image into ``stage``, appending the drawings to ``written`` as they are made."""
    import cv2

    for index, path in enumerate(files):
        image_id = run.boxes.image_id(path, index)
        if image_id is None:
            logger.warning("%s has no entry in %s (neither its file name nor an id); skipped", path.name,
                           run.boxes.path)
            run.missing += 1
            if bar is not None:
                bar.update()
            continue
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            if len(files) == 1:
                raise DataError(f"cannot read image {path} (missing, unreadable or not an image); nothing was written")
            logger.warning("cannot read image %s (unreadable or not an image); skipped, the others are kept", path)
            run.unreadable.append(path.name)
            if bar is not None:
                bar.update()
            continue
        if _truncated(path):
            logger.warning("image %s is truncated (the file ends before the image does; the decoder filled the rest "
                           "with grey): its poses may be wrong", path)
            run.truncated.append(path.name)
        drawn = run.process(image, image_id, path.name)
        if not args.no_draw:
            target = stage / out_names[path]
            if not cv2.imwrite(str(target), drawn):  # OpenCV says only False: a full disk, a size limit, ...
                raise DataError(f"could not write the drawing of {path.name} into --out {stage.parent} (disk full, "
                                "file-size limit or no permission); free some space or choose another --out. Nothing "
                                "was written there")
            written.append(target)
        if args.show and _show(drawn):
            break
        if bar is not None:
            bar.update()


def _run_images(run: _Run, files: list[Path], stage: Path, args: argparse.Namespace) -> tuple[list[Path], int]:
    run.boxes.match_files(files)
    out_names = drawn_image_names(files)
    written: list[Path] = []
    bar = _progress(len(files), "images") if len(files) > 1 else None
    try:
        _draw_images(run, files, stage, args, out_names, written, bar)
    except KeyboardInterrupt:
        # Ctrl-C keeps what was done: the images so far are written, results.json is marked incomplete.
        run.interrupted = True
        logger.warning("interrupted after %d of %d images: keeping their drawings and results (results.json is marked "
                       "incomplete)", run.frames, len(files))
    if bar is not None:
        bar.close()
    missing = run.missing
    if run.interrupted:
        if not run.frames:
            raise KeyboardInterrupt  # nothing done yet: nothing to keep
        return written, missing
    if run.unreadable and len(run.unreadable) + missing == len(files):
        raise DataError(f"none of the {len(files)} images could be read; nothing was written")
    if missing == len(files):
        raise DataError(f"none of the {len(files)} images has an entry in {run.boxes.path}; is it the detection "
                        "file for these images? (matched by the file's images list or the digits in the file name)")
    return written, missing


def _run_video(run: _Run, source: str | int, stage: Path, args: argparse.Namespace) -> list[Path]:
    import cv2

    cap = _open_video(source)
    try:
        ok, first = cap.read()
        if not ok:
            raise DataError(f"video {source} has no readable frame (unreadable or unsupported codec); nothing was "
                            "written")
        fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
        fps = fps if 0 < fps < 1000 else 25.0
        h, w = first.shape[:2]
        stem = f"webcam{source}" if isinstance(source, int) else Path(source).stem
        name = Path(source).name if not isinstance(source, int) else f"webcam{source}"
        writer = target = None
        if not args.no_draw:
            suffix, fourcc = (".mp4", "mp4v") if args.video_format == "mp4" else (".avi", "MJPG")
            target = stage / f"{stem}_pose{suffix}"
            writer = cv2.VideoWriter(str(target), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
            if not writer.isOpened():
                raise DataError(f"OpenCV cannot write {fourcc} video {target.name}; try --video-format "
                                f"{'avi' if suffix == '.mp4' else 'mp4'}")
        total = None
        if not isinstance(source, int):
            total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or None
            if total and args.max_frames:
                total = min(total, args.max_frames)
        dets = run.boxes.dets
        if dets is not None and not isinstance(source, int):
            video_name = dets.meta.get("video")
            if dets.file_names and "frames" not in dets.meta:
                # a detection file for image files: its ids are not frame indices
                logger.warning("%s lists image files (%s) but the input is the video %s; its boxes are applied to "
                               "the frames whose index equals an image id, which is probably wrong. Use the video's "
                               "own detection file, --hog or --full-image", run.boxes.path,
                               ", ".join(sorted(Path(n).name for n in dets.file_names.values())[:3]), name)
                run.truncated.append(f"{Path(str(run.boxes.path)).name} is an image detection file, not {name}'s")
            elif isinstance(video_name, str) and Path(video_name).name != name:
                logger.warning("%s was written for the video %s, not %s", run.boxes.path, video_name, name)
        if run.boxes.dets is not None and "frames" in run.boxes.dets.meta and total:
            if int(run.boxes.dets.meta["frames"]) < total:
                logger.warning("%s describes %s frames but the video has %d; later frames have no boxes",
                               run.boxes.path, run.boxes.dets.meta["frames"], total)
        from ..video.frames import FrameReader, FrameWriter
        from ..video.pipeline import Pipeline

        run.pipeline = Pipeline(run.predictor, run.boxes.detector, det_every=args.det_every,
                                smoothing=True if args.smooth else None, fps=fps, kpt_thr=args.kpt_thr,
                                redetect_thr=args.redetect_thr)
        bar = _progress(total, "frames")
        reader = FrameReader(cap, first, args.max_frames)
        frame_writer = FrameWriter(writer) if writer is not None else None
        drawn_frames = 0
        try:
            for index, frame in reader:
                drawn = run.process(frame, index, name, frame=index)
                if frame_writer is not None:
                    frame_writer.write(drawn)
                    drawn_frames += 1
                bar.update()
                if args.show and _show(drawn):
                    break
        except KeyboardInterrupt:
            # Ctrl-C keeps what was done: the frames so far are written (results marked incomplete for a file).
            if not isinstance(source, int):
                run.interrupted = True
                logger.warning("interrupted at frame %d: keeping the results and the drawn video of the frames "
                               "before it (results.json is marked incomplete)", run.frames)
            else:
                logger.info("stopped by the user")  # webcam: Ctrl-C ends the recording normally
        finally:
            reader.close()
            run.stage_ms["read"] = reader.wait_ms
            bar.close()
            if frame_writer is not None:
                frame_writer.close()
                run.stage_ms["write"] = frame_writer.wait_ms
            if writer is not None:
                writer.release()
    finally:
        cap.release()
    if run.frames == 0:
        raise DataError(f"no frame of {source} could be decoded")
    if target is not None:
        _check_written_video(target, drawn_frames)
    expected = total if not isinstance(source, int) else None
    if expected and not run.interrupted and run.frames < expected and not (args.show and run.frames):
        logger.warning("video %s: decoded %d of the %d frames its header announces (truncated or damaged file); "
                       "results cover the decoded frames only", source, run.frames, expected)
        run.truncated.append(f"{Path(str(source)).name} ({run.frames} of {expected} frames)")
    return [target] if target is not None else []


def _check_written_video(path: Path, frames: int) -> None:
    """OpenCV's video writer drops frames it cannot write (a full disk, a file-size limit) with only a log line:
    read the finished file's header back and refuse a video that is unreadable or holds fewer frames."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        found = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap.isOpened() else -1
    finally:
        cap.release()
    if found < 0 or 0 < found < frames:
        raise DataError(f"could not write the drawn video {path.name} ({'unreadable' if found < 0 else found} of "
                        f"{frames} frames written: disk full, file-size limit or no permission); free some space, "
                        "choose another --out, or pass --no-draw. Nothing was written there")


def run(args: argparse.Namespace) -> int:
    from ..cpu import check_threads
    from ..deploy.predictor import Predictor
    from ..io_utils import exclusive_folder, remove_stale_folders

    src = args.input
    webcam = src.isdigit() and not Path(src).exists()
    if not webcam and not (Path(src).is_file() or Path(src).is_dir()):  # a FIFO or device would block the reader
        from ..io_utils import not_a_file

        raise DataError(f"input {src} {not_a_file(src)} (give an image, a folder, a video file or a webcam index)")
    if args.max_frames is not None and args.max_frames < 1:
        raise DataError(f"--max-frames must be >= 1, got {args.max_frames}")
    check_threads(args.threads, "--threads")
    if not 0.0 <= args.det_thr < math.inf:  # also false for NaN
        raise ConfigError(f"--det-thr must be a finite number >= 0 (a detection file's scores lie in [0, 1], HOG's "
                          f"are SVM margins), got {args.det_thr}")
    if not 0.0 <= args.kpt_thr <= 1.0:
        raise ConfigError(f"--kpt-thr must be in [0, 1] (keypoint scores are heatmap peaks), got {args.kpt_thr}")
    if args.det_every < 1:
        raise DataError(f"--det-every must be >= 1 (1 = detect on every frame), got {args.det_every}")
    if not 0.0 <= args.redetect_thr <= 1.0:  # also false for NaN
        raise ConfigError(f"--redetect-thr must be in [0, 1] (a mean keypoint score; 0 = never early), got "
                          f"{args.redetect_thr}")
    if args.detector_layout and not args.detector:
        raise DataError("--detector-layout describes a --detector FILE.onnx; give the file too")
    model = args.checkpoint or args.onnx
    predictor = Predictor(model, backend=args.backend or ("onnxruntime" if args.onnx else "torch"),
                          threads=args.threads, flip_test=False if args.no_flip else None)
    _warn_if_not_person(predictor.keypoint_set, args)  # before a detector is downloaded
    boxes = _Boxes(args, 1 if predictor.spec.category_id is None else predictor.spec.category_id)
    logger.info("%r", predictor)
    # One warm-up call so that the timing summary does not include one-off initialisation (oneDNN / ORT arenas).
    h, w = predictor.input_size
    predictor(np.zeros((h, w, 3), np.uint8), [[0, 0, w, h]])
    out = Path(args.out)
    path = Path(src)
    if webcam:
        kind, inputs, names = "webcam", [], [f"webcam{src}_pose.{args.video_format}"]
    elif path.is_dir():
        kind, inputs = "images", _list_images(path)
        names = list(drawn_image_names(inputs).values())
    elif path.suffix.lower() in VIDEO_SUFFIXES:
        kind, inputs, names = "video", [path], [f"{path.stem}_pose.{args.video_format}"]
    else:
        kind, inputs = "images", [path]
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
            return _predict(args, src, kind, inputs, out, boxes, predictor)
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


def _predict(args: argparse.Namespace, src: str, kind: str, inputs: list[Path], out: Path, boxes: _Boxes,
             predictor: Any) -> int:
    from ..evaluation.coco import write_results
    from ..io_utils import temp_folder

    run_ = _Run(predictor, boxes, args)
    missing = 0
    t0 = time.perf_counter()
    # Outputs are produced in a staging folder inside --out and moved into place only when everything succeeded.
    with temp_folder(".predict-", out) as stage_dir:
        stage = Path(stage_dir)
        if kind == "images":
            written, missing = _run_images(run_, inputs, stage, args)
        else:
            written = _run_video(run_, int(src) if kind == "webcam" else str(inputs[0]), stage, args)
        wall = time.perf_counter() - t0
        results_path = out / "results.json"
        from ..io_utils import atomic_write_json, writable_target

        # Everything is written into the staging folder first (the only step that needs disk space); then renames,
        # which need none, put the run into place: a disk that fills up cannot leave new images beside old results.
        write_results(stage / "results.json", run_.results)
        atomic_write_json(stage / "keypoint_set.json", predictor.keypoint_set.to_dict())
        marker = results_path.with_name("results_incomplete.json")
        if run_.interrupted:
            atomic_write_json(stage / marker.name, {"incomplete": True, "frames" if kind != "images" else "images":
                                                    run_.frames, "note": "interrupted by the user"})
            written.append(stage / marker.name)
        for f in written:  # the staging folder is inside --out: same file system, atomic renames
            os.replace(f, writable_target(out / f.name))
        if not run_.interrupted and marker.is_file():
            marker.unlink()  # this run's results.json is complete
        os.replace(stage / "keypoint_set.json", writable_target(out / "keypoint_set.json"))
        os.replace(stage / "results.json", writable_target(results_path))
    if args.show:
        import cv2

        cv2.destroyAllWindows()
    n = max(run_.frames, 1)
    unit = "images" if kind == "images" else "frames"
    print(f"{run_.frames} {unit}, {run_.persons} persons ({predictor.backend}, {predictor.spec.model_name} "
          f"{predictor.input_size[0]}x{predictor.input_size[1]}, flip test {'on' if predictor.flip_test else 'off'})")
    print(f"ms per {unit[:-1]}: total {1e3 * wall / n:.1f} (read, boxes, crop, model, decode, draw, write), "
          f"model {run_.model_ms / n:.1f}, crop+normalize {run_.pre_ms / n:.1f}, "
          f"decode+map back {run_.post_ms / n:.1f}")
    if run_.pipeline is not None:
        s = run_.pipeline.summary()
        print(f"ms per frame by stage: read (waiting) {run_.stage_ms['read'] / n:.1f}, detect {s['detect_ms']:.1f} "
              f"({s['detection_frames']} of {s['frames']} frames, --det-every {run_.pipeline.det_every}), pose "
              f"{s['pose_ms']:.1f} (model {s['model_ms']:.1f}), track {s['track_ms']:.1f}, smooth "
              f"{s['smooth_ms']:.1f}, draw {run_.stage_ms['draw'] / n:.1f}, write (waiting) "
              f"{run_.stage_ms['write'] / n:.1f}; "
              f"{len(set(r['track_id'] for r in run_.results))} tracks")
    if missing:
        print(f"{missing} images skipped: no entry in {args.boxes}")
    if run_.unreadable:
        print(f"{len(run_.unreadable)} images could not be read and were skipped: {', '.join(run_.unreadable)}")
    if run_.truncated:
        print(f"warning: suspect input (results may be wrong there): {', '.join(run_.truncated)}")
    if run_.interrupted:
        print(f"interrupted: kept the {run_.frames} {unit} processed before Ctrl-C (see results_incomplete.json)")
    if run_.skipped_boxes:
        print(f"{run_.skipped_boxes} boxes skipped: less than one pixel of them lies inside their image")
    drawn = f" and {len(written)} drawn {'video' if unit == 'frames' else 'images'} to {out}" if written else ""
    print(f"wrote {results_path} (keypoint names in keypoint_set.json){drawn}")
    return 0
