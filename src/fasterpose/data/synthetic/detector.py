"""A simulated person detector for the synthetic images: jittered, scored GT boxes, duplicates, misses and false
positives, as COCO detection results."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .config import SynthConfig
from .scene import _iou


def _detections(rng: np.random.Generator, persons: list[dict[str, Any]], image_id: int, size: tuple[int, int],
                cfg: SynthConfig) -> list[dict[str, Any]]:
    h, w = size
    dets: list[dict[str, Any]] = []

    def clip_box(x0: float, y0: float, x1: float, y1: float) -> list[float] | None:
        x0, x1 = max(0.0, x0), min(float(w), x1)
        y0, y1 = max(0.0, y0), min(float(h), y1)
        if x1 - x0 < 2 or y1 - y0 < 2:
            return None
        return [round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2)]

    for p in persons:
        x, y, bw, bh = p["bbox"]
        n_vis = int((p["keypoints"][:, 2] > 0).sum())
        hard = bh < 0.5 * h or p["visible_frac"] < 0.6 or n_vis < 6
        if hard and rng.random() < cfg.det_miss_prob:
            continue
        j = cfg.det_jitter
        cx, cy = x + bw / 2 + rng.normal(0, j) * bw, y + bh / 2 + rng.normal(0, j) * bh
        nw, nh = bw * math.exp(rng.normal(0, j * 1.2)), bh * math.exp(rng.normal(0, j * 1.2))
        box = clip_box(cx - nw / 2, cy - nh / 2, cx + nw / 2, cy + nh / 2)
        if box is None:
            continue
        iou = _iou(np.array([x, y, x + bw, y + bh]), np.array([box[0], box[1], box[0] + box[2], box[1] + box[3]]))
        score = 0.98 - 1.2 * (1 - iou) - 0.35 * (1 - p["visible_frac"]) - 0.02 * (17 - n_vis) + rng.normal(0, 0.04)
        dets.append({"image_id": image_id, "category_id": 1, "bbox": box, "score": round(float(np.clip(score, 0.05,
                                                                                                      0.999)), 4)})
        if rng.random() < 0.2:  # a duplicate, looser box with a lower score (as before NMS in real detectors)
            s2 = rng.uniform(1.05, 1.3)
            box2 = clip_box(cx - nw * s2 / 2, cy - nh * s2 / 2, cx + nw * s2 / 2, cy + nh * s2 / 2)
            if box2 is not None:
                dets.append({"image_id": image_id, "category_id": 1, "bbox": box2,
                             "score": round(float(rng.uniform(0.05, 0.35)), 4)})
    n_fp = int(rng.poisson(cfg.det_false_positives))
    if not dets:
        n_fp = max(n_fp, 1)
    for _ in range(n_fp):
        bh = rng.uniform(0.15, 0.6) * h
        bw = bh * rng.uniform(0.3, 0.8)
        x0, y0 = rng.uniform(0, max(1.0, w - bw)), rng.uniform(0, max(1.0, h - bh))
        box = clip_box(x0, y0, x0 + bw, y0 + bh)
        if box is not None:
            dets.append({"image_id": image_id, "category_id": 1, "bbox": box,
                         "score": round(float(rng.uniform(0.02, 0.3)), 4)})
    return dets
