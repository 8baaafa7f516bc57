"""Track ids across video frames: persons matched to the tracks of the previous frames by box IoU (or OKS).

Rule (one frame at a time, after pose estimation):

* **Matching.** The similarity of a track and a new person is the IoU of the track's last box and the new box
  (``metric="iou"``, the default), or the OKS of their poses (``metric="oks"``: COCO sigmas of the keypoint set,
  keypoints with a score above ``kpt_thr`` in both, the mean box area as the scale; box IoU where a pose has no
  such keypoint). Pairs are taken greedily from the most similar down; a pair below ``match_thr`` (0.3, as
  MMPose's pose-tracking demo) is no match. IoU is the default because on the synthetic clip (people at different
  depths crossing each other) OKS swapped identities where a hidden person's pose had landed on the person in
  front, and box IoU did not (``benchmarks/bench_video.py``).
* **Birth.** A person that matches no track starts a new track with the next id (1, 2, ...). Ids are never reused.
* **Death.** A track that matches nothing for more than ``max_missed`` frames (default 30, about a second) is
  forgotten; until then a person who reappears near their last box gets their id back.

Persons whose track is already known (boxes propagated from a track's own last pose between detections) are passed
with that id and are not matched again.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..detect.boxes import box_iou, xywh_to_xyxy
from ..evaluation.nms import oks_iou


@dataclass
class Track:
    """A person followed across frames."""

    track_id: int
    keypoints: np.ndarray  # (K, 3) last pose in image pixels
    box: np.ndarray  # (4,) last box xywh
    last_frame: int
    hits: int = 1


class Tracker:
    """Assigns track ids to the poses of consecutive frames (see the module docstring for the rule).

    Args:
        sigmas: per-keypoint OKS sigmas ``(K,)`` (the keypoint set's).
        match_thr: least similarity (box IoU, or OKS) for a match.
        max_missed: frames a track may go unmatched before it is forgotten.
        kpt_thr: keypoint score above which a keypoint counts in the OKS.
        metric: ``"iou"`` (boxes) or ``"oks"`` (poses).
    """

    def __init__(self, sigmas: np.ndarray, match_thr: float = 0.3, max_missed: int = 30,
                 kpt_thr: float = 0.3, metric: str = "iou") -> None:
        if metric not in ("iou", "oks"):
            raise ValueError(f"metric must be 'iou' or 'oks', got {metric!r}")
        self.metric = metric
        if not 0 < match_thr <= 1:
            raise ValueError(f"match_thr must be in (0, 1], got {match_thr}")
        if max_missed < 0:
            raise ValueError(f"max_missed must be >= 0, got {max_missed}")
        self.sigmas = np.asarray(sigmas, dtype=np.float64)
        self.match_thr = float(match_thr)
        self.max_missed = int(max_missed)
        self.kpt_thr = float(kpt_thr)
        self.tracks: dict[int, Track] = {}
        self.next_id = 1

    def reset(self) -> None:
        self.tracks.clear()
        self.next_id = 1

    def similarity(self, tracks: list[Track], keypoints: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """``(len(tracks), M)`` box IoU, or OKS (box IoU where a pose has no confident keypoint)."""
        sim = np.zeros((len(tracks), len(keypoints)))
        if not len(tracks) or not len(keypoints):
            return sim
        areas = boxes[:, 2] * boxes[:, 3]
        corners = xywh_to_xyxy(boxes)
        if self.metric == "iou":
            tb = np.stack([t.box for t in tracks])
            iou = box_iou(xywh_to_xyxy(tb), corners)
            heights = np.maximum(tb[:, 3:4], 1e-6), np.maximum(boxes[None, :, 3], 1e-6)
            return iou * np.minimum(*heights) / np.maximum(*heights)
        for i, t in enumerate(tracks):
            sim[i] = oks_iou(t.keypoints, keypoints, float(t.box[2] * t.box[3]), areas, self.sigmas, self.kpt_thr)
            weak = ~((keypoints[:, :, 2] > self.kpt_thr).any(axis=1)) | (not (t.keypoints[:, 2] > self.kpt_thr).any())
            if np.any(weak):
                sim[i, weak] = box_iou(xywh_to_xyxy(t.box), corners[weak])[0]
        return sim

    def update(self, frame: int, keypoints: np.ndarray, boxes: np.ndarray,
               known_ids: np.ndarray | None = None) -> np.ndarray:
        """Track ids of this frame's poses.

        Args:
            frame: frame index (increasing).
            keypoints: ``(M, K, 3)`` poses in image pixels.
            boxes: ``(M, 4)`` their boxes ``xywh``.
            known_ids: ``(M,)`` ids already known (a pose from a track's own propagated box), 0 = unknown.

        Returns:
            ``(M,)`` int64 track ids (>= 1).
        """
        keypoints = np.asarray(keypoints, dtype=np.float64).reshape(len(boxes), -1, 3)
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        ids = np.zeros(len(boxes), np.int64) if known_ids is None else np.asarray(known_ids, np.int64).copy()
        ids[[i for i, t in enumerate(ids) if t and t not in self.tracks]] = 0  # forgotten meanwhile: match again
        taken = set(int(t) for t in ids if t)
        free = [t for t in self.tracks.values() if t.track_id not in taken]
        todo = np.flatnonzero(ids == 0)
        sim = self.similarity(free, keypoints[todo], boxes[todo])
        while sim.size and sim.max() >= self.match_thr:
            i, j = np.unravel_index(int(np.argmax(sim)), sim.shape)
            ids[todo[j]] = free[i].track_id
            sim[i, :] = -1
            sim[:, j] = -1
        for j in np.flatnonzero(ids == 0):
            ids[j] = self.next_id
            self.next_id += 1
        for j, tid in enumerate(ids):
            t = self.tracks.get(int(tid))
            if t is None:
                self.tracks[int(tid)] = Track(int(tid), keypoints[j].copy(), boxes[j].copy(), frame)
            else:
                t.keypoints, t.box, t.last_frame, t.hits = keypoints[j].copy(), boxes[j].copy(), frame, t.hits + 1
        for tid in [tid for tid, t in self.tracks.items() if frame - t.last_frame > self.max_missed]:
            del self.tracks[tid]
        return ids
