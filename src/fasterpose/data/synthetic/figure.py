"""The articulated 3D figure: body dimensions, joint angles within their limits, the 17 COCO keypoints and the
named points the renderer needs; its projection into the image (:class:`_Placed`).

World and person frames: x right, y down, z away from the camera; a figure stands about 1 unit tall.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .config import SynthConfig

_K = 17
# Keypoint indices.
NOSE, L_EYE, R_EYE, L_EAR, R_EAR = 0, 1, 2, 3, 4
L_SHO, R_SHO, L_ELB, R_ELB, L_WRI, R_WRI = 5, 6, 7, 8, 9, 10
L_HIP, R_HIP, L_KNE, R_KNE, L_ANK, R_ANK = 11, 12, 13, 14, 15, 16



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


def _sample_dims(rng: np.random.Generator) -> dict[str, float]:
    """Body dimensions in world units (segment lengths, widths, radii)."""
    g = rng.uniform(0.9, 1.1)  # build
    return {
        "hip_w": 0.145 * g * rng.uniform(0.95, 1.08), "sho_w": 0.235 * g * rng.uniform(0.92, 1.08),
        "torso": 0.29 * rng.uniform(0.93, 1.07), "neck": 0.045, "head_r": 0.064 * rng.uniform(0.92, 1.08),
        "upper_arm": 0.17 * rng.uniform(0.94, 1.06), "forearm": 0.15 * rng.uniform(0.94, 1.06),
        "thigh": 0.245 * rng.uniform(0.94, 1.06), "shin": 0.235 * rng.uniform(0.94, 1.06),
        "depth": 0.075 * g, "arm_r": 0.034 * g, "forearm_r": 0.028 * g, "thigh_r": 0.056 * g, "shin_r": 0.042 * g,
    }


def _build_figure(rng: np.random.Generator, cfg: SynthConfig) -> _Figure:
    yaw = _sample_yaw(rng, cfg)
    dims = _sample_dims(rng)
    return pose_figure(yaw, dims, _sample_angles(rng, cfg))


def pose_figure(yaw: float, dims: dict[str, float], ang: dict[str, Any]) -> _Figure:
    """The figure with body ``dims`` (:func:`_sample_dims`) in the pose ``ang`` (:func:`_sample_angles`'s layout:
    ``arms``/``legs`` as (abduction, flexion, elbow or knee, twist) in radians, ``pitch``, ``side_bend``, ``twist``,
    ``head_yaw``, ``head_nod``, ``kind``), turned by ``yaw`` degrees (0 = facing the camera)."""
    phi = math.radians(yaw)
    # Person frame in world coordinates. yaw 0: facing the camera, the person's left is on the image right.
    left = np.array([math.cos(phi), 0.0, math.sin(phi)])
    fwd = np.array([math.sin(phi), 0.0, -math.cos(phi)])
    down = np.array([0.0, 1.0, 0.0])

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



def _figure_extent(fig: _Figure) -> tuple[np.ndarray, np.ndarray]:
    """Rough world-unit (x, y) min and max of the figure's silhouette (before roll)."""
    pts = np.concatenate([fig.kpts, np.stack([v for k, v in fig.extra.items() if v.ndim == 1 and k.startswith(
        ("hand", "toe", "heel", "head"))]), fig.extra["ring_sho"], fig.extra["ring_hip"]])
    pad = np.array([0.04, 0.04])
    lo, hi = pts[:, :2].min(0) - pad, pts[:, :2].max(0) + pad
    hc = fig.extra["head_c"][:2]
    r = fig.dims["head_r"] * 1.45
    return np.minimum(lo, hc - r), np.maximum(hi, hc + r)
