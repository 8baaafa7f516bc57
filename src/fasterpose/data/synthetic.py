"""Synthetic COCO-format person keypoint dataset (no downloads, no torch).

Each image shows 1-4 articulated, clothed human figures drawn with OpenCV over a cluttered background, with all 17
COCO keypoints known exactly. The figures are built in 3D (person frame: left, down, forward) with joint-angle
limits (elbows bend forward, knees backward), turned by a yaw angle (front, back, profile, anything between),
projected orthographically and rolled a little in the image plane. Left and right limbs look alike; which side is
which must be inferred from context: the face (eyes, nose, mouth) and the shirt's collar and buttons are drawn
only on the front, hair covers the back of the head, shoes point forward, and nearer limbs cover farther ones.

Labelling conventions (the same as COCO where COCO has one):

- ``v=2`` visible; ``v=1`` labelled but occluded: covered by a nearer person or a foreground object, or a body
  joint hidden behind the person's own torso (a limb crossing in front of another limb keeps ``v=2``); ``v=0``
  not labelled, with coordinates ``(0, 0)``: outside the image, or a face keypoint (nose, eye, ear) on the far
  side of the head (e.g. nose and eyes of a person seen from the back, the far eye and ear in profile), as COCO
  annotators do not label faces they cannot see.
- ``bbox`` is the tight box of the whole figure's silhouette (occluded parts included) clipped to the image,
  ``area`` the number of silhouette pixels inside the image, ``segmentation`` its outline polygons, ``iscrowd`` 0.
  Keypoints with ``v>0`` lie in the box.
- Image ``id`` = ``seed * 1_000_000 + index + 1``, annotation ``id`` = ``seed * 10_000_000 + n``, so sets made
  with different seeds never collide. Splits are made by seed: :data:`SPLIT_SEEDS` (train 0, val 1, test 2); the
  demo trains on seed 0 and evaluates on seed 1.
- Image ``i`` of seed ``s`` depends only on ``(s, i, size, config)``: a 100-image set is the prefix of a
  1000-image set with the same seed. Same parameters give the same bytes (json and JPEG).

Every annotation carries an extra ``"synthetic"`` dict that pycocotools ignores: ``facing`` (``front``, ``back`` or
``profile``), ``yaw`` (body) and ``head_yaw`` in degrees (0 = facing the camera, +90 = facing image right),
``depth_rank`` (0 = farthest), ``truncated``, ``visible_frac`` (unoccluded share of the silhouette) and ``pose``
(pose family: ``stand``, ``walk``, ``arms``, ``crouch``, ``wild``).

The simulated detector (``person_detections.json``) jitters each GT box (centre and size, ``det_jitter``), scores it
by box IoU, occlusion and labelled-keypoint count, sometimes adds a looser duplicate with a low score, sometimes
misses small or heavily hidden persons, and adds low-score false positives on the background; every image has at
least one box.

Layout written by :func:`generate_dataset`::

    OUT_DIR/images/000000.jpg ...
    OUT_DIR/person_keypoints.json     COCO keypoints ground truth (written last: present = complete)
    OUT_DIR/person_detections.json    COCO detection results of a simulated person detector

Difficulty knobs live in :class:`SynthConfig`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..errors import DataError
from ..io_utils import atomic_write_json, remove_stale_temporaries
from ..keypoints import COCO17

logger = logging.getLogger(__name__)

GENERATOR_VERSION = 2  # bump whenever the output changes: part of the parameters, so caches are invalidated
KEYPOINTS_FILE = "person_keypoints.json"
DETECTIONS_FILE = "person_detections.json"
IMAGES_DIR = "images"
SPLIT_SEEDS: dict[str, int] = {"train": 0, "val": 1, "test": 2}
IMAGE_ID_STRIDE = 1_000_000
ANNOTATION_ID_STRIDE = 10_000_000
INFO_KEY = "fasterpose_synthetic"
STATS_KEY = "fasterpose_synthetic_stats"

_K = 17
# Keypoint indices.
NOSE, L_EYE, R_EYE, L_EAR, R_EAR = 0, 1, 2, 3, 4
L_SHO, R_SHO, L_ELB, R_ELB, L_WRI, R_WRI = 5, 6, 7, 8, 9, 10
L_HIP, R_HIP, L_KNE, R_KNE, L_ANK, R_ANK = 11, 12, 13, 14, 15, 16


@dataclass(frozen=True)
class SynthConfig:
    """Content and difficulty knobs. Every field is stored in the json's ``info`` and part of the cache key.

    Attributes:
        min_persons: fewest figures per image.
        max_persons: most figures per image (probability of ``k`` figures decays as ``person_decay ** k``).
        person_decay: see ``max_persons``; 1.0 = uniform.
        height_range: figure box height as a fraction of the image height (before truncation).
        max_overlap: largest IoU allowed between two figures' boxes (occlusion between persons).
        max_cover: largest share of the smaller of two figures' boxes that the other may overlap.
        truncation_prob: probability that a figure is placed partly outside the image.
        occluder_prob: probability of a foreground object drawn over the figures (its keypoints get ``v=1``).
        front_prob: probability of a yaw near 0 (facing the camera).
        back_prob: probability of a yaw near 180 degrees (the rest is uniform, profiles included).
        yaw_spread: standard deviation in degrees of the yaw around front/back.
        max_roll: largest in-plane rotation of a figure, in degrees.
        wild_pose_prob: probability of an unconstrained pose (any angle within the joint limits).
        clutter: scales the number of random background shapes.
        max_distractors: most limb-like distractors (shaded capsules in skin/clothing colours) in the background.
        noise_std: largest standard deviation of the additive pixel noise.
        blur_prob: probability of a slight Gaussian blur of the whole image.
        jpeg_quality: JPEG quality of the written images.
        det_jitter: relative std of the simulated detector's box centre/size noise.
        det_miss_prob: probability that the detector misses a small (``< 0.5 * height``) or heavily hidden person.
        det_false_positives: mean number of low-score false-positive boxes per image.
    """

    min_persons: int = 1
    max_persons: int = 4
    person_decay: float = 0.75
    height_range: tuple[float, float] = (0.4, 0.95)
    max_overlap: float = 0.35
    max_cover: float = 0.55
    truncation_prob: float = 0.15
    occluder_prob: float = 0.15
    front_prob: float = 0.45
    back_prob: float = 0.35
    yaw_spread: float = 25.0
    max_roll: float = 25.0
    wild_pose_prob: float = 0.15
    clutter: float = 1.0
    max_distractors: int = 3
    noise_std: float = 6.0
    blur_prob: float = 0.25
    jpeg_quality: int = 90
    det_jitter: float = 0.04
    det_miss_prob: float = 0.3
    det_false_positives: float = 0.8

    def __post_init__(self) -> None:
        if not 1 <= self.min_persons <= self.max_persons:
            raise DataError(f"SynthConfig: need 1 <= min_persons <= max_persons, got {self.min_persons}, "
                            f"{self.max_persons}")
        lo, hi = self.height_range
        if not 0.05 <= lo <= hi <= 2.0:
            raise DataError(f"SynthConfig: height_range must satisfy 0.05 <= lo <= hi <= 2, got {self.height_range}")
        if not 1 <= self.jpeg_quality <= 100:
            raise DataError(f"SynthConfig: jpeg_quality must be in [1, 100], got {self.jpeg_quality}")

    @classmethod
    def preset(cls, name: str) -> SynthConfig:
        """Named difficulty: ``"easy"`` (1-2 large, rarely occluded figures, calm poses, little clutter),
        ``"default"`` or ``"hard"`` (up to 6 figures, more overlap, truncation, clutter and wild poses)."""
        presets: dict[str, dict[str, Any]] = {
            "easy": {"max_persons": 2, "person_decay": 0.5, "height_range": (0.55, 0.95), "max_overlap": 0.2,
                     "max_cover": 0.35, "truncation_prob": 0.05, "occluder_prob": 0.0, "yaw_spread": 20.0,
                     "max_roll": 10.0, "wild_pose_prob": 0.05, "clutter": 0.4, "max_distractors": 1,
                     "noise_std": 3.0, "blur_prob": 0.1},
            "default": {},
            "hard": {"max_persons": 6, "person_decay": 0.85, "height_range": (0.3, 0.95), "max_overlap": 0.5,
                     "max_cover": 0.75, "truncation_prob": 0.25, "occluder_prob": 0.3, "yaw_spread": 40.0,
                     "max_roll": 40.0, "wild_pose_prob": 0.3, "clutter": 1.6, "max_distractors": 5,
                     "noise_std": 10.0, "blur_prob": 0.4},
        }
        if name not in presets:
            raise DataError(f"unknown synthetic difficulty {name!r}; use one of {', '.join(presets)}")
        return cls(**presets[name])

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["height_range"] = list(self.height_range)
        return d


# --------------------------------------------------------------------------------------------------------------
# 3D figure
# --------------------------------------------------------------------------------------------------------------


def _unit(v: np.ndarray) -> np.ndarray:
    return v / (float(np.linalg.norm(v)) + 1e-12)


def _perp(v: np.ndarray, u: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """Unit component of ``v`` orthogonal to unit ``u`` (``fallback`` when ``v`` is nearly parallel to ``u``)."""
    w = v - float(v @ u) * u
    if np.linalg.norm(w) < 0.2:
        w = fallback - float(fallback @ u) * u
    return _unit(w)


def _limb_dir(rng_angles: tuple[float, float], down: np.ndarray, side: np.ndarray, fwd: np.ndarray) -> np.ndarray:
    """Direction from (abduction, flexion) in radians: rotate ``down`` towards ``side``, then towards ``fwd``."""
    a, f = rng_angles
    return _unit(math.cos(f) * (math.cos(a) * down + math.sin(a) * side) + math.sin(f) * fwd)


def _bend(u: np.ndarray, toward: np.ndarray, angle: float, twist: float) -> np.ndarray:
    """Direction of the distal segment: ``u`` bent by ``angle`` towards ``toward`` (twisted around ``u``)."""
    b0 = _perp(toward, u, np.array([0.0, -1.0, 0.0]))
    b1 = _unit(np.cross(u, b0))
    b = math.cos(twist) * b0 + math.sin(twist) * b1
    return _unit(math.cos(angle) * u + math.sin(angle) * b)


@dataclass
class _Figure:
    """A posed figure in world units (standing height about 1). World: x right, y down, z away from the camera."""

    kpts: np.ndarray  # (17, 3)
    kpt_vis: np.ndarray  # (17,) bool: face keypoint on the camera side of the head (body joints: True)
    extra: dict[str, np.ndarray]  # named 3D points (neck, head centre, hands, toes, torso rings, ...)
    fwd_torso: np.ndarray
    fwd_head: np.ndarray
    up_head: np.ndarray
    yaw: float  # degrees, 0 = facing the camera, +90 = facing image right
    dims: dict[str, float]
    look: dict[str, Any] = field(default_factory=dict)


def _sample_yaw(rng: np.random.Generator, cfg: SynthConfig) -> float:
    u = rng.random()
    if u < cfg.front_prob:
        yaw = rng.normal(0.0, cfg.yaw_spread)
    elif u < cfg.front_prob + cfg.back_prob:
        yaw = 180.0 + rng.normal(0.0, cfg.yaw_spread)
    else:
        yaw = rng.uniform(-180.0, 180.0)
    return float((yaw + 180.0) % 360.0 - 180.0)


def _sample_angles(rng: np.random.Generator, cfg: SynthConfig) -> dict[str, Any]:
    """Joint angles (degrees) for a pose type; every value respects the joint limits below."""
    d = math.radians
    kind = rng.choice(["stand", "walk", "arms", "crouch", "wild"], p=[0.25, 0.25, 0.25 - cfg.wild_pose_prob / 2,
                                                                        0.25 - cfg.wild_pose_prob / 2,
                                                                        cfg.wild_pose_prob])
    u = rng.uniform

    def arm_wide() -> tuple[float, float, float, float]:  # abduction, flexion, elbow, twist
        return (d(u(0, 150)), d(u(-40, 110)), d(u(0, 145)), d(u(-60, 60)))

    def arm_calm() -> tuple[float, float, float, float]:
        return (d(u(4, 30)), d(u(-20, 30)), d(u(0, 50)), d(u(-30, 30)))

    def leg_calm() -> tuple[float, float, float, float]:  # abduction, flexion, knee, twist
        return (d(u(0, 12)), d(u(-8, 15)), d(u(0, 15)), d(u(-10, 10)))

    pitch, side_bend, twist = d(u(-5, 12)), d(u(-6, 6)), d(u(-15, 15))
    if kind == "stand":
        arms = [arm_calm(), arm_calm()]
        legs = [leg_calm(), leg_calm()]
    elif kind == "walk":
        swing = u(15, 40)
        sgn = 1 if rng.random() < 0.5 else -1
        legs = [(d(u(0, 8)), d(sgn * swing), d(u(0, 25)), 0.0), (d(u(0, 8)), d(-sgn * swing * 0.7), d(u(10, 50)), 0.0)]
        arms = [(d(u(4, 15)), d(-sgn * swing * u(0.5, 1.2)), d(u(5, 60)), d(u(-20, 20))),
                (d(u(4, 15)), d(sgn * swing * u(0.5, 1.2)), d(u(5, 60)), d(u(-20, 20)))]
    elif kind == "arms":
        arms = [arm_wide() if rng.random() < 0.8 else arm_calm() for _ in range(2)]
        legs = [leg_calm(), (d(u(0, 25)), d(u(-10, 30)), d(u(0, 30)), 0.0)]
        rng.shuffle(legs)
    elif kind == "crouch":
        arms = [arm_wide() if rng.random() < 0.5 else arm_calm() for _ in range(2)]
        legs = [(d(u(5, 25)), d(u(45, 95)), d(u(50, 125)), 0.0) for _ in range(2)]
        pitch = d(u(10, 35))
    else:
        arms = [arm_wide() for _ in range(2)]
        legs = [(d(u(-5, 40)), d(u(-25, 100)), d(u(0, 120)), 0.0) for _ in range(2)]
        pitch, side_bend = d(u(-10, 35)), d(u(-15, 15))
    return {"kind": str(kind), "arms": arms, "legs": legs, "pitch": pitch, "side_bend": side_bend, "twist": twist,
            "head_yaw": d(u(-35, 35)), "head_nod": d(u(-15, 20))}


def _build_figure(rng: np.random.Generator, cfg: SynthConfig) -> _Figure:
    yaw = _sample_yaw(rng, cfg)
    phi = math.radians(yaw)
    # Person frame in world coordinates. yaw 0: facing the camera, the person's left is on the image right.
    left = np.array([math.cos(phi), 0.0, math.sin(phi)])
    fwd = np.array([math.sin(phi), 0.0, -math.cos(phi)])
    down = np.array([0.0, 1.0, 0.0])

    g = rng.uniform(0.9, 1.1)  # build
    dims = {
        "hip_w": 0.145 * g * rng.uniform(0.95, 1.08), "sho_w": 0.235 * g * rng.uniform(0.92, 1.08),
        "torso": 0.29 * rng.uniform(0.93, 1.07), "neck": 0.045, "head_r": 0.064 * rng.uniform(0.92, 1.08),
        "upper_arm": 0.17 * rng.uniform(0.94, 1.06), "forearm": 0.15 * rng.uniform(0.94, 1.06),
        "thigh": 0.245 * rng.uniform(0.94, 1.06), "shin": 0.235 * rng.uniform(0.94, 1.06),
        "depth": 0.075 * g, "arm_r": 0.034 * g, "forearm_r": 0.028 * g, "thigh_r": 0.056 * g, "shin_r": 0.042 * g,
    }
    ang = _sample_angles(rng, cfg)

    # Upper body: lean forward (pitch), bend sideways, twist shoulders.
    p, b = ang["pitch"], ang["side_bend"]
    up_t = _unit(-down * math.cos(p) * math.cos(b) + fwd * math.sin(p) + left * math.sin(b))
    fwd_t = _perp(fwd, up_t, -down)
    left_t = _unit(left - float(left @ up_t) * up_t - float(left @ fwd_t) * fwd_t)
    t = ang["twist"]
    left_t, fwd_t = math.cos(t) * left_t + math.sin(t) * fwd_t, -math.sin(t) * left_t + math.cos(t) * fwd_t
    # Head: turn and nod relative to the torso.
    hy, hn = ang["head_yaw"], ang["head_nod"]
    left_h = math.cos(hy) * left_t + math.sin(hy) * fwd_t
    fwd_h = -math.sin(hy) * left_t + math.cos(hy) * fwd_t
    fwd_h = _unit(math.cos(hn) * fwd_h - math.sin(hn) * up_t)
    up_h = _perp(up_t, fwd_h, -down)
    left_h = _unit(left_h - float(left_h @ up_h) * up_h - float(left_h @ fwd_h) * fwd_h)

    k = np.zeros((_K, 3))
    pelvis = np.zeros(3)
    k[L_HIP] = pelvis + left * dims["hip_w"] / 2
    k[R_HIP] = pelvis - left * dims["hip_w"] / 2
    sho_c = pelvis + up_t * dims["torso"]
    k[L_SHO] = sho_c + left_t * dims["sho_w"] / 2
    k[R_SHO] = sho_c - left_t * dims["sho_w"] / 2
    r = dims["head_r"]
    neck = sho_c + up_t * dims["neck"]
    head_c = neck + up_h * r * 1.05
    k[NOSE] = head_c + fwd_h * r * 0.95 - up_h * r * 0.15
    k[L_EYE] = head_c + fwd_h * r * 0.78 + up_h * r * 0.2 + left_h * r * 0.4
    k[R_EYE] = head_c + fwd_h * r * 0.78 + up_h * r * 0.2 - left_h * r * 0.4
    k[L_EAR] = head_c + left_h * r * 0.92 + up_h * r * 0.05 - fwd_h * r * 0.1
    k[R_EAR] = head_c - left_h * r * 0.92 + up_h * r * 0.05 - fwd_h * r * 0.1

    extra: dict[str, np.ndarray] = {"neck": neck, "head_c": head_c, "sho_c": sho_c, "pelvis": pelvis}
    for s, (sho, elb, wri, name) in ((1, (L_SHO, L_ELB, L_WRI, "l")), (-1, (R_SHO, R_ELB, R_WRI, "r"))):
        a, f, e, tw = ang["arms"][0 if s == 1 else 1]
        ua = _limb_dir((a, f), -up_t, s * left_t, fwd_t)
        k[elb] = k[sho] + ua * dims["upper_arm"]
        fa = _bend(ua, fwd_t, e, tw)
        k[wri] = k[elb] + fa * dims["forearm"]
        extra[f"hand_{name}"] = k[wri] + fa * 0.05
    for s, (hip, kne, ank, name) in ((1, (L_HIP, L_KNE, L_ANK, "l")), (-1, (R_HIP, R_KNE, R_ANK, "r"))):
        a, f, kn, tw = ang["legs"][0 if s == 1 else 1]
        th = _limb_dir((a, f), down, s * left, fwd)
        k[kne] = k[hip] + th * dims["thigh"]
        sh = _bend(th, -fwd, kn, tw)
        k[ank] = k[kne] + sh * dims["shin"]
        foot = _perp(fwd, sh, fwd)
        extra[f"toe_{name}"] = k[ank] + foot * 0.085 + sh * 0.02
        extra[f"heel_{name}"] = k[ank] - foot * 0.02 + sh * 0.025

    # Torso rings (elliptic cross-sections) at shoulder and hip level for the projected silhouette.
    th_ = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    cs, sn = np.cos(th_)[:, None], np.sin(th_)[:, None]
    w_sho, w_hip = dims["sho_w"] / 2 + dims["arm_r"] * 0.6, dims["hip_w"] / 2 + dims["thigh_r"] * 0.8
    dep = dims["depth"]
    extra["ring_sho"] = sho_c - up_t * 0.02 + cs * left_t * w_sho + sn * fwd_t * dep
    extra["ring_mid"] = pelvis + up_t * dims["torso"] * 0.45 + cs * left_t * w_hip * 0.92 + sn * fwd_t * dep
    extra["ring_hip"] = pelvis - up_t * 0.03 + cs * left * w_hip + sn * fwd * dep
    extra["front_c"] = pelvis + up_t * dims["torso"] * 0.6 + fwd_t * dep
    extra["left_t"], extra["up_t"], extra["left_h"] = left_t, up_t, left_h

    # Face keypoints on the far side of the head are not labelled (v=0). Surface normals vs. the camera (-z).
    vis = np.ones(_K, dtype=bool)
    vis[NOSE] = fwd_h[2] < 0.25
    for idx, s in ((L_EYE, 1), (R_EYE, -1)):
        vis[idx] = _unit(fwd_h * 0.8 + s * left_h * 0.55)[2] < -0.12
    for idx, s in ((L_EAR, 1), (R_EAR, -1)):
        vis[idx] = _unit(s * left_h - 0.15 * fwd_h)[2] < 0.9
    return _Figure(kpts=k, kpt_vis=vis, extra=extra, fwd_torso=fwd_t, fwd_head=fwd_h, up_head=up_h, yaw=yaw,
                   dims=dims, look={"kind": ang["kind"]})


# --------------------------------------------------------------------------------------------------------------
# Appearance
# --------------------------------------------------------------------------------------------------------------

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


@dataclass
class _Placed:
    """A figure placed in the image: pixel coordinates and depth per keypoint and per named point."""

    fig: _Figure
    scale: float  # pixels per world unit
    roll: float  # radians
    offset: np.ndarray  # (2,) pixel position of the pelvis

    def project(self, p: np.ndarray) -> np.ndarray:
        p = np.asarray(p, dtype=np.float64)
        x, y = p[..., 0], p[..., 1]
        c, s = math.cos(self.roll), math.sin(self.roll)
        return np.stack([c * x - s * y, s * x + c * y], axis=-1) * self.scale + self.offset

    def rot2d(self, v: np.ndarray) -> np.ndarray:
        c, s = math.cos(self.roll), math.sin(self.roll)
        return np.array([c * v[0] - s * v[1], s * v[0] + c * v[1]])


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


# --------------------------------------------------------------------------------------------------------------
# Background, distractors, occluders
# --------------------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------------------
# One sample
# --------------------------------------------------------------------------------------------------------------


def _figure_extent(fig: _Figure) -> tuple[np.ndarray, np.ndarray]:
    """Rough world-unit (x, y) min and max of the figure's silhouette (before roll)."""
    pts = np.concatenate([fig.kpts, np.stack([v for k, v in fig.extra.items() if v.ndim == 1 and k.startswith(
        ("hand", "toe", "heel", "head"))]), fig.extra["ring_sho"], fig.extra["ring_hip"]])
    pad = np.array([0.04, 0.04])
    lo, hi = pts[:, :2].min(0) - pad, pts[:, :2].max(0) + pad
    hc = fig.extra["head_c"][:2]
    r = fig.dims["head_r"] * 1.45
    return np.minimum(lo, hc - r), np.maximum(hi, hc + r)


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

    owner = np.zeros((h, w), dtype=np.uint8)  # 0 background, i+1 figure i, 255 foreground occluder
    light = _unit(np.array([rng.uniform(-1, 1), -1.0]))
    masks, hulls = [], []
    for i, pl in enumerate(placed):
        mask = np.zeros((h, w), dtype=np.uint8)
        hulls.append(_draw_figure(_Canvas(img, mask), pl, light))
        owner[mask > 0] = i + 1
        masks.append(mask)
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
                        "visible_frac": round(visible_frac, 4), "pose": pl.fig.look["kind"]})
    return img, persons


