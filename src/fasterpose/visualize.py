"""Drawing skeletons on images (torch free, OpenCV only).

Colours, limbs and keypoint sides come from :class:`fasterpose.keypoints.KeypointSet`: left side orange, right side
blue, centre line green (BGR).
"""

from __future__ import annotations

import numpy as np

from .keypoints import KeypointSet, get_keypoint_set

__all__ = ["draw_poses"]

_BOX_COLOR = (60, 220, 255)  # BGR yellow


def draw_poses(
    image: np.ndarray,
    keypoints: np.ndarray,
    keypoint_set: KeypointSet | str,
    kpt_thr: float = 0.3,
    boxes: np.ndarray | None = None,
    box_scores: np.ndarray | None = None,
    radius: int | None = None,
    thickness: int | None = None,
    copy: bool = True,
    labels: list[str] | None = None,
) -> np.ndarray:
    """Draw limbs, joints and optionally person boxes.

    Args:
        image: ``(H, W, 3)`` BGR uint8 image.
        keypoints: ``(M, K, 3)`` (or ``(K, 3)`` for one person) keypoints ``(x, y, score)`` in image pixels.
        keypoint_set: the layout (a :class:`KeypointSet` or its name, e.g. ``"coco17"``).
        kpt_thr: joints with a score below this are not drawn, nor limbs touching them.
        boxes: optional ``(M, 4)`` person boxes ``(x, y, w, h)`` to draw.
        box_scores: optional ``(M,)`` box scores printed above the boxes.
        radius: joint circle radius in pixels (default: from the image size).
        thickness: limb line thickness in pixels (default: from the image size).
        copy: draw on a copy (default) instead of in place.
        labels: optional text per person (e.g. its track id), written above its highest confident keypoint.

    Returns:
        The drawn ``(H, W, 3)`` BGR uint8 image.
    """
    import cv2

    kset = get_keypoint_set(keypoint_set) if isinstance(keypoint_set, str) else keypoint_set
    canvas = image.copy() if copy else image
    kpts = np.asarray(keypoints, dtype=np.float64)
    if kpts.size == 0:
        kpts = kpts.reshape(0, kset.num_keypoints, 3)
    if kpts.ndim == 2:
        kpts = kpts[None]
    if kpts.ndim != 3 or kpts.shape[1:] != (kset.num_keypoints, 3):
        raise ValueError(f"keypoints must be (M, {kset.num_keypoints}, 3) for keypoint set {kset.name}, "
                         f"got {np.shape(keypoints)}")
    size = max(canvas.shape[0], canvas.shape[1])
    radius = radius if radius is not None else max(2, int(round(size / 220)))
    thickness = thickness if thickness is not None else max(1, int(round(size / 320)))

    if boxes is not None:
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        for i, (x, y, w, h) in enumerate(boxes):
            p1, p2 = (int(round(x)), int(round(y))), (int(round(x + w)), int(round(y + h)))
            cv2.rectangle(canvas, p1, p2, _BOX_COLOR, thickness, cv2.LINE_AA)
            if box_scores is not None and i < len(box_scores):
                cv2.putText(canvas, f"{float(box_scores[i]):.2f}", (p1[0], max(p1[1] - 4, 10)),
                            cv2.FONT_HERSHEY_SIMPLEX, 0.4, _BOX_COLOR, 1, cv2.LINE_AA)

    limb_colors = kset.limb_colors
    kpt_colors = kset.keypoint_colors
    for person in kpts:
        finite = np.isfinite(person).all(axis=1)
        ok = finite & (person[:, 2] >= kpt_thr)
        for (a, b), color in zip(kset.skeleton, limb_colors):
            if ok[a] and ok[b]:
                pa = (int(round(person[a, 0])), int(round(person[a, 1])))
                pb = (int(round(person[b, 0])), int(round(person[b, 1])))
                cv2.line(canvas, pa, pb, color, thickness, cv2.LINE_AA)
        for k in np.flatnonzero(ok):
            center = (int(round(person[k, 0])), int(round(person[k, 1])))
            cv2.circle(canvas, center, radius, kpt_colors[k], -1, cv2.LINE_AA)
            cv2.circle(canvas, center, radius, (255, 255, 255), 1, cv2.LINE_AA)
    for person, text in zip(kpts, labels or []):
        ok = np.isfinite(person).all(axis=1) & (person[:, 2] >= kpt_thr)
        if ok.any():
            top = person[ok][np.argmin(person[ok, 1])]
            org = (int(round(top[0])) - 6 * len(text), max(int(round(top[1])) - 3 * radius, 12))
            cv2.putText(canvas, text, org, cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
            cv2.putText(canvas, text, org, cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return canvas
