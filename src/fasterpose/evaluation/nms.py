"""OKS-based non-maximum suppression of person poses (hard and soft), vectorised with numpy.

This is the recipe of SimpleBaseline / HRNet (``lib/nms/nms.py`` of ``HRNet/deep-high-resolution-net.pytorch``):
object keypoint similarity between two poses replaces the box IoU of ordinary NMS. The only deliberate
difference is the ``vis_thr`` mask, see :func:`oks_iou`. HRNet's defaults (``in_vis_thre=None`` and the COCO
sigmas) are also ours, so with default arguments the kept sets are identical.

No torch here: these run in the dataloader-free evaluation path and in onnxruntime-only deployments.
"""

from __future__ import annotations

import numpy as np

from ..keypoints import COCO17

__all__ = ["oks_iou", "oks_nms", "soft_oks_nms"]

_EPS = np.spacing(1)  # the epsilon HRNet adds to the mean area


def oks_iou(
    ref: np.ndarray,
    others: np.ndarray,
    ref_area: float,
    other_areas: np.ndarray,
    sigmas: np.ndarray | None = None,
    vis_thr: float | None = None,
) -> np.ndarray:
    """Object keypoint similarity between one pose and ``M`` others (HRNet's ``oks_iou``).

    For keypoint ``k``: ``e_k = d_k^2 / vars_k / ((ref_area + other_area) / 2 + eps) / 2`` with
    ``vars = (2 * sigmas)^2``, and the similarity is the mean of ``exp(-e_k)`` over keypoints.

    Args:
        ref: reference pose ``(K, 3)`` (x, y, score); a flat ``(3K,)`` array is accepted too.
        others: poses to compare ``(M, K, 3)`` (or flat ``(M, 3K)``).
        ref_area: area of the reference person (pixels^2).
        other_areas: areas of the others ``(M,)``.
        sigmas: per-keypoint OKS sigmas ``(K,)``; default: the COCO-17 sigmas.
        vis_thr: when given, only keypoints whose score is ``> vis_thr`` in **both** poses count; a pair with
            no such keypoint has similarity 0. (HRNet writes ``list(vg > t) and list(vd > t)``, which Python
            evaluates to the second mask only; we apply the intended "both" mask. HRNet never passes a
            threshold in its COCO evaluation, so its published numbers are unaffected.)

    Returns:
        ``(M,)`` float64 similarities in ``[0, 1]``.
    """
    ref = np.asarray(ref, dtype=np.float64).reshape(-1, 3)
    others = np.asarray(others, dtype=np.float64)
    others = others.reshape(others.shape[0], -1, 3) if others.size else others.reshape(0, ref.shape[0], 3)
    other_areas = np.asarray(other_areas, dtype=np.float64).reshape(-1)
    sigmas = COCO17.sigmas if sigmas is None else np.asarray(sigmas, dtype=np.float64)
    if others.shape[1] != ref.shape[0] or sigmas.shape[0] != ref.shape[0]:
        raise ValueError(f"oks_iou: ref has {ref.shape[0]} keypoints, others {others.shape[1]}, "
                         f"sigmas {sigmas.shape[0]}; they must agree")
    variances = (sigmas * 2) ** 2  # (K,)
    d2 = ((others[:, :, :2] - ref[None, :, :2]) ** 2).sum(-1)  # (M, K)
    e = d2 / variances[None, :] / ((ref_area + other_areas)[:, None] / 2 + _EPS) / 2
    sim = np.exp(-e)
    if vis_thr is None:
        return sim.mean(axis=1)
    mask = (ref[None, :, 2] > vis_thr) & (others[:, :, 2] > vis_thr)  # (M, K)
    count = mask.sum(axis=1)
    total = np.where(mask, sim, 0.0).sum(axis=1)
    return np.where(count > 0, total / np.maximum(count, 1), 0.0)


def _prepare(keypoints: np.ndarray, scores: np.ndarray, areas: np.ndarray) -> tuple[np.ndarray, ...]:
    keypoints = np.asarray(keypoints, dtype=np.float64)
    if keypoints.ndim == 2:  # flat (N, 3K)
        keypoints = keypoints.reshape(keypoints.shape[0], -1, 3)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    areas = np.asarray(areas, dtype=np.float64).reshape(-1)
    if keypoints.ndim != 3 or keypoints.shape[2] != 3 or not (len(keypoints) == len(scores) == len(areas)):
        raise ValueError(f"NMS expects keypoints (N, K, 3), scores (N,), areas (N,); got {keypoints.shape}, "
                         f"{scores.shape}, {areas.shape}")
    return keypoints, scores, areas


