"""``Pipeline``: video frames -> person boxes -> poses -> track ids -> smoothed keypoints.

One call per frame. Boxes come from the detector on detection frames (every ``det_every`` frames, on the first
frame, when there is no track, and on the frame after a track's pose confidence dropped below ``redetect_thr`` and
below its own level on the last detection frame);
on the frames between, each track's box is the extent of its last pose's confident keypoints (score >=
``kpt_thr``, at least three) with a margin of ``box_pad`` times its longer side on every side (the keypoints lie
inside the body, a detector's box around it: eyes to ankles are about 85% of a standing person's height, and a
person seen from the side is wider than its keypoints) and at least ``min_box`` pixels wide and high. A track
keeps its last box instead, moved at the velocity it had between its last two detections, when its pose has
fewer than three confident keypoints, when the new box would overlap the last one less than ``max_jump_iou`` (IoU
0.5) or be more than 15% taller or shorter (people do not jump or grow between frames; poses do, onto a nearby
person), and when two tracks' poses landed on one person (OKS > 0.8: someone walking behind another); then until
the next detection. New people
are picked up at the next detection. All persons of a frame go through the pose model in one batch
(:class:`~fasterpose.deploy.predictor.Predictor`). Track ids: :mod:`fasterpose.video.track`; smoothing:
:mod:`fasterpose.video.smooth`.

Example::

    pipe = fasterpose.Pipeline(fasterpose.Predictor("model.onnx"), OnnxDetector("yolox_tiny.onnx"), det_every=5)
    for frame in frames:
        for person in pipe(frame):
            person["track_id"], person["keypoints"]  # (K, 3) x, y, score in image pixels
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from ..deploy.predictor import clip_boxes
from ..detect.boxes import box_iou, xywh_to_xyxy
from ..errors import check_argument
from ..evaluation.nms import oks_iou
from .smooth import OneEuroConfig, Smoother
from .track import Tracker

Detector = Callable[[np.ndarray], np.ndarray]

STAGES = ("detect", "pose", "model", "track", "smooth")


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two xywh boxes."""
    return float(box_iou(xywh_to_xyxy(a), xywh_to_xyxy(b))[0, 0])


def pose_box(keypoints: np.ndarray, kpt_thr: float, pad: float, min_size: float) -> np.ndarray | None:
    """``(4,)`` xywh box around the confident keypoints of a ``(K, 3)`` pose, with a margin of ``pad`` times the
    longer side of their extent on every side; ``None`` with fewer than three confident keypoints."""
    ok = keypoints[:, 2] >= kpt_thr
    if int(ok.sum()) < 3:
        return None
    pts = keypoints[ok, :2]
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    centre = (lo + hi) / 2
    size = np.maximum(hi - lo + 2 * pad * float((hi - lo).max()), min_size)
    return np.concatenate([centre - size / 2, size])


