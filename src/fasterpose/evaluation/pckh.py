"""MPII PCKh, following the evaluation of SimpleBaseline / HRNet (``lib/dataset/mpii.py::evaluate``).

A joint is correct when ``||pred - gt|| / head_size <= threshold`` (:func:`fasterpose.evaluation.pck.correct_fraction`,
shared with the box-size PCK of other keypoint sets); only visible ground-truth joints count.
``head_size`` is ``0.6 * ||head box diagonal||`` (``SC_BIAS = 0.6``) with the official head boxes of
``gt_valid.mat`` (:func:`load_mpii_gt_valid`, :func:`head_sizes_from_gt_valid`). Without that file,
:func:`head_sizes_from_joints` approximates it from the annotated head segment.

The reported numbers are HRNet's: Head (head_top), Shoulder, Elbow, Wrist, Hip, Knee, Ankle (mean of left and
right), ``Mean`` = all correct joints / all visible joints **excluding pelvis (6) and thorax (7)** (HRNet masks
them; this is its joint-count-weighted mean) at the first threshold, and ``Mean@t`` for the other thresholds.
HRNet's ``Mean@0.1`` is in fact read at threshold 0.11 (``pckAll[11]`` of ``arange(0, 0.51, 0.01)``); we
evaluate exactly at the requested threshold, so our ``Mean@0.1`` can be slightly lower than HRNet's.

The official ``gt_valid.mat`` coordinates are MATLAB 1-based: HRNet adds 1 to its 0-based predictions before
comparing. Pass predictions and ground truth in the same convention.

No torch here; scipy is needed only to read ``.mat`` files.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from ..keypoints import MPII16
from .pck import correct_fraction, normalized_errors

__all__ = [
    "HEAD_SIZE_FROM_SEGMENT",
    "PCKH_GROUPS",
    "SC_BIAS",
    "format_pckh_table",
    "head_sizes_from_gt_valid",
    "head_sizes_from_joints",
    "load_mpii_gt_valid",
    "pckh",
]

logger = logging.getLogger(__name__)

#: MPII's head-size factor: head size = SC_BIAS * head box diagonal.
SC_BIAS = 0.6
#: Fallback head size per unit of the upper_neck -> head_top segment: the official head box is roughly a square
#: whose side is about that segment's length L, so its diagonal is ~sqrt(2) L and 0.6 * sqrt(2) * L ~ 0.85 L.
#: An approximation: numbers computed with it are close to, but not, official PCKh.
HEAD_SIZE_FROM_SEGMENT = SC_BIAS * math.sqrt(2.0)

_IDX = {n: i for i, n in enumerate(MPII16.names)}
#: HRNet's reported groups -> MPII-16 joint indices (a group's value is the mean of its joints' PCKh).
PCKH_GROUPS: dict[str, tuple[int, ...]] = {
    "Head": (_IDX["head_top"],),
    "Shoulder": (_IDX["l_shoulder"], _IDX["r_shoulder"]),
    "Elbow": (_IDX["l_elbow"], _IDX["r_elbow"]),
    "Wrist": (_IDX["l_wrist"], _IDX["r_wrist"]),
    "Hip": (_IDX["l_hip"], _IDX["r_hip"]),
    "Knee": (_IDX["l_knee"], _IDX["r_knee"]),
    "Ankle": (_IDX["l_ankle"], _IDX["r_ankle"]),
}
_EXCLUDED_FROM_MEAN = (_IDX["pelvis"], _IDX["thorax"])


def _thr_key(t: float) -> str:
    return f"{t:g}"


def pckh(
    pred: np.ndarray,
    gt: np.ndarray,
    visible: np.ndarray,
    head_sizes: np.ndarray,
    thresholds: Sequence[float] = (0.5, 0.1),
) -> dict[str, Any]:
    """PCKh of MPII-16 predictions, in percent, HRNet style.

    Args:
        pred: ``(N, 16, 2)`` predicted joints (x, y).
        gt: ``(N, 16, 2)`` ground-truth joints, same convention as ``pred``.
        visible: ``(N, 16)`` 1 where the ground-truth joint is annotated (MPII ``1 - jnt_missing``).
        head_sizes: ``(N,)`` normalisers (``0.6 * head box diagonal``), positive.
        thresholds: PCKh thresholds; the first one gives the per-group numbers and ``Mean``, the others
            ``Mean@t``.

    Returns:
        ``{"Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle", "Mean"}`` at ``thresholds[0]``,
        ``"Mean@<t>"`` for the other thresholds, ``"per_joint": {"<t>": [16 floats]}`` for every threshold,
        ``"joint_count": [16 ints]`` and ``"thresholds"``. A joint never visible has PCKh ``nan``.
    """
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    vis = np.asarray(visible).astype(bool)
    head_sizes = np.asarray(head_sizes, dtype=np.float64).reshape(-1)
    k = MPII16.num_keypoints
    n = gt.shape[0]
    if pred.shape != (n, k, 2) or gt.shape != (n, k, 2) or vis.shape != (n, k) or head_sizes.shape != (n,):
        raise ValueError(f"pckh: expected pred/gt (N, {k}, 2), visible (N, {k}), head_sizes (N,); got "
                         f"{pred.shape}, {gt.shape}, {vis.shape}, {head_sizes.shape}")
    bad = np.flatnonzero(vis.any(1) & ~(np.isfinite(head_sizes) & (head_sizes > 0)))
    if bad.size:
        raise ValueError(f"pckh: head_sizes must be positive and finite; samples {bad[:5].tolist()} "
                         f"({bad.size} in all) are not (mark their joints not visible or use the official head boxes)")
    thresholds = tuple(float(t) for t in thresholds)
    if not thresholds:
        raise ValueError("pckh: at least one threshold is needed")
    err = normalized_errors(pred, gt, head_sizes)  # (N, K)
    mean_mask = np.ones(k, dtype=bool)
    mean_mask[list(_EXCLUDED_FROM_MEAN)] = False
    out: dict[str, Any] = {"thresholds": list(thresholds), "joint_count": vis.sum(0).tolist(), "per_joint": {}}
    for j, t in enumerate(thresholds):
        correct, count = correct_fraction(err, vis, t)  # (K,), (K,)
        with np.errstate(invalid="ignore", divide="ignore"):
            per_joint = 100.0 * correct / count
        total = count[mean_mask].sum()
        mean = 100.0 * correct[mean_mask].sum() / total if total else float("nan")
        out["per_joint"][_thr_key(t)] = [float(v) for v in per_joint]
        if j == 0:
            for name, idx in PCKH_GROUPS.items():
                out[name] = float(np.mean(per_joint[list(idx)]))
            out["Mean"] = float(mean)
        else:
            out[f"Mean@{_thr_key(t)}"] = float(mean)
    return out


def load_mpii_gt_valid(mat_path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read the official MPII validation ground truth (``annot/gt_valid.mat`` of HRNet / SimpleBaseline).

    Args:
        mat_path: path of ``gt_valid.mat``.

    Returns:
        ``{"joints": (N, 16, 2) 1-based MATLAB pixels, "visible": (N, 16) bool, "head_sizes": (N,)}``.

    Raises:
        DataError: missing/unreadable file or missing ``pos_gt_src`` / ``jnt_missing`` / ``headboxes_src``.
    """
    mat = _load_mat(mat_path, ("pos_gt_src", "jnt_missing", "headboxes_src"))
    joints = np.transpose(np.asarray(mat["pos_gt_src"], dtype=np.float64), (2, 0, 1))  # (16, 2, N) -> (N, 16, 2)
    visible = np.asarray(mat["jnt_missing"]).T == 0  # (16, N) -> (N, 16)
    return {"joints": joints, "visible": visible, "head_sizes": _head_sizes(mat["headboxes_src"], mat_path)}