# --------------------------------------------------------------------------------------------------------------
# Simulated detector
# --------------------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------------------
# Dataset writing, caching
# --------------------------------------------------------------------------------------------------------------


def dataset_params(num_images: int, seed: int, size: tuple[int, int], config: SynthConfig | None = None
                   ) -> dict[str, Any]:
    """The parameters that determine a dataset's bytes (stored in ``info`` and hashed for the cache)."""
    cfg = config or SynthConfig()
    return {"generator_version": GENERATOR_VERSION, "num_images": int(num_images), "seed": int(seed),
            "size": [int(size[0]), int(size[1])], "config": cfg.to_dict()}


def params_hash(params: dict[str, Any]) -> str:
    """Short stable hash of :func:`dataset_params` output."""
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]


def _paths(out_dir: Path) -> dict[str, Path]:
    return {"root": out_dir, "images": out_dir / IMAGES_DIR, "annotations": out_dir / KEYPOINTS_FILE,
            "detections": out_dir / DETECTIONS_FILE}


def _file_name(index: int) -> str:
    return f"{index:06d}.jpg"


def _load_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _params_of(gt: Any) -> dict[str, Any] | None:
    info = gt.get("info") if isinstance(gt, dict) else None
    return info.get(INFO_KEY) if isinstance(info, dict) else None