class Pipeline:
    """Detector + pose model + tracker + smoother, one frame at a time.

    Args:
        predictor: a :class:`~fasterpose.deploy.predictor.Predictor`.
        detector: ``image -> (M, 5)`` person boxes ``(x, y, w, h, score)``
            (:class:`~fasterpose.detect.OnnxDetector`, :class:`~fasterpose.detect.HogDetector`); ``None`` when the
            caller passes the boxes of detection frames.
        det_every: run the detector every N frames (1 = every frame).
        smoothing: a :class:`~fasterpose.video.smooth.OneEuroConfig`, ``True`` for its defaults, ``None``/``False`` off.
        fps: frame rate (the smoother's time step).
        kpt_thr: keypoint score for pose-guided boxes and OKS matching.
        redetect_thr: a propagated pose whose mean keypoint score is below this, and below its track's score on
            the last detection frame, triggers a detection next frame.
        box_pad: pose-guided box margin on every side, as a fraction of the keypoint extent's longer side.
        min_box: smallest pose-guided box side in pixels.
        match_thr: least OKS (or IoU) for a pose to continue a track.
        max_missed: frames a track may go unseen before its id is forgotten.
        max_jump_iou: a pose-guided box overlapping the track's previous box less than this (IoU) is not used: the
            track keeps its previous box until the next detection.

    Attributes:
        timing: cumulative milliseconds per stage (:data:`STAGES`; ``pose`` includes ``model``), plus ``frames``
            and ``detections`` (frames on which the detector ran).
    """

    def __init__(self, predictor: Any, detector: Detector | None = None, det_every: int = 1,
                 smoothing: OneEuroConfig | bool | None = None, fps: float = 25.0, kpt_thr: float = 0.3,
                 redetect_thr: float = 0.3, box_pad: float = 0.1, min_box: float = 16.0, match_thr: float = 0.3,
                 max_missed: int = 30, max_jump_iou: float = 0.5) -> None:
        check_argument(callable(predictor) and hasattr(predictor, "keypoint_set"), "Pipeline(predictor)", predictor,
                       "a fasterpose.Predictor")
        if int(det_every) < 1:
            raise ValueError(f"det_every must be >= 1, got {det_every}")
        if not fps > 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        self.predictor = predictor
        self.detector = detector
        self.det_every = int(det_every)
        self.fps = float(fps)
        self.kpt_thr = float(kpt_thr)
        self.redetect_thr = float(redetect_thr)
        self.box_pad = float(box_pad)
        self.min_box = float(min_box)
        self.max_jump_iou = float(max_jump_iou)
        self.tracker = Tracker(predictor.keypoint_set.sigmas, match_thr=match_thr, max_missed=max_missed,
                               kpt_thr=kpt_thr)
        config = OneEuroConfig() if smoothing is True else (smoothing or None)
        self.smoother = Smoother(config) if config is not None else None
        self.reset()

    def reset(self) -> None:
        """Forget tracks, smoothing state and timing (a new video)."""
        self.tracker.reset()
        if self.smoother is not None:
            self.smoother.reset()
        self.frame = 0
        self._since_detection = 0
        self._force_detection = True
        self._active: dict[int, float] = {}  # track id -> box score, tracks seen on the last frame
        self._detected_conf: dict[int, float] = {}  # track id -> mean keypoint score on its last detection frame
        self._velocity: dict[int, np.ndarray] = {}  # track id -> box centre motion per frame between detections
        self._last_detection: dict[int, tuple[int, np.ndarray]] = {}  # track id -> (frame, box centre)
        self._frozen: set[int] = set()  # tracks whose pose merged into another's: box kept until the next detection
        self.timing: dict[str, float] = {**{s: 0.0 for s in STAGES}, "frames": 0, "detections": 0}

    def wants_detection(self) -> bool:
        """Whether the next frame is a detection frame (then its boxes come from the detector or the caller)."""
        return self._force_detection or not self._active or self._since_detection >= self.det_every

    def _propagated(self) -> tuple[np.ndarray, np.ndarray]:
        boxes, ids = [], []
        for tid, score in self._active.items():
            t = self.tracker.tracks.get(tid)
            if t is None:
                continue
            box = None if tid in self._frozen else pose_box(t.keypoints, self.kpt_thr, self.box_pad, self.min_box)
            if box is not None and (_iou(box, t.box) < self.max_jump_iou
                                    or not 1 / 1.15 <= box[3] / max(t.box[3], 1.0) <= 1.15):
                box = None  # the pose landed on someone else (or nowhere): people do not jump or grow between frames
                self._frozen.add(tid)
            if box is None:  # the last box, moved as the track moved between its last two detections
                box = t.box.copy()
                box[:2] += self._velocity.get(tid, 0.0)
            boxes.append(np.append(box, score))
            ids.append(tid)
        return np.asarray(boxes, np.float64).reshape(-1, 5), np.asarray(ids, np.int64)

    def __call__(self, frame: np.ndarray, boxes: np.ndarray | None = None) -> list[dict[str, Any]]:
        """Poses of one frame.

        Args:
            frame: ``(H, W, 3)`` BGR uint8.
            boxes: ``(M, 5)`` (or ``(M, 4)``) person boxes for this frame, used as its detection (they make it a
                detection frame); ``None``: the detector's on detection frames, pose-guided boxes between.

        Returns:
            One dict per person: ``keypoints`` ``(K, 3)`` (smoothed when smoothing is on), ``raw_keypoints``,
            ``box`` ``(4,)`` xywh, ``box_score``, ``track_id`` and ``detected`` (box from the detector or the caller
            rather than from the last pose).
        """
        t0 = time.perf_counter()
        detected = boxes is not None or self.wants_detection()
        if boxes is not None:
            boxes = np.asarray(boxes, np.float64)
            boxes = boxes.reshape(-1, boxes.shape[-1] if boxes.ndim == 2 else 5)
            if boxes.shape[1] == 4:
                boxes = np.concatenate([boxes, np.ones((len(boxes), 1))], axis=1)
            known = np.zeros(len(boxes), np.int64)
        elif detected:
            if self.detector is None:
                raise ValueError("this Pipeline has no detector: pass the boxes of detection frames "
                                 "(pipeline.wants_detection() says which)")
            boxes = np.asarray(self.detector(frame), np.float64).reshape(-1, 5)
            known = np.zeros(len(boxes), np.int64)
        else:
            boxes, known = self._propagated()
        # Boxes partly outside the frame are clipped to it; one wholly outside (a person who left) is dropped.
        clipped, valid = clip_boxes(boxes[:, :4], frame.shape)
        boxes = np.concatenate([clipped, boxes[:, 4:5]], axis=1)[valid]
        known = known[valid]
        t1 = time.perf_counter()
        results = self.predictor(frame, boxes)
        keep = np.asarray([i for i, p in enumerate(results) if p["valid"]], np.int64)
        people = [results[i] for i in keep]
        t2 = time.perf_counter()
        model_ms = self.predictor.last_timing["model_ms"]
        kp = np.stack([p["keypoints"] for p in people]) if people else np.zeros((0, 0, 3))
        bx = np.stack([p["box"] for p in people]) if people else np.zeros((0, 4))
        known = known[keep]
        if detected:
            self._frozen.clear()
        ids = self.tracker.update(self.frame, kp, bx, known) if people else np.zeros(0, np.int64)
        if people:
            self._frozen |= self._merged(kp, bx, ids)
        if detected:
            self._update_velocity(ids, bx)
        t3 = time.perf_counter()
        smoothed = self.smoother(ids, kp, bx, self.frame / self.fps) if self.smoother is not None and people else kp
        t4 = time.perf_counter()

        # Early re-detection when a pose's confidence *drops*: below redetect_thr and below what the same track had
        # on its last detection frame. A pose that was already weak on the detector's own box (a poor HOG box) does
        # not ask again on every frame: the detector would give the same box, at the detector's cost each time.
        conf = [float(p["keypoints"][:, 2].mean()) for p in people]
        if detected:
            self._force_detection = False
            self._detected_conf = {int(tid): c for tid, c in zip(ids, conf)}
        elif any(c < self.redetect_thr and c < self._detected_conf.get(int(tid), 1.0) for tid, c in zip(ids, conf)):
            self._force_detection = True
        self._since_detection = 1 if detected else self._since_detection + 1
        self._active = {int(tid): float(p["box_score"]) for tid, p in zip(ids, people)}
        self.frame += 1
        for stage, ms in zip(STAGES, (t1 - t0, t2 - t1, None, t3 - t2, t4 - t3)):
            if ms is not None:
                self.timing[stage] += 1e3 * ms
        self.timing["model"] += model_ms
        self.timing["frames"] += 1
        self.timing["detections"] += int(detected)
        return [{"keypoints": smoothed[i], "raw_keypoints": kp[i], "box": bx[i], "box_score": float(p["box_score"]),
                 "track_id": int(ids[i]), "detected": detected} for i, p in enumerate(people)]

    def _update_velocity(self, ids: np.ndarray, boxes: np.ndarray) -> None:
        for tid, box in zip(ids.tolist(), boxes):
            centre = box[:2] + box[2:4] / 2
            last = self._last_detection.get(tid)
            if last is not None and self.frame > last[0]:
                self._velocity[tid] = (centre - last[1]) / (self.frame - last[0])
            self._last_detection[tid] = (self.frame, centre)
        for tid in [k for k in self._last_detection if k not in self.tracker.tracks]:
            self._last_detection.pop(tid, None)
            self._velocity.pop(tid, None)

    def _merged(self, kp: np.ndarray, bx: np.ndarray, ids: np.ndarray) -> set[int]:
        """Tracks whose poses landed on one person (OKS > 0.8 between them): typically someone walking behind
        another. Which pose is the right one's is unknown, so both keep their boxes where they were (not moved onto
        one person) until the next detection."""
        areas = bx[:, 2] * bx[:, 3]
        merged: set[int] = set()
        for i in range(len(kp) - 1):
            sim = oks_iou(kp[i], kp[i + 1:], float(areas[i]), areas[i + 1:], self.predictor.keypoint_set.sigmas,
                          self.kpt_thr)
            for j in np.flatnonzero(sim > 0.8):
                merged |= {int(ids[i]), int(ids[i + 1 + j])}
        return merged

    def summary(self) -> dict[str, float]:
        """Milliseconds per frame of each stage, and the share of frames on which the detector ran."""
        n = max(int(self.timing["frames"]), 1)
        out = {f"{s}_ms": round(self.timing[s] / n, 3) for s in STAGES}
        out["frames"] = int(self.timing["frames"])
        out["detection_frames"] = int(self.timing["detections"])
        return out
