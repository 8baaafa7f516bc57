"""PCK (percentage of correct keypoints) for any keypoint set, as the hand, face and animal benchmarks report it.

A keypoint is correct when its end-point error, divided by a per-person normaliser, is at most a threshold. Here
the normaliser is the person's (or object's) ground-truth box size, ``max(w, h)`` (MMPose's ``PCKAccuracy`` with
``norm_item="bbox"``), and the headline is PCK@0.2. The report adds:

* ``AUC``: the area under the PCK curve for thresholds 0 to :data:`AUC_MAX_THRESHOLD` (0.5) of the box size,
  divided by that range (trapezoid rule over :data:`AUC_STEPS` + 1 thresholds), so 1.0 means every keypoint within
  a zero-error radius;
* ``EPE``: the mean end-point error in pixels over labelled keypoints.

Only labelled ground-truth keypoints count. :func:`normalized_errors` and :func:`correct_fraction` are also what
MPII's PCKh (:mod:`fasterpose.evaluation.pckh`) is computed with: one definition of "correct".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["AUC_MAX_THRESHOLD", "AUC_STEPS", "PCK_THRESHOLD", "correct_fraction", "normalized_errors", "pck"]

#: Headline threshold (fraction of the box size).
PCK_THRESHOLD = 0.2
#: The AUC integrates PCK over thresholds ``0 .. AUC_MAX_THRESHOLD`` of the box size.
AUC_MAX_THRESHOLD = 0.5
AUC_STEPS = 50


def normalized_errors(pred: np.ndarray, gt: np.ndarray, norm: np.ndarray) -> np.ndarray:
    """``||pred - gt|| / norm`` per keypoint.

    Args:
        pred: ``(N, K, 2)`` predicted x, y.
        gt: ``(N, K, 2)`` ground truth x, y.
        norm: ``(N,)`` positive normalisers (box size, head size).

    Returns:
        ``(N, K)`` errors in units of ``norm`` (``inf`` where ``norm`` is not positive).
    """
    dist = np.linalg.norm(np.asarray(pred, np.float64) - np.asarray(gt, np.float64), axis=-1)
    norm = np.asarray(norm, dtype=np.float64).reshape(-1, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(norm > 0, dist / np.where(norm > 0, norm, 1.0), np.inf)


def correct_fraction(err: np.ndarray, visible: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Per keypoint: how many labelled keypoints have ``err <= threshold``, and how many are labelled.

    Returns:
        ``(correct (K,), count (K,))`` integer arrays.
    """
    vis = np.asarray(visible).astype(bool)
    return ((err <= threshold) & vis).sum(0), vis.sum(0)


def pck(pred: np.ndarray, gt: np.ndarray, visible: np.ndarray, box_sizes: np.ndarray,
        threshold: float = PCK_THRESHOLD, names: Sequence[str] | None = None) -> dict[str, Any]:
    """PCK@``threshold`` of the box size, its AUC over thresholds 0..0.5 and the mean end-point error.

    Args:
        pred: ``(N, K, 2)`` predictions in image pixels.
        gt: ``(N, K, 2)`` ground truth in image pixels.
        visible: ``(N, K)`` true where the ground-truth keypoint is labelled.
        box_sizes: ``(N,)`` ``max(w, h)`` of each ground-truth box, pixels.
        threshold: the headline threshold.
        names: keypoint names for ``per_keypoint`` (default ``"0"``, ``"1"``, ...).

    Returns:
        ``{"PCK": fraction in [0, 1], "AUC": [0, 1], "EPE": pixels, "threshold", "num_keypoints_labelled",
        "per_keypoint": {name: PCK or nan}}``; the fractions are ``nan`` when nothing is labelled.
    """
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    vis = np.asarray(visible).astype(bool)
    box_sizes = np.asarray(box_sizes, dtype=np.float64).reshape(-1)
    n, k = vis.shape if vis.ndim == 2 else (-1, -1)
    if pred.shape != (n, k, 2) or gt.shape != (n, k, 2) or box_sizes.shape != (n,):
        raise ValueError(f"pck: expected pred/gt (N, K, 2), visible (N, K), box_sizes (N,); got {pred.shape}, "
                         f"{gt.shape}, {vis.shape}, {box_sizes.shape}")
    vis = vis & (box_sizes > 0)[:, None]
    err = normalized_errors(pred, gt, box_sizes)
    total = int(vis.sum())
    correct, count = correct_fraction(err, vis, threshold)
    thresholds = np.linspace(0.0, AUC_MAX_THRESHOLD, AUC_STEPS + 1)
    curve = np.array([correct_fraction(err, vis, t)[0].sum() / total if total else np.nan for t in thresholds])
    auc = float(np.sum((curve[1:] + curve[:-1]) / 2 * np.diff(thresholds)) / AUC_MAX_THRESHOLD)
    pixel_err = np.linalg.norm(pred - gt, axis=-1)
    names = [str(i) for i in range(k)] if names is None else list(names)
    with np.errstate(divide="ignore", invalid="ignore"):
        per = correct / count
    return {
        "PCK": float(correct.sum() / total) if total else float("nan"),
        "AUC": auc,
        "EPE": float(pixel_err[vis].mean()) if total else float("nan"),
        "threshold": float(threshold),
        "num_keypoints_labelled": total,
        "per_keypoint": {name: float(v) for name, v in zip(names, per)},
    }
