"""Where a frame's person boxes come from: one small interface, :class:`BoxSource`.

A box source is called as ``source(frame, key)`` and returns ``(M, 5)`` float64 boxes ``(x, y, w, h, score)`` in
the frame's pixels. ``key`` says which frame it is: the frame index of a video, the image id of a photo (a
detection file needs it; a detector ignores it). The sources:

* :class:`DetectorBoxes`: any detector ``image -> (M, 5)`` (:class:`~fasterpose.detect.OnnxDetector`,
  :class:`~fasterpose.detect.HogDetector`, a function of yours);
* :class:`DetectionFileBoxes`: a detection json (:mod:`fasterpose.data.detections`), matched by frame index,
  image id or file name;
* :class:`FullImageBoxes`: one box, the whole frame;
* :class:`GivenBoxes`: boxes given in Python, a dict ``key -> boxes``.

The last poses, the fifth source of boxes, are the :class:`~fasterpose.video.pipeline.Pipeline`'s tracking: it asks
its box source only on detection frames. :func:`open_box_source` builds the source ``fasterpose predict``'s options
name.
"""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

# detect -> data, one floor: a detection file's reader and its checks live with the other data readers
from ..data.detections import ids_from_file_names, listed_image_id, match_detections, read_detections
from ..errors import DataError
from . import hog

__all__ = ["BoxSource", "DetectionFileBoxes", "DetectorBoxes", "FullImageBoxes", "GivenBoxes", "as_box_source",
           "open_box_source"]

logger = logging.getLogger(__name__)

Key = int | str


def _boxes(value: Any) -> np.ndarray:
    """``(M, 5)`` float64 boxes from ``(M, 4)`` (score 1) or ``(M, 5)`` values."""
    boxes = np.asarray(value, np.float64)
    if boxes.size == 0:
        return np.zeros((0, 5))
    boxes = boxes.reshape(-1, boxes.shape[-1])
    if boxes.shape[1] == 4:
        boxes = np.concatenate([boxes, np.ones((len(boxes), 1))], axis=1)
    if boxes.shape[1] != 5:
        raise DataError(f"person boxes must be (M, 4) xywh or (M, 5) xywh+score, got shape {boxes.shape}")
    return boxes


def _takes_roi(method: Any) -> bool:
    """Whether ``method`` is a callable with a ``roi`` parameter."""
    if not callable(method):
        return False
    try:
        return "roi" in inspect.signature(method).parameters
    except (TypeError, ValueError):  # a builtin without a signature
        return False


class BoxSource:
    """Person boxes of one frame: ``source(frame, key) -> (M, 5)`` ``(x, y, w, h, score)``."""

    name = "boxes"
    #: whether :meth:`boxes_near` searches only around the boxes it is given (else it is the full-frame call)
    has_roi = False

    def __call__(self, frame: np.ndarray, key: Key) -> np.ndarray:
        raise NotImplementedError

    def boxes_near(self, frame: np.ndarray, key: Key, roi: np.ndarray) -> np.ndarray:
        """The boxes of a frame where the ``(R, 4+)`` xywh ``roi`` boxes (the tracked people) are, for a source that
        can search a region of interest only (cheaper); by default the full-frame call, ``roi`` ignored: a
        detection file, the whole image and given boxes cost nothing to ask in full, and a source that does not
        know regions must not miss anyone."""
        return self(frame, key)


class DetectorBoxes(BoxSource):
    """A person detector ``image -> (M, 5)`` boxes; the key is not needed."""

    def __init__(self, detector: Callable[[np.ndarray], np.ndarray], name: str | None = None) -> None:
        self.detector = detector
        self.name = name or type(detector).__name__
        # a detector with ``detect(image, roi=...)`` (:meth:`~fasterpose.detect.hog.HogDetector.detect`) can search
        # around given boxes only; the ONNX detectors see the whole (letterboxed) frame at one cost anyway
        self.has_roi = _takes_roi(getattr(detector, "detect", None))

    def __call__(self, frame: np.ndarray, key: Key = 0) -> np.ndarray:
        return _boxes(self.detector(frame))

    def boxes_near(self, frame: np.ndarray, key: Key, roi: np.ndarray) -> np.ndarray:
        """The detector's ``detect(frame, roi=roi)`` where it has one, else its full-frame call."""
        if not self.has_roi:
            return self(frame, key)
        return _boxes(self.detector.detect(frame, roi=np.asarray(roi, np.float64)))

    def __repr__(self) -> str:
        return f"DetectorBoxes({self.detector!r})"


class FullImageBoxes(BoxSource):
    """One box: the whole frame, score 1 (a photo that shows one person)."""

    name = "full image"

    def __call__(self, frame: np.ndarray, key: Key = 0) -> np.ndarray:
        return np.array([[0.0, 0.0, frame.shape[1], frame.shape[0], 1.0]])


class GivenBoxes(BoxSource):
    """Boxes given in Python: ``{key: (M, 4 or 5) boxes}``; a key without an entry has no persons."""

    name = "given boxes"

    def __init__(self, boxes: Mapping[Key, Any]) -> None:
        self.boxes = {k: _boxes(v) for k, v in boxes.items()}

    def __call__(self, frame: np.ndarray, key: Key = 0) -> np.ndarray:
        return self.boxes.get(key, np.zeros((0, 5))).copy()


