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
are picked up at the next detection. The persons of a frame go through the pose model in batches of at most the
predictor's ``max_batch`` (:class:`~fasterpose.deploy.predictor.Predictor`). Track ids:
:mod:`fasterpose.video.track`; smoothing: :mod:`fasterpose.video.smooth`.

With ``early_roi``, an early re-detection (one asked only by a confidence drop, between the scheduled ones) searches
only around the tracked people's boxes when the box source can (
:meth:`~fasterpose.detect.sources.BoxSource.boxes_near`: HOG can), the whole frame otherwise: it is there to
re-place people who are tracked, and a HOG search of the whole frame costs several times one around a few people.
It does not move the schedule: new people still appear at the next scheduled full-frame detection, ``det_every``
frames after the last full-frame one.

Where boxes come from is a :class:`~fasterpose.detect.sources.BoxSource` (a detector, a detection file, the whole
image, boxes given in Python), asked on detection frames only. Photos take the same path: a ``Pipeline`` with
``tracking=False`` asks its source on every call and returns each box's pose, without track ids or smoothing.

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
from ..detect.sources import BoxSource, as_box_source
from ..errors import check_argument
from ..evaluation.nms import oks_iou
from .beside import LaggedDetector, catch_up
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
        detector: where the boxes of detection frames come from: a :class:`~fasterpose.detect.sources.BoxSource`
            (called with the frame and its key) or a detector ``image -> (M, 5)`` boxes ``(x, y, w, h, score)``
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
        det_lag: ``0``: the detector runs in the pose thread on its frame (synchronous). ``L >= 1``: it runs in its
            own thread (:mod:`fasterpose.video.beside`) on frame ``t`` while the pose model goes on with boxes from
            the last poses, and its boxes, moved by their tracks' motion, are merged at exactly frame ``t + L``
            (waiting for them there if needed): the results do not depend on the machine's speed.
        idle_every: while nobody is tracked, detect every N frames rather than on every frame (a detector that
            finds no one costs as much as one that does); a new person is then found up to N - 1 frames later.
        early_roi: an early re-detection searches only around the tracked boxes where the box source can
            (:meth:`~fasterpose.detect.sources.BoxSource.boxes_near`); scheduled detections, those while nobody is
            tracked and those of the detector beside (``det_lag >= 1``) always search the whole frame. Off by
            default: on vtest it gains ~7% fps with HOG, on the synthetic clip it lost 2 points of recall and no time
            (docs/results.md).
        tracking: ``False`` for photos: every call is a detection frame, each valid box gives one pose (its box as
            given, not clipped), no track ids, no smoothing.

    Attributes:
        timing: cumulative milliseconds per stage (:data:`STAGES`; ``pose`` includes ``model``), plus ``frames``
            and ``detections`` (frames on which the detector ran), ``detector_calls`` and ``roi_calls`` (the
            detector's calls, and those around the tracked boxes only).
        skipped_boxes: boxes of detection frames dropped because less than one pixel of them lies in the frame.
    """

    def __init__(self, predictor: Any, detector: Detector | None = None, det_every: int = 1,
                 smoothing: OneEuroConfig | bool | None = None, fps: float = 25.0, kpt_thr: float = 0.3,
                 redetect_thr: float = 0.3, box_pad: float = 0.1, min_box: float = 16.0, match_thr: float = 0.3,
                 max_missed: int = 30, max_jump_iou: float = 0.5, tracking: bool = True, det_lag: int = 0,
                 idle_every: int = 1, early_roi: bool = False) -> None:
        check_argument(callable(predictor) and hasattr(predictor, "keypoint_set"), "Pipeline(predictor)", predictor,
                       "a fasterpose.Predictor")
        if int(det_every) < 1:
            raise ValueError(f"det_every must be >= 1, got {det_every}")
        if int(det_lag) < 0 or int(idle_every) < 1:
            raise ValueError(f"det_lag must be >= 0 and idle_every >= 1, got {det_lag} and {idle_every}")
        if not fps > 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        self.predictor = predictor
        self.source: BoxSource | None = as_box_source(detector)
        self.tracking = bool(tracking)
        self.det_lag, self.idle_every = int(det_lag), int(idle_every)
        self._beside: LaggedDetector | None = None
        self.det_every = int(det_every)
        self.early_roi = bool(early_roi)
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
        self.skipped_boxes = 0
        if self._beside is not None:
            self._beside.close()
        lagged = self.det_lag and self.tracking and self.source is not None
        self._beside = LaggedDetector(self.source, self.det_lag) if lagged else None
        self._history: dict[int, dict[int, np.ndarray]] = {}  # track id -> {frame: box}, the last det_lag + 2
        self._since_detection = 0
        self._since_full = 0  # frames since the last full-frame detection (those around tracked boxes not counted)
        self._force_detection = True
        self._early = False  # the forced detection is an early re-detection (a confidence drop)
        self._active: dict[int, float] = {}  # track id -> box score, tracks seen on the last frame
        self._detected_conf: dict[int, float] = {}  # track id -> mean keypoint score on its last detection frame
        self._velocity: dict[int, np.ndarray] = {}  # track id -> box centre motion per frame between detections
        self._last_detection: dict[int, tuple[int, np.ndarray]] = {}  # track id -> (frame, box centre)
        self._frozen: set[int] = set()  # tracks whose pose merged into another's: box kept until the next detection
        self.timing: dict[str, float] = {**{s: 0.0 for s in STAGES}, "frames": 0, "detections": 0, "detector": 0.0,
                                         "detector_calls": 0, "roi_calls": 0}

    def close(self) -> None:
        """Stop the detector's thread (``det_lag >= 1``); a pending detection is dropped."""
        if self._beside is not None:
            self._beside.close()

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def wants_detection(self) -> bool:
        """Whether the next frame is a detection frame (then its boxes come from the detector or the caller)."""
        if not self.tracking or self._force_detection:
            return True
        if self._active:  # scheduled: det_every frames after the last full-frame detection
            return self._since_full >= self.det_every
        return self._since_detection >= self.idle_every

    def _early_roi(self) -> np.ndarray | None:
        """``(R, 4)`` xywh boxes of the tracked people for an early re-detection to search around, ``None`` for a
        full-frame detection (a scheduled one, nobody tracked, ``early_roi`` off, a source without regions)."""
        if not (self.early_roi and self._early and self._active and self.source.has_roi
                and self._since_full < self.det_every):
            return None
        boxes = [self.tracker.tracks[tid].box for tid in self._active if tid in self.tracker.tracks]
        return np.asarray(boxes, np.float64).reshape(-1, 4) if boxes else None

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

    def __call__(self, frame: np.ndarray, boxes: np.ndarray | None = None, key: int | str | None = None
                 ) -> list[dict[str, Any]]:
        """Poses of one frame.

        Args:
            frame: ``(H, W, 3)`` BGR uint8.
            boxes: ``(M, 5)`` (or ``(M, 4)``) person boxes for this frame, used as its detection (they make it a
                detection frame); ``None``: the box source's on detection frames, pose-guided boxes between.
            key: what the box source knows the frame by (a detection file's image id); default the frame index.

        Returns:
            One dict per person: ``keypoints`` ``(K, 3)`` (smoothed when smoothing is on), ``raw_keypoints``,
            ``box`` ``(4,)`` xywh, ``box_score``, ``track_id`` and ``detected`` (box from the detector or the caller
            rather than from the last pose).
        """
        t0 = time.perf_counter()
        key = self.frame if key is None else key
        detected = boxes is not None or (self._beside is None and self.wants_detection())
        requested = detected  # a detection asked for on this frame (merged now, or det_lag frames later)
        roi = None  # the tracked boxes an early re-detection searched around
        if boxes is None and self._beside is not None:
            boxes, known, detected, requested = self._lagged(frame, key)
        elif boxes is not None:
            boxes = np.asarray(boxes, np.float64)
            boxes = boxes.reshape(-1, boxes.shape[-1] if boxes.ndim == 2 else 5)
            if boxes.shape[1] == 4:
                boxes = np.concatenate([boxes, np.ones((len(boxes), 1))], axis=1)
            known = np.zeros(len(boxes), np.int64)
        elif detected:
            if self.source is None:
                raise ValueError("this Pipeline has no detector: pass the boxes of detection frames "
                                 "(pipeline.wants_detection() says which)")
            roi = self._early_roi()
            boxes = self.source(frame, key) if roi is None else self.source.boxes_near(frame, key, roi)
            known = np.zeros(len(boxes), np.int64)
            self.timing["detector"] += 1e3 * (time.perf_counter() - t0)
            self.timing["detector_calls"] += 1
            self.timing["roi_calls"] += int(roi is not None)
        else:
            boxes, known = self._propagated()
        # Boxes partly outside the frame are clipped to it; one wholly outside (a person who left) is dropped.
        clipped, valid = clip_boxes(boxes[:, :4], frame.shape)
        if detected:
            self.skipped_boxes += int((~valid).sum())
        if self.tracking:
            boxes = np.concatenate([clipped, boxes[:, 4:5]], axis=1)
        boxes, known = boxes[valid], known[valid]
        if not self.tracking:
            return self._photo(frame, boxes, t0)
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
        if requested:
            self._force_detection = self._early = False
        if detected:
            self._detected_conf = {int(tid): c for tid, c in zip(ids, conf)}
        elif any(c < self.redetect_thr and c < self._detected_conf.get(int(tid), 1.0) for tid, c in zip(ids, conf)):
            self._force_detection = self._early = True
        self._since_detection = 1 if requested else self._since_detection + 1
        self._since_full = 1 if requested and roi is None else self._since_full + 1
        if self._beside is not None:
            self._remember(ids, bx)
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

    def _lagged(self, frame: np.ndarray, key: int | str) -> tuple[np.ndarray, np.ndarray, bool, bool]:
        """Boxes of a frame with the detector beside: the detection due now (made ``det_lag`` frames ago, moved by
        its tracks' motion), else the last poses' boxes; a new detection starts when one is wanted and none is in
        flight. Returns ``boxes, known track ids, detected, requested``."""
        due = self._beside.due(self.frame)
        boxes = None if due is None else catch_up(due[1], due[0], self.frame, self._history)
        if boxes is not None and len(boxes):  # people just detected: the next detection as if they were tracked
            wanted = self._force_detection or self._since_detection >= self.det_every
        else:
            wanted = self.wants_detection()
        requested = wanted and not self._beside.pending
        if requested:
            self._beside.submit(self.frame, frame, key)
        if boxes is None:
            return (*self._propagated(), False, requested)
        return boxes, np.zeros(len(boxes), np.int64), True, requested

    def _remember(self, ids: np.ndarray, boxes: np.ndarray) -> None:
        """Each live track's boxes of the last ``det_lag + 2`` frames (:func:`~fasterpose.video.beside.catch_up`)."""
        for tid, box in zip(ids.tolist(), boxes):
            self._history.setdefault(tid, {})[self.frame] = box.copy()
        oldest = self.frame - self.det_lag - 2
        self._history = {tid: kept for tid, h in self._history.items() if tid in self.tracker.tracks
                         and (kept := {f: b for f, b in h.items() if f >= oldest})}

    def _photo(self, frame: np.ndarray, boxes: np.ndarray, t0: float) -> list[dict[str, Any]]:
        """Poses of a photo (``tracking=False``): one per valid box, as given."""
        t1 = time.perf_counter()
        people = [p for p in self.predictor(frame, boxes) if p["valid"]]
        self.timing["detect"] += 1e3 * (t1 - t0)
        self.timing["pose"] += 1e3 * (time.perf_counter() - t1)
        self.timing["model"] += self.predictor.last_timing["model_ms"]
        self.timing["frames"] += 1
        self.timing["detections"] += 1
        self.frame += 1
        return [{"keypoints": p["keypoints"], "raw_keypoints": p["keypoints"], "box": p["box"],
                 "box_score": float(p["box_score"]), "detected": True} for p in people]

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
        """Milliseconds per frame of each stage (``detect_ms``: getting the frame's boxes, in the pose thread),
        ``frames``, ``detection_frames`` (frames whose boxes came from the detector), ``detector_calls``,
        ``roi_calls`` (those around the tracked boxes only), ``detector_ms`` (the detector's own time per frame, in
        its thread with ``det_lag``), ``detector_wait_ms`` (per frame, the pose thread waiting for a late detection)
        and ``det_lag``."""
        n = max(int(self.timing["frames"]), 1)
        out = {f"{s}_ms": round(self.timing[s] / n, 3) for s in STAGES}
        out["frames"] = int(self.timing["frames"])
        out["detection_frames"] = int(self.timing["detections"])
        beside = self._beside
        out["detector_calls"] = beside.calls if beside is not None else int(self.timing["detector_calls"])
        out["roi_calls"] = int(self.timing["roi_calls"])
        out["detector_ms"] = round((beside.detector_ms if beside is not None else self.timing["detector"]) / n, 3)
        out["detector_wait_ms"] = round(beside.wait_ms / n, 3) if beside is not None else 0.0
        out["det_lag"] = self.det_lag
        return out