def _complete_stats(out_dir: Path, params: dict[str, Any]) -> dict[str, Any] | None:
    """The stored statistics if ``out_dir`` holds a complete dataset made with ``params``, else ``None``."""
    p = _paths(out_dir)
    if not p["annotations"].is_file() or not p["detections"].is_file():
        return None
    gt = _load_json(p["annotations"])
    if _params_of(gt) != params:
        return None
    if not all((p["images"] / _file_name(i)).is_file() for i in range(params["num_images"])):
        return None
    return gt["info"].get(STATS_KEY)


def _write_image(path: Path, img: np.ndarray, quality: int) -> None:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise OSError(f"could not encode {path}")
    # the writer's pid in the name (as io_utils does): a temporary of a killed run is removed by the next one
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.tmp.{os.getpid()}.", suffix=".jpg", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(buf.tobytes())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(e, OSError) and not e.filename:
            e.filename = str(path)
        raise


def _categories() -> list[dict[str, Any]]:
    return [{"supercategory": "person", "id": 1, "name": "person", "keypoints": list(COCO17.names),
             "skeleton": [[a + 1, b + 1] for a, b in COCO17.skeleton]}]


def generate_dataset(out_dir: str | os.PathLike, num_images: int, seed: int = 0, size: tuple[int, int] = (256, 256),
                     config: SynthConfig | None = None, progress: bool | None = None,
                     overwrite: bool = False) -> dict[str, Any]:
    """Write (or find already written) a synthetic COCO person-keypoint dataset.

    Images go to ``out_dir/images/`` first, then ``person_detections.json``, then ``person_keypoints.json`` last
    (all atomically), so a folder with ``person_keypoints.json`` is complete. If ``out_dir`` already holds a
    complete dataset with the same parameters (stored under ``info["fasterpose_synthetic"]``), nothing is
    rendered and the call returns at once with ``cached=True``.

    Args:
        out_dir: destination folder (created).
        num_images: number of images (>= 1).
        seed: split seed (see :data:`SPLIT_SEEDS`); image ids are ``seed * 1_000_000 + index + 1``.
        size: ``(height, width)`` of every image.
        config: content/difficulty knobs (:class:`SynthConfig`).
        progress: show a tqdm bar; ``None`` = only when stderr is a terminal.
        overwrite: replace a complete dataset with *different* parameters in ``out_dir`` (otherwise that is an
            error, so that a typo cannot silently clobber a dataset).

    Returns:
        ``{"root", "images", "annotations", "detections"}`` paths plus ``num_images``, ``num_persons``,
        ``num_keypoints`` (labelled, ``v>0``), ``num_detections``, ``seed``, ``size``, ``params_hash``,
        ``cached`` and ``seconds``.

    Raises:
        DataError: invalid arguments, or a different dataset already in ``out_dir`` without ``overwrite``.
    """
    cfg = config or SynthConfig()
    if int(num_images) < 1:
        raise DataError(f"synthetic dataset: num_images must be >= 1, got {num_images}")
    if int(seed) < 0:
        raise DataError(f"synthetic dataset: seed must be >= 0, got {seed}")
    if len(size) != 2 or min(int(size[0]), int(size[1])) < 32:
        raise DataError(f"synthetic dataset: size must be (height, width) with both >= 32, got {size}")
    if int(num_images) > IMAGE_ID_STRIDE - 1:
        raise DataError(f"synthetic dataset: at most {IMAGE_ID_STRIDE - 1} images per seed, got {num_images}")
    size = (int(size[0]), int(size[1]))
    out = Path(out_dir)
    paths = _paths(out)
    params = dataset_params(num_images, seed, size, cfg)
    phash = params_hash(params)
    t0 = time.perf_counter()

    def summary(stats: dict[str, Any], cached: bool) -> dict[str, Any]:
        return {**paths, **stats, "seed": int(seed), "size": list(size), "params_hash": phash, "cached": cached,
                "seconds": round(time.perf_counter() - t0, 3)}

    stats = _complete_stats(out, params)
    if stats is not None:
        logger.info("synthetic dataset already complete in %s (%d images)", out, num_images)
        return summary(stats, True)
    old = _params_of(_load_json(paths["annotations"])) if paths["annotations"].is_file() else None
    if old is not None and old != params and not overwrite:
        raise DataError(f"{paths['annotations']} holds a synthetic dataset with other parameters "
                        f"({old.get('num_images')} images, seed {old.get('seed')}, size {old.get('size')}); "
                        f"choose another folder or pass overwrite=True (--overwrite)")
    # Invalidate first: from here until the final json is written the folder is incomplete.
    if paths["annotations"].exists():
        paths["annotations"].unlink()
    paths["images"].mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(paths["images"])  # images half-written by a killed run

    if progress is None:
        progress = sys.stderr.isatty()
    indices: Any = range(int(num_images))
    if progress:
        from tqdm import tqdm

        indices = tqdm(indices, desc="synth", unit="img")
    images, annotations, detections = [], [], []
    ann_id = int(seed) * ANNOTATION_ID_STRIDE
    for i in indices:
        img, persons = render_sample(seed, i, size, cfg)
        name = _file_name(i)
        _write_image(paths["images"] / name, img, cfg.jpeg_quality)
        image_id = int(seed) * IMAGE_ID_STRIDE + i + 1
        images.append({"id": image_id, "file_name": name, "height": size[0], "width": size[1]})
        for p in persons:
            ann_id += 1
            kp = p["keypoints"]
            flat: list[float | int] = []
            for x, y, v in kp:
                flat += [float(x), float(y), int(v)]
            annotations.append({
                "id": ann_id, "image_id": image_id, "category_id": 1, "keypoints": flat,
                "num_keypoints": int((kp[:, 2] > 0).sum()), "bbox": p["bbox"], "area": p["area"], "iscrowd": 0,
                "segmentation": p["segmentation"],
                "synthetic": {"facing": p["facing"], "yaw": p["yaw"], "head_yaw": p["head_yaw"],
                              "depth_rank": p["depth_rank"], "truncated": p["truncated"],
                              "visible_frac": p["visible_frac"], "pose": p["pose"]},
            })
        det_rng = np.random.default_rng([int(seed), i, 1])
        detections += _detections(det_rng, persons, image_id, size, cfg)

    # Images of an earlier, larger set in the same folder (overwrite=True) would not be in the json: remove them.
    keep = {im["file_name"] for im in images}
    for f in paths["images"].glob("*.jpg"):
        if f.name not in keep and f.stem.isdigit():
            f.unlink()
    stats = {"num_images": len(images), "num_persons": len(annotations),
             "num_keypoints": int(sum(a["num_keypoints"] for a in annotations)), "num_detections": len(detections)}
    info = {"description": "fasterpose synthetic person keypoints", "version": str(GENERATOR_VERSION),
            "year": 2026, INFO_KEY: params, STATS_KEY: stats}
    gt = {"info": info, "licenses": [], "categories": _categories(), "images": images, "annotations": annotations}
    atomic_write_json(paths["detections"], detections)
    atomic_write_json(paths["annotations"], gt)
    res = summary(stats, False)
    logger.info("wrote %d images, %d persons to %s in %.1f s", len(images), len(annotations), out, res["seconds"])
    return res


