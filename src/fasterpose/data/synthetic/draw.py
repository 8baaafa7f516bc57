"""Drawing a placed figure: clothes, skin and hair colours (the look), shaded capsules and polygons drawn at once on
the image and on the figure's silhouette mask, back to front."""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np

from .figure import (
    L_ANK,
    L_EAR,
    L_ELB,
    L_EYE,
    L_HIP,
    L_KNE,
    L_SHO,
    L_WRI,
    NOSE,
    R_ANK,
    R_EAR,
    R_ELB,
    R_EYE,
    R_HIP,
    R_KNE,
    R_SHO,
    R_WRI,
    _Placed,
)

_SKIN = np.array([[180, 200, 240], [150, 180, 225], [110, 150, 200], [80, 115, 165], [55, 80, 120], [40, 60, 95]],
                 dtype=np.float64)  # BGR
_HAIR = np.array([[20, 20, 25], [30, 45, 70], [40, 80, 130], [90, 150, 200], [150, 150, 150], [20, 30, 110]],
                 dtype=np.float64)


def _hsv_color(rng: np.random.Generator, s: tuple[float, float], v: tuple[float, float]) -> np.ndarray:
    hsv = np.uint8([[[rng.integers(0, 180), rng.uniform(*s) * 255, rng.uniform(*v) * 255]]])
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0].astype(np.float64)


def _sample_look(rng: np.random.Generator) -> dict[str, Any]:
    skin = np.clip(_SKIN[rng.integers(len(_SKIN))] + rng.normal(0, 8, 3), 0, 255)
    shirt = _hsv_color(rng, (0.2, 1.0), (0.3, 1.0)) if rng.random() < 0.85 else np.full(3, rng.uniform(30, 240))
    pants = _hsv_color(rng, (0.1, 0.8), (0.15, 0.7))
    shoes = np.full(3, 25.0) if rng.random() < 0.6 else _hsv_color(rng, (0.0, 0.6), (0.6, 1.0))
    hair = np.clip(_HAIR[rng.integers(len(_HAIR))] + rng.normal(0, 6, 3), 0, 255)
    accent = _hsv_color(rng, (0.0, 1.0), (0.1, 1.0))
    return {"skin": skin, "shirt": shirt, "pants": pants, "shoes": shoes, "hair": hair, "accent": accent,
            "sleeves": int(rng.choice(3, p=[0.45, 0.4, 0.15])),  # 0 long, 1 short, 2 none
            "shorts": bool(rng.random() < 0.25), "hair_style": int(rng.choice(3, p=[0.6, 0.3, 0.1])),  # short/long/bald
            "buttons": bool(rng.random() < 0.5)}


def _shade(c: np.ndarray, f: float) -> tuple[float, float, float]:
    if f >= 1:
        c = c + (255 - c) * (f - 1)
    else:
        c = c * f
    return (float(c[0]), float(c[1]), float(c[2]))


_SHIFT = 4
_ONE = 1 << _SHIFT


def _fix(p: np.ndarray) -> tuple[int, int]:
    return int(round(float(p[0]) * _ONE)), int(round(float(p[1]) * _ONE))


