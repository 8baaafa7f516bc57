"""Person crops from unlabeled images, folders and videos, for distillation (no keypoint labels needed).

Each source is an image file, a folder of images, or a video file (every ``frame_step``-th frame). Person boxes come
from a detection json (:mod:`fasterpose.data.detections`: images matched by file name or image id, video frames by
frame index) or are the whole image. Crops are cut with the same :func:`fasterpose.geometry.crop_person` as
evaluation and inference, so a distilled model sees exactly what it will see at test time. This module imports no
torch.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..geometry import box_to_center_scale, crop_person
from ..io_utils import check_input_file
from .images import VIDEO_SUFFIXES, list_images

__all__ = ["person_crops"]

logger = logging.getLogger(__name__)


def _frames(source: Path, frame_step: int) -> Iterator[tuple[str, int | None, np.ndarray]]:
    """``(name, frame index or None, BGR image)`` of every image of a source."""
    import cv2

    if source.is_dir():
        files = list_images(source)[0]
    elif source.suffix.lower() in VIDEO_SUFFIXES:
        cap = cv2.VideoCapture(str(source))
        if not cap.isOpened():
            raise DataError(f"cannot open video {source} (unreadable or unsupported codec)")
        index = 0
        try:
            while True:
                ok, frame = cap.read()
                if not ok:
                    break
                if index % frame_step == 0:
                    yield source.name, index, frame
                index += 1
        finally:
            cap.release()
        return
    else:
        files = [source]
    for path in files:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            logger.warning("skipped %s: not a readable image", path)
            continue
        yield str(path), None, image


def person_crops(sources: Sequence[str | os.PathLike], input_size: tuple[int, int], *, boxes: str | os.PathLike |
                 None = None, det_thr: float = 0.3, udp: bool = False, frame_step: int = 1,
                 max_crops: int | None = None, min_box_side: float = 8.0) -> tuple[np.ndarray, dict[str, int]]:
    """Person crops ``(N, H, W, 3)`` BGR uint8 from images, folders and videos.

    Args:
        sources: image files, folders of images, video files.
        input_size: crop ``(H, W)`` (the model input).
        boxes: a detection json; ``None``: one box = the whole image.
        det_thr: minimum detection score.
        udp: UDP crop transform (the model's ``codec["unbiased"]``).
        frame_step: take every ``frame_step``-th video frame.
        max_crops: stop after this many crops.
        min_box_side: boxes smaller than this (pixels) are skipped.

    Returns:
        ``crops`` and counts ``{"images", "crops", "images_without_boxes"}``.

    Raises:
        DataError: a source is missing, no crop at all was found, or the detection file is malformed.
    """
    from .detections import match_detections, read_detections

    if frame_step < 1:
        raise DataError(f"frame_step must be >= 1, got {frame_step}")
    dets = read_detections(boxes, score_thr=det_thr) if boxes is not None else None
    h, w = input_size
    crops: list[np.ndarray] = []
    counts = {"images": 0, "crops": 0, "images_without_boxes": 0}
    for source in (Path(s) for s in sources):
        if not source.is_dir():  # a FIFO would block the read for ever: refused with the reason
            check_input_file(source, "input (images, folders of images or video files)")
        for name, frame, image in _frames(source, frame_step):
            counts["images"] += 1
            if dets is None:
                found = np.array([[0.0, 0.0, image.shape[1], image.shape[0]]])
            else:
                found = match_detections(dets, frame if frame is not None else name)[:, :4]
                found = found[(found[:, 2] >= min_box_side) & (found[:, 3] >= min_box_side)]
            if len(found) == 0:
                counts["images_without_boxes"] += 1
                continue
            centers, scales = box_to_center_scale(found, w / h)
            for center, scale in zip(centers, scales):
                crops.append(crop_person(image, center, scale, (h, w), udp=udp)[0])
                if max_crops is not None and len(crops) >= max_crops:
                    counts["crops"] = len(crops)
                    return np.stack(crops), counts
    if not crops:
        where = f"the boxes of {boxes} (score >= {det_thr})" if boxes is not None else "the inputs"
        raise DataError(f"no person crop found in {where}: {counts['images']} image(s) read; check that the "
                        "detection file names these images (file names or image ids; frame indices for a video)")
    counts["crops"] = len(crops)
    return np.stack(crops), counts