def default_cache_dir() -> Path:
    """``$FASTERPOSE_CACHE/synthetic`` or ``~/.cache/fasterpose/synthetic``."""
    base = os.environ.get("FASTERPOSE_CACHE")
    return (Path(base) if base else Path.home() / ".cache" / "fasterpose") / "synthetic"


def ensure_synthetic_dataset(cache_dir: str | os.PathLike | None = None, split: str = "train",
                             num_images: int = 1000, seed: int | None = None, size: tuple[int, int] = (256, 256),
                             config: SynthConfig | None = None, progress: bool | None = None) -> dict[str, Any]:
    """Return a cached synthetic dataset for ``split``, generating it once.

    The folder is ``cache_dir/<split>-<params-hash>/`` (``cache_dir`` defaults to :func:`default_cache_dir`), so
    different parameters never share a folder and an existing complete one is reused instantly.

    Args:
        cache_dir: cache root.
        split: ``"train"``, ``"val"`` or ``"test"``; picks the seed from :data:`SPLIT_SEEDS` unless ``seed`` is set.
        num_images: number of images.
        seed: explicit seed (overrides the split's).
        size: ``(height, width)``.
        config: knobs.
        progress: tqdm bar (``None`` = when stderr is a terminal).

    Returns:
        The :func:`generate_dataset` summary.
    """
    if seed is None:
        if split not in SPLIT_SEEDS:
            raise DataError(f"unknown synthetic split {split!r}; use one of {', '.join(SPLIT_SEEDS)} or pass a seed")
        seed = SPLIT_SEEDS[split]
    params = dataset_params(num_images, seed, size, config)
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return generate_dataset(root / f"{split}-{params_hash(params)}", num_images, seed, size, config, progress)


# Largest synthetic image side: a 4096x4096 image already needs ~200 MB of float buffers while it is drawn.
MAX_IMAGE_SIDE = 4096


def parse_size(text: str) -> tuple[int, int]:
    """``"256x192"`` -> ``(256, 192)``; ``"256"`` -> ``(256, 256)``."""
    try:
        parts = [int(p) for p in str(text).lower().replace("*", "x").split("x")]
    except ValueError:
        parts = []
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or min(parts) < 32 or max(parts) > MAX_IMAGE_SIDE:
        raise DataError(f"size must be HxW (height x width, each 32..{MAX_IMAGE_SIDE}), e.g. 256x256; got {text!r}")
    return parts[0], parts[1]