class _Canvas:
    """Draws the same shapes on the colour image and on one person's silhouette mask (sub-pixel, shift=4)."""

    def __init__(self, image: np.ndarray, mask: np.ndarray | None) -> None:
        self.image, self.mask = image, mask

    def capsule(self, a: np.ndarray, b: np.ndarray, radius: float, color: np.ndarray, light: np.ndarray,
                outline: bool = True) -> None:
        t = max(1, int(round(2 * radius)))
        pa, pb = _fix(a), _fix(b)
        if outline:
            cv2.line(self.image, pa, pb, _shade(color, 0.55), t + 2, cv2.LINE_AA, _SHIFT)
        cv2.line(self.image, pa, pb, _shade(color, 1.0), t, cv2.LINE_AA, _SHIFT)
        if radius >= 2.0:
            off = light * radius * 0.35
            cv2.line(self.image, _fix(a + off), _fix(b + off), _shade(color, 1.22), max(1, int(t * 0.35)),
                     cv2.LINE_AA, _SHIFT)
        if self.mask is not None:
            cv2.line(self.mask, pa, pb, 255, t, cv2.LINE_8, _SHIFT)

    def polygon(self, pts: np.ndarray, color: np.ndarray, light: np.ndarray) -> None:
        hull = cv2.convexHull(np.round(pts * _ONE).astype(np.int32))
        cv2.fillConvexPoly(self.image, hull, _shade(color, 1.0), cv2.LINE_AA, _SHIFT)
        cv2.polylines(self.image, [hull], True, _shade(color, 0.55), 1, cv2.LINE_AA, _SHIFT)
        c = pts.mean(axis=0)
        inner = (pts - c) * 0.55 + c + light * float(np.ptp(pts[:, 0]) + 1) * 0.12
        hull2 = cv2.convexHull(np.round(inner * _ONE).astype(np.int32))
        cv2.fillConvexPoly(self.image, hull2, _shade(color, 1.12), cv2.LINE_AA, _SHIFT)
        if self.mask is not None:
            cv2.fillConvexPoly(self.mask, hull, 255, cv2.LINE_8, _SHIFT)

    def ellipse(self, c: np.ndarray, axes: tuple[float, float], angle: float, color: np.ndarray,
                outline: bool = True, to_mask: bool = True) -> None:
        ax = (max(1, int(round(axes[0] * _ONE))), max(1, int(round(axes[1] * _ONE))))
        cv2.ellipse(self.image, _fix(c), ax, angle, 0, 360, _shade(color, 1.0), -1, cv2.LINE_AA, _SHIFT)
        if outline:
            cv2.ellipse(self.image, _fix(c), ax, angle, 0, 360, _shade(color, 0.55), 1, cv2.LINE_AA, _SHIFT)
        if to_mask and self.mask is not None:
            cv2.ellipse(self.mask, _fix(c), ax, angle, 0, 360, 255, -1, cv2.LINE_8, _SHIFT)

    def dot(self, c: np.ndarray, radius: float, color: tuple[float, float, float] | np.ndarray) -> None:
        col = tuple(float(x) for x in color)
        cv2.circle(self.image, _fix(c), max(1, int(round(radius * _ONE))), col, -1, cv2.LINE_AA, _SHIFT)



