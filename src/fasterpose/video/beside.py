"""Detection beside pose: the box source runs in its own thread on frame ``t`` while the pose model tracks frames
``t+1, t+2, ...`` with boxes from the last poses; its boxes join the tracking at frame ``t + lag``.

Why a fixed lag: results and track ids must not depend on how fast the detector happens to be on this machine. The
detection of frame ``t`` is therefore merged at exactly frame ``t + lag`` (the pipeline waits for it there if it is
not ready), never "when it arrives". ``lag = 0`` is the synchronous pipeline. The detector's work overlaps the
pose model's when both release the GIL: onnxruntime and OpenCV (HOG) do, and so does PyTorch inside its operators.

A detection ``lag`` frames old is out of date for a person who moves: :func:`catch_up` moves each box by the motion
its track made since (matched by IoU to the track's box on the detection frame), plus one frame of that motion; a
box that matches no track is a new person and starts a track where it was seen.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from ..detect.boxes import box_iou, xywh_to_xyxy

__all__ = ["LaggedDetector", "catch_up"]


class LaggedDetector:
    """A box source run in one background thread; one detection in flight at a time.

    Args:
        source: a :class:`~fasterpose.detect.sources.BoxSource` (its thread budget is its own, e.g. the
            onnxruntime session's ``threads``).
        lag: frames between a detection's frame and the frame its boxes are merged into (>= 1).

    Attributes:
        calls: detections run; ``detector_ms``: their time in the detector thread; ``wait_ms``: time the pose
        thread waited for a detection that was not ready at its merge frame.
    """

    def __init__(self, source: Any, lag: int) -> None:
        if int(lag) < 1:
            raise ValueError(f"lag must be >= 1 (0 is the synchronous pipeline), got {lag}")
        self.source, self.lag = source, int(lag)
        self.calls, self.detector_ms, self.wait_ms = 0, 0.0, 0.0
        self._pool: ThreadPoolExecutor | None = None
        self._pending: tuple[int, Future] | None = None

    @property
    def pending(self) -> bool:
        """Whether a detection is in flight (a new one is not started until it is merged)."""
        return self._pending is not None

    def _detect(self, frame: np.ndarray, key: Any) -> np.ndarray:
        t0 = time.perf_counter()
        try:
            return self.source(frame, key)
        finally:
            self.detector_ms += 1e3 * (time.perf_counter() - t0)  # only this thread writes it

    def submit(self, index: int, frame: np.ndarray, key: Any) -> None:
        """Start the detection of frame ``index`` (a copy of the frame: the caller may draw on its own)."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fasterpose-detector")
        self.calls += 1
        self._pending = (index, self._pool.submit(self._detect, frame.copy(), key))

    def due(self, index: int) -> tuple[int, np.ndarray] | None:
        """``(detection frame, (M, 5) boxes)`` when frame ``index`` is the merge frame of the pending detection
        (waiting for it if needed; a detector's error is raised here), else ``None``."""
        if self._pending is None or index - self._pending[0] < self.lag:
            return None
        t_det, future = self._pending
        self._pending = None
        t0 = time.perf_counter()
        boxes = future.result()
        self.wait_ms += 1e3 * (time.perf_counter() - t0)
        return t_det, boxes

    def close(self) -> None:
        """Drop a pending detection and stop the thread (a new video, or the end)."""
        self._pending = None
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def _centre(box: np.ndarray) -> np.ndarray:
    return box[:2] + box[2:4] / 2


def catch_up(detections: np.ndarray, t_det: int, now: int, history: dict[int, dict[int, np.ndarray]],
             match_thr: float = 0.3) -> np.ndarray:
    """Boxes detected on frame ``t_det``, moved to frame ``now``.

    Each detection is matched (greedily, most overlapping first, IoU >= ``match_thr``) to a track's box on frame
    ``t_det``; it is moved by the track's box motion from ``t_det`` to ``now - 1`` plus one frame at the track's
    mean speed over its recent history. Unmatched detections (new people) stay where they were seen.

    Args:
        detections: ``(M, 5)`` boxes ``(x, y, w, h, score)`` of frame ``t_det``.
        t_det: the detection's frame; ``now``: the frame the boxes are for (``> t_det``).
        history: track id -> {frame: ``(4,)`` xywh box} of the recent frames.
        match_thr: least IoU between a detection and a track's box on ``t_det``.

    Returns:
        ``(M, 5)`` moved boxes, in the detections' order.
    """
    out = np.array(detections, np.float64).reshape(-1, 5)
    tracks = [(tid, h) for tid, h in sorted(history.items()) if t_det in h and now - 1 in h]
    if not len(out) or not tracks:
        return out
    then = np.stack([h[t_det] for _, h in tracks])
    sim = box_iou(xywh_to_xyxy(out[:, :4]), xywh_to_xyxy(then))
    while sim.size and sim.max() >= match_thr:
        i, j = np.unravel_index(int(np.argmax(sim)), sim.shape)  # ties: the first in row-major order (deterministic)
        h = tracks[j][1]
        first = min(h)  # the speed over the whole recent history (a single frame's pose-guided box is noisy)
        moved = _centre(h[now - 1]) - _centre(h[t_det])
        speed = (_centre(h[now - 1]) - _centre(h[first])) / (now - 1 - first) if now - 1 > first else np.zeros(2)
        out[i, :2] += moved + speed
        sim[i, :] = -1.0
        sim[:, j] = -1.0
    return out
