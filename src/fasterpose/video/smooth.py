"""Keypoint smoothing across frames: a one-euro filter (Casiez, Roussel and Vogel, CHI 2012) per track and keypoint.

The filter is a low-pass whose cutoff rises with speed: ``cutoff = min_cutoff + beta * |speed|``, so a still
keypoint is smoothed hard (jitter removed) and a moving one little (lag kept small). Two choices of ours:

* **Scale.** Speeds are measured in person heights per second (the track's box height), so the same ``beta``
  serves a person far away and one close to the camera, and any frame size.
* **Confidence.** The smoothing factor is scaled by ``min(1, score / score_ref)``: a keypoint the model is unsure of
  (occluded, blurred) moves less towards its new, probably wrong, position; a confident one is filtered as usual.
  The output score is the raw score.

Defaults (``min_cutoff`` 1 Hz, ``beta`` 1 per height/s, ``d_cutoff`` 1 Hz) are the paper's recommended starting
point with the speed normalised as above; see the README's video section for the measured effect.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class OneEuroConfig:
    """Parameters of :class:`OneEuroFilter`.

    Attributes:
        min_cutoff: cutoff frequency (Hz) of a still keypoint: lower = smoother, more lag.
        beta: cutoff increase per unit of speed (person heights per second): higher = less lag when moving.
        d_cutoff: cutoff (Hz) of the speed estimate.
        score_ref: keypoint score at and above which a keypoint is filtered with the full smoothing factor.
    """

    min_cutoff: float = 1.0
    beta: float = 1.0
    d_cutoff: float = 1.0
    score_ref: float = 0.5

    def __post_init__(self) -> None:
        for name in ("min_cutoff", "d_cutoff", "score_ref"):
            if not getattr(self, name) > 0:
                raise ValueError(f"one-euro filter: {name} must be > 0, got {getattr(self, name)}")
        if not self.beta >= 0:
            raise ValueError(f"one-euro filter: beta must be >= 0, got {self.beta}")


def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray:
    tau = 1.0 / (2 * math.pi * np.asarray(cutoff, dtype=np.float64))
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """One-euro filter of one track's ``(K, 2)`` keypoints."""

    def __init__(self, config: OneEuroConfig | None = None) -> None:
        self.config = config or OneEuroConfig()
        self.x: np.ndarray | None = None  # (K, 2) filtered position
        self.dx: np.ndarray | None = None  # (K, 2) filtered speed (pixels / s)
        self.t: float | None = None

    def __call__(self, keypoints: np.ndarray, t: float, height: float) -> np.ndarray:
        """Filtered ``(K, 3)`` keypoints at time ``t`` (seconds) for a person ``height`` pixels tall."""
        kp = np.asarray(keypoints, dtype=np.float64)
        if self.x is None or self.t is None or t <= self.t:
            self.x, self.dx, self.t = kp[:, :2].copy(), np.zeros_like(kp[:, :2]), t
            return kp.copy()
        c = self.config
        dt = t - self.t
        weight = np.clip(kp[:, 2:3] / c.score_ref, 0.0, 1.0)
        dx = (kp[:, :2] - self.x) / dt
        self.dx = self.dx + _alpha(c.d_cutoff, dt) * weight * (dx - self.dx)
        speed = np.linalg.norm(self.dx, axis=1, keepdims=True) / max(float(height), 1.0)
        a = _alpha(c.min_cutoff + c.beta * speed, dt) * weight
        self.x = self.x + a * (kp[:, :2] - self.x)
        self.t = t
        return np.concatenate([self.x, kp[:, 2:3]], axis=1)


class Smoother:
    """One :class:`OneEuroFilter` per track id; filters of tracks not seen for ``max_age`` seconds are dropped."""

    def __init__(self, config: OneEuroConfig | None = None, max_age: float = 2.0) -> None:
        self.config = config or OneEuroConfig()
        self.max_age = float(max_age)
        self.filters: dict[int, OneEuroFilter] = {}

    def reset(self) -> None:
        self.filters.clear()

    def __call__(self, track_ids: np.ndarray, keypoints: np.ndarray, boxes: np.ndarray, t: float) -> np.ndarray:
        """Smoothed ``(M, K, 3)`` keypoints of this frame's tracks ``(M,)`` with boxes ``(M, 4)`` at time ``t``."""
        out = np.asarray(keypoints, dtype=np.float64).copy()
        for i, tid in enumerate(np.asarray(track_ids).tolist()):
            f = self.filters.setdefault(int(tid), OneEuroFilter(self.config))
            out[i] = f(out[i], t, float(boxes[i][3]))
        for tid in [k for k, f in self.filters.items() if f.t is not None and t - f.t > self.max_age]:
            del self.filters[tid]
        return out