def head_sizes_from_gt_valid(mat_path: str | os.PathLike) -> np.ndarray:
    """Official MPII head sizes: ``0.6 * ||headboxes_src[1] - headboxes_src[0]||`` per person (as HRNet).

    Args:
        mat_path: path of ``gt_valid.mat`` (``headboxes_src`` is ``(2 corners, 2 xy, N)``).

    Returns:
        ``(N,)`` head sizes in pixels.
    """
    mat = _load_mat(mat_path, ("headboxes_src",))
    return _head_sizes(mat["headboxes_src"], mat_path)


def _head_sizes(headboxes: Any, mat_path: str | os.PathLike) -> np.ndarray:
    hb = np.asarray(headboxes, dtype=np.float64)
    if hb.ndim != 3 or hb.shape[:2] != (2, 2):
        raise DataError(f"{mat_path}: 'headboxes_src' has shape {hb.shape}, expected (2, 2, N); "
                        "is this the official gt_valid.mat?")
    return np.linalg.norm(hb[1] - hb[0], axis=0) * SC_BIAS


def _load_mat(mat_path: str | os.PathLike, keys: Sequence[str]) -> Mapping[str, Any]:
    path = Path(mat_path)
    if not path.is_file():
        raise DataError(f"{path}: MPII ground-truth file not found; pass the official annot/gt_valid.mat "
                        "(distributed with HRNet/SimpleBaseline's MPII annotations)")
    try:
        from scipy.io import loadmat
    except ImportError:  # pragma: no cover - scipy is in the 'mpii' extra
        raise DataError("reading .mat files needs scipy: pip install 'fasterpose[mpii]'") from None
    try:
        mat = loadmat(str(path))
    except Exception as e:  # scipy raises several types for non-.mat input
        raise DataError(f"{path}: cannot be read as a MATLAB .mat file ({e})") from None
    missing = [key for key in keys if key not in mat]
    if missing:
        raise DataError(f"{path}: missing {', '.join(map(repr, missing))}; is this the official gt_valid.mat?")
    return mat


