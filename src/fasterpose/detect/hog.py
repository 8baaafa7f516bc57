"""OpenCV's HOG people detector (Dalal & Triggs): weak but needs nothing; the fallback when no detector is given.

The detector slides a 64x128 window, in which the training persons stood about 96 pixels tall, over an image
pyramid. Its cost is the number of pyramid pixels times the windows per pixel, so the settings that matter are the
sizes of the people to find (they fix the first scale, upscaling or shrinking the frame, and the number of levels),
the pyramid step (``scale``: levels cost ``1 / (1 - 1/scale^2)`` times the first one, 10.8x at 1.05 and 5.8x at
1.1), the window stride, and where to look (a region of interest around the tracked people). The defaults and their
measured recall and cost are in docs/choices.md and docs/results.md.

OpenCV 5 removed ``cv2.HOGDescriptor``: :func:`hog_available` says whether this OpenCV has it, and
:class:`HogDetector` raises :class:`HogUnavailableError` (with the alternatives) where it has not.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import cv2
import numpy as np

from ..errors import ConfigError, FasterPoseError
from .boxes import nms, xywh_to_xyxy

WINDOW = (64, 128)  # (width, height) of the default people detector's window
# The person inside the window: the training crops (INRIA) put a ~96-pixel-tall person in the middle of the
# 64x128 window; measured on the synthetic clip, the truth box is the window's central 0.65 x 0.77 (median).
# Boxes are returned as this inner box, so that they compare with other detectors' (tight) boxes and the pose
# model's padding applies as it does to those.
PERSON_IN_WINDOW = (12 / 64, 16 / 128, 40 / 64, 96 / 128)  # x offset, y offset, width, height (window fractions)
PERSON_HEIGHT = WINDOW[1] * PERSON_IN_WINDOW[3]  # 96 pixels: the smallest person found at a pyramid level


class HogUnavailableError(FasterPoseError, RuntimeError):
    """This OpenCV has no HOG people detector (OpenCV >= 5 removed ``cv2.HOGDescriptor``)."""


def hog_available() -> bool:
    """Whether this OpenCV has the HOG people detector (``cv2.HOGDescriptor``; OpenCV 5 removed it)."""
    return hasattr(cv2, "HOGDescriptor") and hasattr(cv2, "HOGDescriptor_getDefaultPeopleDetector")


def _require_hog() -> None:
    if not hog_available():
        raise HogUnavailableError(
            f"this OpenCV ({cv2.__version__}) has no HOG people detector (OpenCV 5 removed cv2.HOGDescriptor); "
            "give person boxes another way: --detector yolox_tiny_humanart (a published detector, downloaded "
            "once), --detector FILE.onnx (your own YOLOX, RTMDet or Ultralytics export), --boxes FILE (a "
            "detections file) or --full-image (one box = the whole image); or install 'opencv-python-headless<5'")


@functools.lru_cache(maxsize=8)
def _hog(nlevels: int) -> Any:
    """One descriptor per pyramid depth and process (building it and loading the SVM costs more than a small
    image's detection). Its arguments are OpenCV's defaults but for ``nlevels``, the most pyramid levels."""
    hog = cv2.HOGDescriptor(WINDOW, (16, 16), (8, 8), (8, 8), 9, 1, -1.0, 0, 0.2, False, int(nlevels))
    hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
    return hog


def _person_boxes(rects: Any, weights: Any, factor: float, offset: tuple[float, float], inner: bool = True
                  ) -> np.ndarray:
    """HOG windows of a ``factor``-scaled crop at ``offset`` -> ``(M, 5)`` person boxes (the windows themselves
    when not ``inner``) in frame pixels."""
    if len(rects) == 0:
        return np.zeros((0, 5))
    win = np.asarray(rects, np.float64).reshape(-1, 4) / factor
    fx, fy, fw, fh = PERSON_IN_WINDOW if inner else (0.0, 0.0, 1.0, 1.0)
    boxes = np.stack([win[:, 0] + fx * win[:, 2] + offset[0], win[:, 1] + fy * win[:, 3] + offset[1],
                      fw * win[:, 2], fh * win[:, 3]], axis=1)
    return np.concatenate([boxes, np.asarray(weights, np.float64).reshape(-1, 1)], axis=1)


def merge_regions(rects: np.ndarray) -> np.ndarray:
    """Rectangles ``(R, 4)`` ``x0 y0 x1 y1`` merged until none overlap: two that overlap become their bounding
    rectangle (which may then overlap a third). Returns ``(R', 4)``."""
    out = [r for r in np.asarray(rects, np.float64).reshape(-1, 4)]
    merged = True
    while merged:
        merged = False
        for i in range(len(out)):
            for j in range(i + 1, len(out)):
                a, b = out[i], out[j]
                if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]:
                    out[i] = np.concatenate([np.minimum(a[:2], b[:2]), np.maximum(a[2:], b[2:])])
                    del out[j]
                    merged = True
                    break
            if merged:
                break
    return np.asarray(out, np.float64).reshape(-1, 4)


class HogDetector:
    """OpenCV's HOG people detector with the settings that decide its cost and recall.

    Args:
        score_thr: least SVM margin of a box (not a probability).
        min_height: smallest person to find, in frame pixels (its box height). The frame is scaled by
            ``96 / min_height`` (a person that tall fills the window), so a value below 96 upscales it (small
            people, small frames). ``None``: the frame is only shrunk, to ``max_side`` (a person must then be
            ``96 * max(1, longer side / max_side)`` pixels tall).
        max_height: tallest person to find, in frame pixels; bounds the pyramid's levels (``None``: until the
            scaled frame is smaller than the window).
        max_side: the longer side detection runs at when ``min_height`` is ``None``.
        scale: pyramid step (OpenCV's ``scale``).
        win_stride: window stride in pixels, a multiple of 8 (OpenCV's ``winStride``).
        padding: pixels added around the image (and each region) so that people at its edge are found.
        hit_threshold: SVM margin for a window to count as a hit before grouping (OpenCV's ``hitThreshold``).
        group_threshold: least hits (minus one) a group of windows needs to become a box (OpenCV's
            ``groupThreshold``).
        roi_margin: a region of interest box grows by this times its height on every side (people move between
            detections; the window needs context).
        max_roi_share: regions covering more than this share of the frame run as one full-frame detection.
        box: ``"person"``: the person inside the window (:data:`PERSON_IN_WINDOW`); ``"window"``: the 64x128
            window itself (1.3x the person's height; what this detector returned before).

    Calling ``detector(image)`` runs :meth:`detect` on the whole frame.

    Raises:
        HogUnavailableError: this OpenCV has no HOG people detector (OpenCV >= 5).
        ConfigError: a setting out of range.
    """

    def __init__(self, score_thr: float = 0.3, min_height: float | None = None, max_height: float | None = None,
                 max_side: int = 640, scale: float = 1.1, win_stride: int = 8, padding: int = 16,
                 hit_threshold: float = -0.2, group_threshold: int = 1, roi_margin: float = 0.5,
                 max_roi_share: float = 0.6, box: str = "person") -> None:
        _require_hog()
        if box not in ("person", "window"):
            raise ConfigError(f"HOG box must be 'person' or 'window', got {box!r}")
        if min_height is not None and not 16 <= min_height:
            raise ConfigError(f"HOG min_height must be >= 16 pixels, got {min_height}")
        if max_height is not None and not max_height >= (min_height or 16):
            raise ConfigError(f"HOG max_height must be >= min_height ({min_height}), got {max_height}")
        if not 1.01 <= scale <= 2:
            raise ConfigError(f"HOG scale (pyramid step) must be in [1.01, 2], got {scale}")
        if win_stride < 8 or win_stride % 8:
            raise ConfigError(f"HOG win_stride must be a positive multiple of 8 (the block stride), got {win_stride}")
        if max_side < WINDOW[1] or padding < 0 or group_threshold < 0 or roi_margin < 0 or not 0 < max_roi_share <= 1:
            raise ConfigError(f"HOG settings out of range: max_side={max_side} (>= 128), padding={padding}, "
                              f"group_threshold={group_threshold}, roi_margin={roi_margin} (>= 0), "
                              f"max_roi_share={max_roi_share} (in (0, 1])")
        self.score_thr = float(score_thr)
        self.min_height = None if min_height is None else float(min_height)
        self.max_height = None if max_height is None else float(max_height)
        self.max_side = int(max_side)
        self.scale = float(scale)
        self.win_stride = int(win_stride)
        self.padding = int(padding)
        self.hit_threshold = float(hit_threshold)
        self.group_threshold = int(group_threshold)
        self.roi_margin = float(roi_margin)
        self.max_roi_share = float(max_roi_share)
        self.box = box

    def factor(self, image_shape: tuple[int, ...]) -> float:
        """The scale the frame is detected at."""
        if self.min_height is not None:
            return PERSON_HEIGHT / self.min_height
        return min(1.0, self.max_side / max(image_shape[:2]))

    def _levels(self, factor: float) -> int:
        if self.max_height is None:
            return 64  # OpenCV's default: the pyramid ends where the window no longer fits
        return max(1, math.floor(math.log(self.max_height * factor / PERSON_HEIGHT) / math.log(self.scale)) + 2)

    def _detect_region(self, image: np.ndarray, factor: float, offset: tuple[float, float]) -> np.ndarray:
        """Raw ``(M, 5)`` person boxes of one image or crop, in frame pixels (no score threshold)."""
        interpolation = cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR
        small = image if factor == 1 else cv2.resize(image, None, fx=factor, fy=factor, interpolation=interpolation)
        if small.shape[0] < WINDOW[1] or small.shape[1] < WINDOW[0]:
            # No person fits: the detector's window is 64x128. OpenCV's detectMultiScale also corrupts memory
            # (crashes the process) on some images smaller than its window, e.g. 96x80 or 300x47 (OpenCV 4.x).
            return np.zeros((0, 5))
        stride, pad = (self.win_stride,) * 2, (self.padding,) * 2
        rects, weights = _hog(self._levels(factor)).detectMultiScale(
            small, hitThreshold=self.hit_threshold, winStride=stride, padding=pad, scale=self.scale,
            groupThreshold=self.group_threshold)
        return _person_boxes(rects, weights, factor, offset, inner=self.box == "person")

    def regions(self, roi: np.ndarray, image_shape: tuple[int, ...]) -> np.ndarray | None:
        """Where :meth:`detect` looks for ``roi`` boxes: ``(R, 4)`` integer ``x0 y0 x1 y1`` rectangles (the boxes
        grown by ``roi_margin`` times their height, at least a window at the detection scale, clipped to the frame,
        merged until none overlap); ``None`` when they cover more than ``max_roi_share`` of the frame."""
        h, w = image_shape[:2]
        roi = np.asarray(roi, np.float64)
        if not roi.size:
            return np.zeros((0, 4), np.int64)
        boxes = xywh_to_xyxy(roi.reshape(-1, roi.shape[-1])[:, :4])
        factor = self.factor(image_shape)
        grow = self.roi_margin * (boxes[:, 3] - boxes[:, 1])[:, None]
        lo, hi = boxes[:, :2] - grow, boxes[:, 2:] + grow
        least = np.asarray(WINDOW, np.float64) / factor + 2 * self.padding / factor
        short = np.maximum(least - (hi - lo), 0) / 2  # grow a region smaller than a window to one
        lo, hi = lo - short, hi + short
        rects = np.concatenate([np.clip(lo, 0, None), np.minimum(hi, [w, h])], axis=1)
        rects = merge_regions(np.round(rects))
        area = float(np.prod(rects[:, 2:] - rects[:, :2], axis=1).sum())
        return None if area > self.max_roi_share * h * w else rects.astype(np.int64)

    def detect(self, image: np.ndarray, roi: np.ndarray | None = None) -> np.ndarray:
        """Person boxes of one frame.

        Args:
            image: ``(H, W, 3)`` BGR uint8.
            roi: ``(R, 4+)`` xywh boxes (the tracked people) to look around, or ``None`` for the whole frame; the
                regions are :meth:`regions` (the whole frame when they cover most of it). An empty ``roi`` finds
                nobody.

        Returns:
            ``(M, 5)`` boxes ``(x, y, w, h, score)`` in frame pixels, by descending score (the SVM margin).
        """
        factor = self.factor(image.shape)
        rects = None if roi is None else self.regions(roi, image.shape)
        if rects is None:
            boxes = self._detect_region(image, factor, (0.0, 0.0))
        else:
            found = [self._detect_region(image[y0:y1, x0:x1], factor, (float(x0), float(y0)))
                     for x0, y0, x1, y1 in rects.tolist()]
            boxes = np.concatenate([np.zeros((0, 5)), *found])
            if len(found) > 1 and len(boxes):  # one person across two regions' borders
                boxes = boxes[nms(xywh_to_xyxy(boxes[:, :4]), boxes[:, 4], 0.5)]
        boxes = boxes[boxes[:, 4] >= self.score_thr]
        return boxes[np.argsort(-boxes[:, 4], kind="stable")]

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return self.detect(image)

    def __repr__(self) -> str:
        return (f"HogDetector(score_thr={self.score_thr}, min_height={self.min_height}, max_height="
                f"{self.max_height}, scale={self.scale}, win_stride={self.win_stride}, padding={self.padding}, "
                f"hit_threshold={self.hit_threshold}, group_threshold={self.group_threshold}, box={self.box!r})")


def hog_people_boxes(image: np.ndarray, max_side: int = 640) -> np.ndarray:
    """Every HOG person box of an image (no score threshold), detected at ``max_side`` with the default settings.

    Args:
        image: ``(H, W, 3)`` BGR uint8.
        max_side: longer image side used for detection (speed); boxes are mapped back to the full image.

    Returns:
        ``(M, 5)`` boxes ``(x, y, w, h, score)`` in image pixels; the score is the SVM margin (not a probability).

    Raises:
        HogUnavailableError: this OpenCV build has no HOG people detector (OpenCV >= 5 removed it).
    """
    return HogDetector(score_thr=-math.inf, max_side=max_side).detect(image)