def _draw_figure(canvas: _Canvas, pl: _Placed, light: np.ndarray) -> np.ndarray:
    """Draw a figure back to front; returns its projected torso hull (pixels) for self-occlusion tests."""
    fig, look, s = pl.fig, pl.fig.look, pl.scale
    k, ex, dm = fig.kpts, fig.extra, fig.dims
    P = pl.project
    kp = P(k)
    parts: list[tuple[float, int, Any]] = []  # (depth, tie-break, drawer)
    order = 0

    def add(z: float, fn: Any) -> None:
        nonlocal order
        parts.append((z, order, fn))
        order += 1

    sleeves, shorts = look["sleeves"], look["shorts"]
    upper_c = look["shirt"] if sleeves < 2 else look["skin"]
    lower_c = look["shirt"] if sleeves == 0 else look["skin"]
    shin_c = look["skin"] if shorts else look["pants"]
    for sho, elb, wri, h in ((L_SHO, L_ELB, L_WRI, "hand_l"), (R_SHO, R_ELB, R_WRI, "hand_r")):
        def arm(sho: int = sho, elb: int = elb, wri: int = wri, h: str = h) -> None:
            canvas.capsule(kp[sho], kp[elb], dm["arm_r"] * s, upper_c, light)
            canvas.capsule(kp[elb], kp[wri], dm["forearm_r"] * s, lower_c, light)
            canvas.capsule(kp[wri], P(ex[h]), dm["forearm_r"] * s * 1.15, look["skin"], light)
        add(float(k[sho, 2] + k[elb, 2] + k[wri, 2]) / 3 - 0.01, arm)
    for hip, kne, ank, toe, heel in ((L_HIP, L_KNE, L_ANK, "toe_l", "heel_l"),
                                     (R_HIP, R_KNE, R_ANK, "toe_r", "heel_r")):
        def leg(hip: int = hip, kne: int = kne, ank: int = ank, toe: str = toe, heel: str = heel) -> None:
            canvas.capsule(kp[hip], kp[kne], dm["thigh_r"] * s, look["pants"], light)
            canvas.capsule(kp[kne], kp[ank], dm["shin_r"] * s, shin_c, light)
            canvas.capsule(P(ex[heel]), P(ex[toe]), dm["shin_r"] * s * 0.75, look["shoes"], light)
        add(float(k[hip, 2] + k[kne, 2] + k[ank, 2]) / 3 + 0.005, leg)

    torso_pts = P(np.concatenate([ex["ring_sho"], ex["ring_mid"]]))
    hip_pts = P(np.concatenate([ex["ring_mid"], ex["ring_hip"]]))
    front = fig.fwd_torso[2] < -0.15

    def torso() -> None:
        canvas.polygon(hip_pts, look["pants"], light)
        canvas.polygon(torso_pts, look["shirt"], light)
        if front:  # collar and buttons/logo only on the front of the shirt
            nk = P(ex["sho_c"] + fig.fwd_torso * dm["depth"] * 0.6)
            dn = pl.rot2d(ex["up_t"][:2]) * -1 * s
            lt = pl.rot2d(ex["left_t"][:2]) * s
            v_pts = np.array([nk + lt * 0.045, nk - lt * 0.045, nk + dn * 0.07])
            cv2.fillConvexPoly(canvas.image, np.round(v_pts * _ONE).astype(np.int32), _shade(look["skin"], 1.0),
                               cv2.LINE_AA, _SHIFT)
            if look["buttons"]:
                for j in range(3):
                    canvas.dot(nk + dn * (0.1 + 0.06 * j), max(1.0, 0.008 * s), _shade(look["accent"], 1.0))
            else:
                canvas.dot(P(ex["front_c"]), max(1.5, 0.035 * s), _shade(look["accent"], 1.0))

    add(0.0, torso)

    def head() -> None:
        r = dm["head_r"] * s
        hc = P(ex["head_c"])
        canvas.capsule(P(ex["sho_c"]), P(ex["neck"] + fig.up_head * dm["head_r"] * 0.3), 0.028 * s, look["skin"],
                       light, outline=False)
        up2 = pl.rot2d(fig.up_head[:2])
        ang = math.degrees(math.atan2(up2[1], up2[0])) + 90.0
        fh = fig.fwd_head
        hair_c = P(ex["head_c"] - fh * dm["head_r"] * 0.3 + fig.up_head * dm["head_r"] * 0.22)
        hair_ax = (r * 1.0, r * 1.08)
        style = look["hair_style"]
        facing = fh[2] < 0
        long_c = P(ex["head_c"] - fh * dm["head_r"] * 0.5 - fig.up_head * dm["head_r"] * 0.7)
        if style != 2 and facing:
            canvas.ellipse(hair_c, hair_ax, ang, look["hair"])
        canvas.ellipse(hc, (r * 0.95, r * 1.12), ang, look["skin"])
        if style != 2 and not facing:
            canvas.ellipse(hair_c, hair_ax, ang, look["hair"])
            if style == 1:
                canvas.ellipse(long_c, (r * 1.05, r * 1.5), ang, look["hair"])
        if fig.kpt_vis[NOSE]:
            eye_r = max(0.7, r * 0.13)
            for e in (L_EYE, R_EYE):
                if fig.kpt_vis[e]:
                    canvas.dot(kp[e], eye_r * 1.5, (235, 235, 235))
                    canvas.dot(kp[e], eye_r, (30, 25, 20))
            canvas.dot(kp[NOSE], max(0.8, r * 0.16), _shade(look["skin"], 0.7))
            mouth = P(ex["head_c"] + fh * dm["head_r"] * 0.85 - fig.up_head * dm["head_r"] * 0.5)
            canvas.dot(mouth, max(0.8, r * 0.14), (60, 60, 150))
        for e in (L_EAR, R_EAR):
            if fig.kpt_vis[e]:
                canvas.dot(kp[e], max(0.8, r * 0.2), _shade(look["skin"], 0.85))

    add(-1e3, head)
    if look["hair_style"] == 1 and fig.fwd_head[2] < 0:  # long hair seen from the front: behind everything

        def long_hair() -> None:
            r = dm["head_r"] * s
            up2 = pl.rot2d(fig.up_head[:2])
            ang = math.degrees(math.atan2(up2[1], up2[0])) + 90.0
            c = P(ex["head_c"] - fig.fwd_head * dm["head_r"] * 0.5 - fig.up_head * dm["head_r"] * 0.8)
            canvas.ellipse(c, (r * 1.1, r * 1.6), ang, look["hair"])

        add(1e3, long_hair)
    for _, _, fn in sorted(parts, key=lambda t: (-t[0], t[1])):
        fn()
    return cv2.convexHull(np.round(torso_pts).astype(np.float32)).reshape(-1, 2)