def head_sizes_from_joints(gt: np.ndarray, visible: np.ndarray, factor: float = HEAD_SIZE_FROM_SEGMENT) -> np.ndarray:
    """Approximate head sizes from the annotated head segment when the official head boxes are unavailable.

    ``head_size = factor * ||head_top - upper_neck||`` with ``factor = 0.6 * sqrt(2) ~ 0.85``: MPII's head box is
    roughly a square whose side is about the neck-to-top distance, so its diagonal is ~sqrt(2) times it and
    SC_BIAS (0.6) is applied as for the official boxes. This is an approximation of official PCKh.

    Args:
        gt: ``(N, 16, 2)`` ground-truth joints.
        visible: ``(N, 16)`` visibility.
        factor: multiplier of the segment length.

    Returns:
        ``(N,)`` head sizes; ``nan`` where upper_neck or head_top is not visible (or they coincide).
    """
    gt = np.asarray(gt, dtype=np.float64)
    vis = np.asarray(visible).astype(bool)
    neck, top = _IDX["upper_neck"], _IDX["head_top"]
    length = np.linalg.norm(gt[:, top] - gt[:, neck], axis=-1)
    ok = vis[:, top] & vis[:, neck] & (length > 0)
    if not ok.all():
        logger.warning("head_sizes_from_joints: %d of %d persons have no usable upper_neck/head_top segment",
                       int((~ok).sum()), len(ok))
    return np.where(ok, factor * length, np.nan)


def format_pckh_table(result: Mapping[str, Any], digits: int = 2) -> str:
    """HRNet's PCKh line as a markdown table: Head .. Ankle, Mean and the ``Mean@t`` columns."""
    names = [*PCKH_GROUPS, "Mean"] + [k for k in result if k.startswith("Mean@")]
    cells = [f"{result[n]:.{digits}f}" for n in names]
    widths = [max(len(n), len(c)) for n, c in zip(names, cells)]
    header = "| " + " | ".join(n.ljust(w) for n, w in zip(names, widths)) + " |"
    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    row = "| " + " | ".join(c.rjust(w) for c, w in zip(cells, widths)) + " |"
    return "\n".join((header, rule, row))
