"""Poses for a folder of images, a video or a webcam: each frame through the one
:class:`~fasterpose.video.pipeline.Pipeline`, the results collected, drawings written into a staging folder.

``fasterpose predict`` is this module's command line: it parses the options, opens the model and the box source,
stages the outputs and prints the summary. :class:`FrameRun` holds one run's results and counts; :func:`run_images`
and :func:`run_video` feed it the frames, through :func:`frame_loop`, the one place where Ctrl-C (and SIGTERM, which
the command line turns into ``KeyboardInterrupt``) ends a run and keeps what was done.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CheckpointError, DataError
from .media import VideoInput, VideoOutput, drawn_image_names, fit_name, truncated

__all__ = ["FrameRun", "frame_loop", "run_images", "run_video"]

logger = logging.getLogger(__name__)


class FrameRun:
    """One run's results and counts: each frame or image goes through the :class:`~fasterpose.video.pipeline.Pipeline`
    (its box source, pose model, tracking for videos), then into COCO keypoint results and the drawing.

    Args:
        predictor: the :class:`~fasterpose.deploy.predictor.Predictor` (its timing is summed here).
        pipeline: the :class:`~fasterpose.video.pipeline.Pipeline` (``tracking=False`` for photos).
        options: ``no_draw``, ``show``, ``show_boxes``, ``kpt_thr``, ``max_frames``, ``video_format`` (the predict
            command's options of those names).
        category_id: the results' ``category_id``.
    """

    def __init__(self, predictor: Any, pipeline: Any, options: Any, category_id: int) -> None:
        self.predictor, self.pipeline, self.options, self.category_id = predictor, pipeline, options, category_id
        self.written: list[Path] = []
        self.wall = 0.0
        self.results: list[dict[str, Any]] = []
        self.frames = self.persons = self.missing = 0  # missing: images the --boxes file does not know
        self.unreadable: list[str] = []
        self.truncated: list[str] = []
        self.interrupted = False
        self.model_ms = self.pre_ms = self.post_ms = 0.0
        self.stage_ms = {"read": 0.0, "draw": 0.0, "write": 0.0}

    def process(self, image: np.ndarray, image_id: int, file_name: str, frame: int | None = None) -> np.ndarray:
        """Poses of one image or frame into the results; returns the drawing (the image itself with ``no_draw``)."""
        from ..evaluation.coco import make_results
        from ..visualize import draw_poses

        people = self.pipeline(image, key=image_id)
        boxes = np.array([np.append(p["box"], p["box_score"]) for p in people]).reshape(-1, 5)
        t = self.predictor.last_timing
        self.model_ms += t["model_ms"]
        self.pre_ms += t["preprocess_ms"]
        self.post_ms += t["postprocess_ms"]
        self.frames += 1
        self.persons += len(people)
        kp = np.stack([p["keypoints"] for p in people]) if people else np.zeros((0, self.predictor.keypoint_set
                                                                                .num_keypoints, 3))
        if not np.isfinite(kp).all():
            raise CheckpointError(f"the model produced non-finite keypoints (NaN or inf) on {file_name}: its weights "
                                  "are probably damaged (a NaN in the checkpoint). Nothing was written; use another "
                                  "checkpoint or re-export the model")
        if people:
            res = make_results([image_id] * len(people), kp, boxes[:, 4], boxes[:, 2] * boxes[:, 3], rescore=False,
                               nms=None, category_id=self.category_id)
            for r, p in zip(res, people):
                r.update(bbox=[round(float(v), 2) for v in p["box"]], file_name=file_name)
                r.update({} if frame is None else {"frame": frame})
                r.update({"track_id": p["track_id"]} if "track_id" in p else {})
            self.results.extend(res)
        if self.options.no_draw and not self.options.show:
            return image
        t0 = time.perf_counter()
        show = self.options.show_boxes
        drawn = draw_poses(image, kp, self.predictor.keypoint_set, kpt_thr=self.options.kpt_thr,
                           boxes=boxes[:, :4] if show else None, box_scores=boxes[:, 4] if show else None,
                           labels=[f"#{p['track_id']}" for p in people] if self.pipeline.tracking else None)
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


def _progress(total: int | None, desc: str, enabled: bool = True) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="frame" if desc != "images" else "img", dynamic_ncols=True,
                disable=None if enabled else True, leave=False)


def _images(run: FrameRun, files: list[Path], source: Any, bar: Any) -> Iterator[tuple[np.ndarray, int, str, None]]:
    """``(image, image_id, file name, None)`` of each image that can be read and whose boxes are known; the others
    are skipped, named and counted (a lone unreadable image is refused)."""
    import cv2

    for index, path in enumerate(files):
        image_id = source.image_id(path) if hasattr(source, "image_id") else index
        image = None if image_id is None else cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image_id is None:
            logger.warning("%s has no entry in %s (neither its file name nor an id); skipped", path.name, source.path)
            run.missing += 1
        elif image is None and len(files) == 1:
            raise DataError(f"cannot read image {path} (missing, unreadable or not an image); nothing was written")
        elif image is None:
            logger.warning("cannot read image %s (unreadable or not an image); skipped, the others are kept", path)
            run.unreadable.append(path.name)
        else:
            if truncated(path):
                logger.warning("image %s is truncated (the file ends before the image does; the decoder filled the "
                               "rest with grey): its poses may be wrong", path)
                run.truncated.append(path.name)
            yield image, image_id, path.name, None
            continue
        bar.update()


def frame_loop(run: FrameRun, frames: Iterator[tuple], write: Any, bar: Any, webcam: bool) -> None:
    """The one loop over images and frames: predict, draw, write. Ctrl-C (and SIGTERM, which the CLI turns into
    ``KeyboardInterrupt``) ends it here and only here: what was done is kept (a webcam's recording simply ends)."""
    try:
        for image, image_id, name, frame in frames:
            drawn = run.process(image, image_id, name, frame)
            write(drawn, name)
            bar.update()
            if run.options.show and _show(drawn):
                break
    except KeyboardInterrupt:
        if not run.frames:
            raise  # nothing done yet: nothing to keep
        run.interrupted = not webcam
        logger.warning("interrupted after %d %s: keeping their results%s", run.frames,
                       "frames" if run.pipeline.tracking else "images", " (results.json is marked incomplete)"
                       if run.interrupted else "")
    finally:
        bar.close()


def run_images(run: FrameRun, files: list[Path], source: Any, stage: Path) -> list[Path]:
    """Predict each image (a photo: a one-frame video without tracking) and write its drawing into ``stage``.

    Returns:
        The drawings written.

    Raises:
        DataError: no image could be read, or none is known to the detection file; a drawing cannot be written.
    """
    import cv2

    if hasattr(source, "match_files"):
        source.match_files(files)
    names, by_name, written = drawn_image_names(files), {p.name: p for p in files}, []

    def write(drawn: np.ndarray, name: str) -> None:
        if run.options.no_draw:
            return
        target = stage / names[by_name[name]]
        if not cv2.imwrite(str(target), drawn):  # OpenCV says only False: a full disk, a size limit, ...
            raise DataError(f"could not write the drawing of {name} into --out {stage.parent} (disk full, file-size "
                            "limit or no permission); free some space or choose another --out. Nothing was written "
                            "there")
        written.append(target)

    bar = _progress(len(files), "images", len(files) > 1)
    frame_loop(run, _images(run, files, source, bar), write, bar, webcam=False)
    if not run.interrupted and run.unreadable and len(run.unreadable) + run.missing == len(files):
        raise DataError(f"none of the {len(files)} images could be read; nothing was written")
    if not run.interrupted and run.missing == len(files):
        raise DataError(f"none of the {len(files)} images has an entry in {source.path}; is it the detection "
                        "file for these images? (matched by the file's images list or the digits in the file name)")
    return written


def run_video(run: FrameRun, src: str | int, source: Any, stage: Path) -> list[Path]:
    """Predict each frame of a video file or webcam (with tracking) and write the drawn video into ``stage``.

    Returns:
        The drawn video, if one was written.

    Raises:
        DataError: the video cannot be opened or decoded, or the drawn video could not be written whole.
    """
    options = run.options
    video = VideoInput(src, options.max_frames)
    output = None
    try:
        if not options.no_draw:
            output = VideoOutput(stage / fit_name(f"{video.stem}_pose", f".{options.video_format}"), video.fps,
                                 video.size, options.video_format)
        if hasattr(source, "check_video") and not video.webcam:
            run.truncated += [note] if (note := source.check_video(video.name, video.total)) else []
        run.pipeline.fps = video.fps  # the smoother's time step

        def write(drawn: np.ndarray, name: str) -> None:
            if output is not None:
                output.write(drawn)

        frames = ((frame, index, video.name, index) for index, frame in video)
        frame_loop(run, frames, write, _progress(video.total, "frames"), video.webcam)
    finally:
        run.pipeline.close()  # the detector's thread, with --det-lag
        video.close()
        run.stage_ms["read"] = video.reader.wait_ms
        if output is not None:
            output.close()
            run.stage_ms["write"] = output.thread.wait_ms
    if output is not None:
        output.check()
    if video.total and not run.interrupted and run.frames < video.total and not (options.show and run.frames):
        logger.warning("video %s: decoded %d of the %d frames its header announces (truncated or damaged file); "
                       "results cover the decoded frames only", src, run.frames, video.total)
        run.truncated.append(f"{video.name} ({run.frames} of {video.total} frames)")
    return [output.path] if output is not None else []
