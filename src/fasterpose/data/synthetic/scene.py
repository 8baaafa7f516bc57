"""One synthetic image: figures placed without too much overlap, drawn back to front over a background, and their
COCO annotations (keypoints with visibility from the owner mask, silhouette box, area, polygons)."""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np

from .background import _background, _occluder
from .config import SynthConfig
from .draw import _Canvas, _draw_figure, _sample_look
from .figure import _K, L_SHO, _build_figure, _figure_extent, _Placed, _unit


def _polygons(mask: np.ndarray) -> list[list[float]]:
    """COCO polygon segmentation (outer contours, simplified to ~1 px) of a binary mask."""
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    out = []
    for c in contours:
        c = cv2.approxPolyDP(c, 1.0, True).reshape(-1, 2)
        if len(c) >= 3:
            out.append([float(v) for v in c.ravel()])
    return out


def _cover(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over the smaller box's area."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return ix * iy / smaller if smaller > 0 else 0.0


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def render_sample(seed: int, index: int, size: tuple[int, int] = (256, 256),
                  config: SynthConfig | None = None) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Render image ``index`` of the set with ``seed``.

    Args:
        seed: dataset seed (split).
        index: image index within the set.
        size: ``(height, width)`` in pixels.
        config: knobs; defaults to :class:`SynthConfig()`.

    Returns:
        ``(image, persons)``: a BGR ``uint8`` image and per figure a dict with ``keypoints`` ``(17, 3)`` float
        (COCO ``x, y, v``), ``bbox`` ``[x, y, w, h]``, ``area``, ``yaw`` (body, degrees, 0 = facing the camera,
        +90 = facing image right), ``head_yaw`` (where the face points, same convention),
        ``facing`` (``front``/``back``/``profile``), ``depth_rank`` (0 = farthest), ``truncated``, ``visible_frac``
        (unoccluded share of the silhouette) and ``pose`` (pose family).
    """
    cfg = config or SynthConfig()
    h, w = int(size[0]), int(size[1])
    rng = np.random.default_rng([int(seed), int(index)])
    img = _background(rng, h, w, cfg)

    ks = np.arange(cfg.min_persons, cfg.max_persons + 1)
    pw = cfg.person_decay ** (ks - cfg.min_persons)
    n_persons = int(rng.choice(ks, p=pw / pw.sum()))
    placed: list[_Placed] = []
    boxes: list[np.ndarray] = []
    for _ in range(n_persons):
        fig = _build_figure(rng, cfg)
        fig.look.update(_sample_look(rng))
        roll = math.radians(float(np.clip(rng.normal(0, cfg.max_roll / 2.5), -cfg.max_roll, cfg.max_roll)))
        lo, hi = _figure_extent(fig)
        ext_h = float(hi[1] - lo[1])
        ok = False
        for _try in range(12):
            frac = rng.uniform(*cfg.height_range)
            scale = frac * h / ext_h
            pl = _Placed(fig, scale, roll, np.zeros(2))
            corners = np.array([[lo[0], lo[1], 0], [hi[0], lo[1], 0], [lo[0], hi[1], 0], [hi[0], hi[1], 0]])
            cp = pl.project(corners)
            bx0, by0 = cp.min(0)
            bx1, by1 = cp.max(0)
            bw, bh = bx1 - bx0, by1 - by0
            if rng.random() < cfg.truncation_prob:
                mx, my = 0.4 * bw, 0.35 * bh
            else:
                mx, my = -0.02 * w, -0.02 * h
            x_lo, x_hi = -bx0 - mx, w - bx1 + mx
            y_lo, y_hi = -by0 - my, h - by1 + my
            ox = rng.uniform(x_lo, x_hi) if x_hi > x_lo else (x_lo + x_hi) / 2
            oy = rng.uniform(y_lo, y_hi) if y_hi > y_lo else (y_lo + y_hi) / 2
            box = np.array([bx0 + ox, by0 + oy, bx1 + ox, by1 + oy])
            if all(_iou(box, b) <= cfg.max_overlap and _cover(box, b) <= cfg.max_cover for b in boxes):
                pl.offset = np.array([ox, oy])
                ok = True
                break
        if ok:
            placed.append(pl)
            boxes.append(box)
    # Painter's order: smaller figures are farther away.
    order = sorted(range(len(placed)), key=lambda i: placed[i].scale)
    placed = [placed[i] for i in order]

    light = _unit(np.array([rng.uniform(-1, 1), -1.0]))
    owner, masks, hulls = draw_figures(img, placed, light)
    if placed and rng.random() < cfg.occluder_prob:
        j = int(rng.integers(len(placed)))
        x, y, bw_, bh_ = cv2.boundingRect(masks[j])
        if bw_ > 0:
            _occluder(rng, img, owner, np.array([x, y, x + bw_, y + bh_], dtype=np.float64), 255)

    # Global photometric effects.
    if rng.random() < cfg.blur_prob:
        img = cv2.GaussianBlur(img, (3, 3), rng.uniform(0.5, 1.0))
    alpha, beta = rng.uniform(0.8, 1.2), rng.uniform(-20, 20)
    noise = rng.standard_normal((h, w, 3), dtype=np.float32) * np.float32(rng.uniform(0, cfg.noise_std))
    img = np.clip(img.astype(np.float32) * np.float32(alpha) + np.float32(beta) + noise, 0, 255).astype(np.uint8)
    return img, annotate_figures(placed, masks, hulls, owner)


def draw_figures(img: np.ndarray, placed: list[_Placed], light: np.ndarray
                 ) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """Draw ``placed`` figures (back to front, in list order) on ``img`` in place.

    Returns:
        ``owner`` ``(H, W)`` uint8 (0 background, ``i + 1`` figure ``i``; a caller may mark foreground objects 255),
        each figure's silhouette mask and its torso hull (for self-occlusion).
    """
    h, w = img.shape[:2]
    owner = np.zeros((h, w), dtype=np.uint8)
    masks, hulls = [], []
    for i, pl in enumerate(placed):
        mask = np.zeros((h, w), dtype=np.uint8)
        hulls.append(_draw_figure(_Canvas(img, mask), pl, light))
        owner[mask > 0] = i + 1
        masks.append(mask)
    return owner, masks, hulls


def annotate_figures(placed: list[_Placed], masks: list[np.ndarray], hulls: list[np.ndarray], owner: np.ndarray
                     ) -> list[dict[str, Any]]:
    """COCO annotations of drawn figures (see :func:`render_sample`); figures with no labelled keypoint are left
    out; ``index`` is the figure's position in ``placed``."""
    h, w = owner.shape
    persons: list[dict[str, Any]] = []
    for i, pl in enumerate(placed):
        mask = masks[i]
        area = int(cv2.countNonZero(mask))
        if area == 0:
            continue
        x, y, bw_, bh_ = cv2.boundingRect(mask)
        kp = pl.project(pl.fig.kpts)
        out = np.zeros((_K, 3))
        for j in range(_K):
            px, py = float(kp[j, 0]), float(kp[j, 1])
            if not (0 <= px <= w - 1 and 0 <= py <= h - 1) or not pl.fig.kpt_vis[j]:
                continue
            v = 2
            own = int(owner[int(round(py)), int(round(px))])
            if own != i + 1 and (own == 255 or own > i + 1):
                v = 1  # covered by a nearer figure or a foreground object
            elif j >= L_SHO and pl.fig.kpts[j, 2] > 0.02 and cv2.pointPolygonTest(
                    hulls[i].reshape(-1, 1, 2), (px, py), False) > 0:
                v = 1  # behind the figure's own torso
            # Clamp into the silhouette box (a keypoint can sit a fraction of a pixel outside the drawn mask).
            px = min(max(px, x), x + bw_ - 1e-3)
            py = min(max(py, y), y + bh_ - 1e-3)
            out[j] = (round(px, 2), round(py, 2), v)
        if not (out[:, 2] > 0).any():
            continue
        visible_frac = float(np.count_nonzero(owner[mask > 0] == i + 1)) / area
        yaw = pl.fig.yaw
        fh = pl.fig.fwd_head
        head_yaw = math.degrees(math.atan2(fh[0], -fh[2]))
        facing = "front" if abs(yaw) <= 50 else "back" if abs(yaw) >= 130 else "profile"
        truncated = bool((kp[:, 0] < 0).any() or (kp[:, 0] > w - 1).any() or (kp[:, 1] < 0).any()
                         or (kp[:, 1] > h - 1).any())
        persons.append({"keypoints": out, "bbox": [float(x), float(y), float(bw_), float(bh_)], "area": float(area),
                        "segmentation": _polygons(mask), "yaw": round(yaw, 2), "head_yaw": round(head_yaw, 2),
                        "facing": facing, "depth_rank": i, "truncated": truncated,
                        "visible_frac": round(visible_frac, 4), "pose": pl.fig.look["kind"], "index": i})
    return persons