class DetectionFileBoxes(BoxSource):
    """The boxes of a detection json, by frame index or image id (:meth:`image_id` finds the id of an image file).

    Args:
        path: the json (COCO detection results, or the ``images`` / ``video`` wrappers).
        score_thr: least box score kept.
        category_id: the category whose boxes are read (the model's keypoint category); others are counted and
            ignored.
        chosen: how the category was chosen, for the messages (``"--box-category"``).
    """

    name = "detection file"

    def __init__(self, path: str | os.PathLike, score_thr: float = 0.0, category_id: int = 1,
                 chosen: str = "the model's keypoint category") -> None:
        self.path = Path(path)
        self.dets = read_detections(path, score_thr=score_thr, category_id=category_id)
        other = self.dets.num_other_category
        if other and not len(self.dets) + self.dets.num_below_threshold:
            raise DataError(f"{path}: none of its {other} boxes is of category {category_id} ({chosen}); to use "
                            "boxes of another category, pass --box-category ID")
        if other:
            logger.warning("%s: %d boxes of categories other than %d (%s) are ignored", path, other, category_id,
                           chosen)
        self._digit_ids: dict[str, int] | None = None

    @property
    def names_files(self) -> bool:
        """Whether the file lists its images by name (the ``images`` wrapper)."""
        return bool(self.dets.file_names)

    def match_files(self, files: list[Path]) -> None:
        """Map image files to a plain list's ids by the digits in their names, refusing or reporting mappings that
        may be wrong (:func:`~fasterpose.data.detections.ids_from_file_names`)."""
        if not self.names_files:
            self._digit_ids = ids_from_file_names(files, set(self.dets.boxes), str(self.path))

    def image_id(self, path: Path) -> int | None:
        """The id of an image file: by the file's ``images`` list, else by the digits of its name
        (:meth:`match_files`); ``None`` when the file does not know the image.

        Listed names are matched by :func:`~fasterpose.data.detections.listed_image_id`: by the end of the image's
        path, else by its base name, refusing a base name that two listed images share.
        """
        if not self.names_files:
            if self._digit_ids is None:
                self.match_files([path])
            return self._digit_ids.get(path.name)
        return listed_image_id(self.dets.file_names, Path(path).absolute(), str(self.path))

    def check_video(self, name: str, frames: int | None) -> str | None:
        """Warn when this file was written for another video or for image files, or describes fewer frames than the
        video has; returns a note for the summary when its boxes are probably wrong there."""
        video = self.dets.meta.get("video")
        if self.names_files and "frames" not in self.dets.meta:  # a file for image files: its ids are not frames
            listed = ", ".join(sorted(Path(n).name for n in self.dets.file_names.values())[:3])
            logger.warning("%s lists image files (%s) but the input is the video %s; its boxes are applied to the "
                           "frames whose index equals an image id, which is probably wrong. Use the video's own "
                           "detection file, --hog or --full-image", self.path, listed, name)
            return f"{self.path.name} is an image detection file, not {name}'s"
        if isinstance(video, str) and Path(video).name != name:
            logger.warning("%s was written for the video %s, not %s", self.path, video, name)
        if "frames" in self.dets.meta and frames and int(self.dets.meta["frames"]) < frames:
            logger.warning("%s describes %s frames but the video has %d; later frames have no boxes", self.path,
                           self.dets.meta["frames"], frames)
        return None

    def __call__(self, frame: np.ndarray, key: Key = 0) -> np.ndarray:
        return _boxes(match_detections(self.dets, int(key)))


def as_box_source(source: BoxSource | Callable[[np.ndarray], np.ndarray] | None) -> BoxSource | None:
    """A :class:`BoxSource` as it is; a plain detector ``image -> boxes`` wrapped in :class:`DetectorBoxes`."""
    if source is None or isinstance(source, BoxSource):
        return source
    return DetectorBoxes(source)


def open_box_source(boxes: str | None = None, full_image: bool = False, detector: str | None = None,
                    detector_layout: str | None = None, score_thr: float = 0.3, category_id: int = 1,
                    box_category: int | None = None, threads: int | None = None) -> BoxSource:
    """The box source that ``fasterpose predict``'s options name: ``--boxes``, ``--full-image``, ``--detector``,
    else OpenCV's HOG people detector (refused with what to do instead where OpenCV has none)."""
    if boxes:
        chosen = "the model's keypoint category" if box_category is None else "--box-category"
        return DetectionFileBoxes(boxes, score_thr, category_id if box_category is None else box_category, chosen)
    if full_image:
        return FullImageBoxes()
    if detector:
        from .zoo import open_detector

        return DetectorBoxes(open_detector(detector, layout=detector_layout, score_thr=score_thr, threads=threads),
                             name=f"detector {detector}")
    # HOG, the default: where this OpenCV has none (OpenCV 5), HogDetector raises HogUnavailableError, which names
    # the other box sources
    return DetectorBoxes(hog.HogDetector(score_thr=score_thr), name="HOG")
