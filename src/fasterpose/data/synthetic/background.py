"""Backgrounds (gradient, low-frequency noise, clutter shapes, limb-like distractors) and foreground occluders."""

from __future__ import annotations

import math

import cv2
import numpy as np

from .config import SynthConfig
from .draw import _SKIN, _Canvas, _hsv_color, _shade


def _background(rng: np.random.Generator, h: int, w: int, cfg: SynthConfig) -> np.ndarray:
    c0, c1 = _hsv_color(rng, (0, 0.7), (0.2, 0.95)), _hsv_color(rng, (0, 0.7), (0.2, 0.95))
    ang = rng.uniform(0, 2 * np.pi)
    gy, gx = np.linspace(-0.5, 0.5, h, dtype=np.float32)[:, None], np.linspace(-0.5, 0.5, w, dtype=np.float32)[None]
    t = np.clip(gx * math.cos(ang) + gy * math.sin(ang) + 0.5, 0, 1)[..., None]
    img = c0.astype(np.float32) * (1 - t) + c1.astype(np.float32) * t
    lo = rng.normal(0, rng.uniform(5, 30), (int(rng.integers(3, 9)), int(rng.integers(3, 9)), 3)).astype(np.float32)
    img += cv2.resize(lo, (w, h), interpolation=cv2.INTER_CUBIC)
    img = np.clip(img, 0, 255).astype(np.uint8)
    n = int(rng.poisson(10 * cfg.clutter))
    diag = math.hypot(h, w)
    for _ in range(n):
        col = _shade(_hsv_color(rng, (0, 1), (0.1, 1)), 1.0)
        kind = rng.integers(5)
        cx, cy = rng.uniform(-0.1, 1.1) * w, rng.uniform(-0.1, 1.1) * h
        sz = rng.uniform(0.03, 0.3) * diag
        if kind == 0:
            p0 = (int(cx), int(cy))
            cv2.rectangle(img, p0, (int(cx + rng.uniform(-1, 1) * sz), int(cy + rng.uniform(-1, 1) * sz)), col,
                          -1 if rng.random() < 0.7 else int(rng.integers(1, 4)))
        elif kind == 1:
            cv2.circle(img, (int(cx), int(cy)), int(sz / 2), col, -1 if rng.random() < 0.7 else int(rng.integers(1, 4)),
                       cv2.LINE_AA)
        elif kind == 2:
            a = rng.uniform(0, np.pi)
            d = np.array([math.cos(a), math.sin(a)]) * sz
            cv2.line(img, (int(cx - d[0]), int(cy - d[1])), (int(cx + d[0]), int(cy + d[1])), col,
                     int(rng.integers(1, 5)), cv2.LINE_AA)
        elif kind == 3:
            pts = (np.array([cx, cy]) + rng.normal(0, sz / 2, (int(rng.integers(3, 6)), 2))).astype(np.int32)
            cv2.fillPoly(img, [pts], col, cv2.LINE_AA)
        else:
            cv2.ellipse(img, (int(cx), int(cy)), (int(sz / 2), int(sz / 5) + 1), float(rng.uniform(0, 180)), 0, 360,
                        col, -1, cv2.LINE_AA)
    # Limb-like distractors: shaded two-segment capsules in skin / clothing colours.
    canvas = _Canvas(img, None)
    light = np.array([-0.6, -0.8])
    for _ in range(int(rng.integers(0, cfg.max_distractors + 1))):
        col = (np.clip(_SKIN[rng.integers(len(_SKIN))] + rng.normal(0, 8, 3), 0, 255) if rng.random() < 0.5
               else _hsv_color(rng, (0.2, 1), (0.3, 1)))
        a = np.array([rng.uniform(0, w), rng.uniform(0, h)])
        ln = rng.uniform(0.1, 0.25) * h
        ang1 = rng.uniform(0, 2 * np.pi)
        b = a + ln * np.array([math.cos(ang1), math.sin(ang1)])
        ang2 = ang1 + rng.uniform(-2.0, 2.0)
        c = b + ln * rng.uniform(0.7, 1.0) * np.array([math.cos(ang2), math.sin(ang2)])
        rad = rng.uniform(0.012, 0.03) * h
        canvas.capsule(a, b, rad, col, light)
        canvas.capsule(b, c, rad * 0.85, col, light)
    return img


def _occluder(rng: np.random.Generator, img: np.ndarray, owner: np.ndarray, target: np.ndarray, oid: int) -> None:
    """Draw a foreground object overlapping part of ``target`` box (x0, y0, x1, y1) and mark it in ``owner``."""
    x0, y0, x1, y1 = target
    bw, bh = x1 - x0, y1 - y0
    col = _shade(_hsv_color(rng, (0, 1), (0.2, 1)), 1.0)
    if rng.random() < 0.5:  # post / bar crossing the figure
        if rng.random() < 0.5:
            cx = rng.uniform(x0, x1)
            hw = rng.uniform(0.06, 0.15) * bw
            p0, p1 = (int(cx - hw), -5), (int(cx + hw), img.shape[0] + 5)
        else:
            cy = rng.uniform(y0 + 0.45 * bh, y1)
            hh = rng.uniform(0.05, 0.12) * bh
            p0, p1 = (int(x0 - 0.3 * bw), int(cy - hh)), (int(x1 + 0.3 * bw), int(cy + hh))
        cv2.rectangle(img, p0, p1, col, -1)
        cv2.rectangle(img, p0, p1, _shade(np.array(col), 0.6), 1)
        cv2.rectangle(owner, p0, p1, oid, -1)
    else:  # box or ball in front of the legs / a side
        c = (int(rng.uniform(x0, x1)), int(rng.uniform(y0 + 0.5 * bh, y1 + 0.1 * bh)))
        ax = (int(rng.uniform(0.15, 0.35) * bw) + 2, int(rng.uniform(0.1, 0.25) * bh) + 2)
        cv2.ellipse(img, c, ax, 0, 0, 360, col, -1, cv2.LINE_AA)
        cv2.ellipse(owner, c, ax, 0, 0, 360, oid, -1)