def oks_nms(
    keypoints: np.ndarray,
    scores: np.ndarray,
    areas: np.ndarray,
    thr: float = 0.9,
    sigmas: np.ndarray | None = None,
    vis_thr: float | None = None,
) -> np.ndarray:
    """Greedy OKS-NMS (HRNet's ``oks_nms``): keep the best pose, drop every pose with OKS ``> thr`` to it, repeat.

    Args:
        keypoints: ``(N, K, 3)`` poses (x, y, score) in image pixels, of one image.
        scores: ``(N,)`` pose scores (after rescoring, in the published recipe).
        areas: ``(N,)`` person areas used in the OKS normaliser (HRNet: the padded box ``w * h``).
        thr: suppression threshold; a pose is dropped when its OKS to a kept one is ``> thr`` (0.9 in HRNet).
        sigmas: per-keypoint OKS sigmas ``(K,)``; default COCO-17.
        vis_thr: see :func:`oks_iou`.

    Returns:
        ``(n_keep,)`` int64 indices into the inputs, highest score first.
    """
    keypoints, scores, areas = _prepare(keypoints, scores, areas)
    order = np.argsort(-scores, kind="stable")  # HRNet: scores.argsort()[::-1]; ties: lower index first
    keep: list[int] = []
    while order.size > 0:
        i = order[0]
        keep.append(int(i))
        rest = order[1:]
        ovr = oks_iou(keypoints[i], keypoints[rest], areas[i], areas[rest], sigmas, vis_thr)
        order = rest[ovr <= thr]
    return np.asarray(keep, dtype=np.int64)


def _soft_rescore(overlap: np.ndarray, scores: np.ndarray, thr: float, method: str) -> np.ndarray:
    """HRNet's ``rescore``: linear ``s * (1 - oks)`` where ``oks >= thr``, or Gaussian ``s * exp(-oks^2 / thr)``."""
    if method == "linear":
        out = scores.copy()
        hit = overlap >= thr
        out[hit] = scores[hit] * (1 - overlap[hit])
        return out
    if method == "gaussian":
        return scores * np.exp(-(overlap**2) / thr)
    raise ValueError(f"soft_oks_nms: method must be 'gaussian' or 'linear', not {method!r}")


def soft_oks_nms(
    keypoints: np.ndarray,
    scores: np.ndarray,
    areas: np.ndarray,
    thr: float = 0.3,
    sigmas: np.ndarray | None = None,
    vis_thr: float | None = None,
    max_dets: int = 20,
    method: str = "gaussian",
    return_scores: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Soft OKS-NMS, faithful to HRNet's ``soft_oks_nms``.

    Repeatedly take the highest-scoring remaining pose, then decay the scores of all remaining poses by their OKS
    to it (Gaussian ``s * exp(-oks^2 / thr)`` by default, or linear ``s * (1 - oks)`` for ``oks >= thr``),
    re-sort, and stop after ``max_dets`` poses (HRNet hard-codes 20). Nothing is dropped for a low decayed score;
    only the ``max_dets`` cap removes poses. Like HRNet, the caller normally keeps the *original* scores of the
    kept poses (HRNet discards the decayed ones); ``return_scores=True`` also returns the decayed scores.

    Note HRNet calls it with its ``OKS_THRE`` (0.9) as ``thr``; 0.3 here is the soft-NMS paper's Gaussian sigma.

    Args:
        keypoints: ``(N, K, 3)`` poses of one image.
        scores: ``(N,)`` pose scores.
        areas: ``(N,)`` person areas.
        thr: Gaussian decay parameter (or the linear method's overlap threshold).
        sigmas: per-keypoint OKS sigmas ``(K,)``; default COCO-17.
        vis_thr: see :func:`oks_iou`.
        max_dets: maximum number of poses kept.
        method: ``"gaussian"`` or ``"linear"``.
        return_scores: also return the decayed score of each kept pose.

    Returns:
        ``keep`` ``(n_keep,)`` int64 indices in selection order, or ``(keep, kept_scores)`` with
        ``kept_scores`` ``(n_keep,)`` the decayed score each pose had when it was selected.
    """
    keypoints, scores, areas = _prepare(keypoints, scores, areas)
    order = np.argsort(-scores, kind="stable")
    cur = scores[order]
    keep: list[int] = []
    kept_scores: list[float] = []
    while order.size > 0 and len(keep) < max_dets:
        i = order[0]
        keep.append(int(i))
        kept_scores.append(float(cur[0]))
        rest = order[1:]
        ovr = oks_iou(keypoints[i], keypoints[rest], areas[i], areas[rest], sigmas, vis_thr)
        cur = _soft_rescore(ovr, cur[1:], thr, method)
        resort = np.argsort(-cur, kind="stable")
        order = rest[resort]
        cur = cur[resort]
    keep_arr = np.asarray(keep, dtype=np.int64)
    if return_scores:
        return keep_arr, np.asarray(kept_scores, dtype=np.float64)
    return keep_arr
