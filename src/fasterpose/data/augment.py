"""Training augmentations for top-down pose estimation (numpy/OpenCV only, no torch).

Every function takes an explicit :class:`numpy.random.Generator`; nothing touches numpy's or Python's global
random state, so a sample's augmentation depends only on the generator it is given (the datasets seed one per
``(seed, epoch, index)``).

The defaults follow SimpleBaseline / HRNet (COCO): flip with p = 0.5, half-body with p = 0.3 when more than 8
keypoints are visible, scale ``s * clip(1 + N(0, 1) * 0.35, 0.65, 1.35)``, rotation with p = 0.6 of
``clip(N(0, 1) * 45, -90, 90)`` degrees.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..keypoints import KeypointSet

__all__ = ["AugmentConfig", "MPII_AUGMENT", "half_body_transform", "random_scale_rotation", "color_jitter",
           "random_flip"]


@dataclass
class AugmentConfig:
    """Settings of the training augmentations; set a probability or factor to 0 to switch one off.

    Attributes:
        flip: random horizontal flip (left/right keypoints are swapped with the keypoint set's flip pairs).
        flip_prob: probability of the flip.
        half_body_prob: probability of replacing the box by the upper or lower body's box (HRNet).
        half_body_min_keypoints: half-body is only tried when *more than* this many keypoints are visible.
        half_body_padding: the half-body box is enlarged by this factor (HRNet: 1.5).
        half_body_upper_prob: probability of choosing the upper body (when it has more than 2 visible keypoints).
            0.5 by default; HRNet's code draws ``np.random.randn() < 0.5``, which picks it with probability
            ``Phi(0.5) = 0.6915``: the reproduction configs set that (docs/choices.md).
        scale_factor: ``sf``; the box size is multiplied by ``clip(1 + N(0,1) * sf, 1 - sf, 1 + sf)``.
        rotation_factor: ``rf`` in degrees; see ``rotation_dist``.
        rotation_prob: probability that the sample is rotated at all (SimpleBaseline: 0.6).
        rotation_dist: ``"normal"``: ``clip(N(0,1) * rf, -2 rf, 2 rf)`` (SimpleBaseline/HRNet);
            ``"uniform"``: ``U(-rf, rf)``.
        color_jitter: random brightness / contrast / saturation on the crop.
        brightness: brightness factor drawn from ``U(1 - b, 1 + b)``.
        contrast: contrast factor drawn from ``U(1 - c, 1 + c)``.
        saturation: saturation factor drawn from ``U(1 - s, 1 + s)``.
    """

    flip: bool = True
    flip_prob: float = 0.5
    half_body_prob: float = 0.3
    half_body_min_keypoints: int = 8
    half_body_padding: float = 1.5
    half_body_upper_prob: float = 0.5
    scale_factor: float = 0.35
    rotation_factor: float = 45.0
    rotation_prob: float = 0.6
    rotation_dist: str = "normal"
    color_jitter: bool = False
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2

    def __post_init__(self) -> None:
        if self.rotation_dist not in ("normal", "uniform"):
            raise ValueError(f"AugmentConfig.rotation_dist must be 'normal' or 'uniform', got {self.rotation_dist!r}")
        for name in ("flip_prob", "half_body_prob", "half_body_upper_prob", "rotation_prob"):
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"AugmentConfig.{name} must be a probability in [0, 1], got {p}")
        if not 0.0 <= self.scale_factor < 1.0:
            raise ValueError(f"AugmentConfig.scale_factor must be in [0, 1), got {self.scale_factor}")

    @classmethod
    def none(cls) -> AugmentConfig:
        """A configuration that changes nothing (useful to test the pipeline without randomness)."""
        return cls(flip=False, half_body_prob=0.0, scale_factor=0.0, rotation_factor=0.0, rotation_prob=0.0,
                   color_jitter=False)


# HRNet's MPII recipe: smaller scale/rotation ranges and no half-body.
MPII_AUGMENT = AugmentConfig(half_body_prob=0.0, scale_factor=0.25, rotation_factor=30.0)


def half_body_transform(keypoints: np.ndarray, visible: np.ndarray, keypoint_set: KeypointSet, aspect_ratio: float,
                        rng: np.random.Generator, padding: float = 1.5,
                        upper_prob: float = 0.5) -> tuple[np.ndarray, np.ndarray] | None:
    """Box of the upper or lower body only (HRNet's ``half_body_transform``).

    The upper body is chosen with probability ``upper_prob`` when it has more than 2 visible keypoints (HRNet's
    ``randn() < 0.5`` is ``upper_prob = 0.6915``); otherwise the lower body if it has more than 2, else the upper
    body.

    Args:
        keypoints: ``(K, 2)`` image pixels.
        visible: ``(K,)``, > 0 for labelled keypoints.
        keypoint_set: gives ``upper_body``.
        aspect_ratio: model input width / height.
        rng: random generator.
        padding: enlargement of the tight half-body box.
        upper_prob: probability of trying the upper body first.

    Returns:
        ``(center (2,), scale (2,))`` float32 in pixels, or ``None`` when fewer than 2 keypoints were selected.
    """
    vis = np.asarray(visible).reshape(-1) > 0
    upper_mask = np.zeros(len(vis), dtype=bool)
    upper_mask[list(keypoint_set.upper_body)] = True
    upper = keypoints[vis & upper_mask]
    lower = keypoints[vis & ~upper_mask]
    if rng.random() < upper_prob and len(upper) > 2:
        selected = upper
    else:
        selected = lower if len(lower) > 2 else upper
    if len(selected) < 2:
        return None
    selected = np.asarray(selected, dtype=np.float32)
    center = selected.mean(axis=0)
    w, h = selected.max(axis=0) - selected.min(axis=0)
    # Fix the aspect ratio to the model input by growing the short side, as box_to_center_scale does.
    if w > aspect_ratio * h:
        h = w / aspect_ratio
    else:
        w = h * aspect_ratio
    scale = np.array([w, h], dtype=np.float32) * padding
    return center.astype(np.float32), scale


def random_scale_rotation(scale: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Random box scaling and rotation (SimpleBaseline).

    Both random numbers are always drawn (even when a factor is 0) so that switching one augmentation off does not
    change the others' draws.

    Args:
        scale: ``(2,)`` box size ``(w, h)`` in pixels.
        cfg: the augmentation settings.
        rng: random generator.

    Returns:
        ``(scale (2,) float32, rotation in degrees)``.
    """
    sf, rf = cfg.scale_factor, cfg.rotation_factor
    z_scale, z_rot, u_rot = rng.standard_normal(), rng.standard_normal(), rng.random()
    factor = float(np.clip(1.0 + z_scale * sf, 1.0 - sf, 1.0 + sf))
    rotation = 0.0
    if rf > 0 and u_rot < cfg.rotation_prob:
        if cfg.rotation_dist == "normal":
            rotation = float(np.clip(z_rot * rf, -2.0 * rf, 2.0 * rf))
        else:
            # Map the normal draw to U(-rf, rf) through its CDF so that both modes consume the same draws.
            from math import erf, sqrt

            rotation = float(rf * erf(z_rot / sqrt(2.0)))
    return (np.asarray(scale, dtype=np.float32) * np.float32(factor)).astype(np.float32), rotation


def random_flip(cfg: AugmentConfig, rng: np.random.Generator) -> bool:
    """Whether to flip this sample (always draws one number)."""
    u = rng.random()
    return bool(cfg.flip and u < cfg.flip_prob)


def color_jitter(img: np.ndarray, rng: np.random.Generator, brightness: float = 0.2, contrast: float = 0.2,
                 saturation: float = 0.2) -> np.ndarray:
    """Random brightness, contrast and saturation (torchvision ``ColorJitter`` semantics, fixed order).

    Meant for the small crop, not the full image (it costs ~0.15 ms at 256x192).

    Args:
        img: ``(H, W, 3)`` BGR uint8.
        rng: random generator.
        brightness: factor drawn from ``U(1 - brightness, 1 + brightness)``.
        contrast: factor from ``U(1 - contrast, 1 + contrast)``; blends with the mean grey level.
        saturation: factor from ``U(1 - saturation, 1 + saturation)``; blends with the grey image.

    Returns:
        ``(H, W, 3)`` BGR uint8, a new array.
    """
    b, c, s = rng.uniform(-1.0, 1.0, size=3) * np.array([brightness, contrast, saturation]) + 1.0
    # uint8 OpenCV arithmetic (saturating, rounded after each step like torchvision on uint8 tensors): ~5x faster
    # than the same blends in float32 numpy.
    out = cv2.convertScaleAbs(img, alpha=float(b))  # inputs are >= 0, so "Abs" changes nothing
    gray = cv2.cvtColor(out, cv2.COLOR_BGR2GRAY)
    out = cv2.addWeighted(out, float(c), out, 0.0, float((1.0 - c) * gray.mean()))
    gray = cv2.cvtColor(cv2.cvtColor(out, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    return cv2.addWeighted(out, float(s), gray, float(1.0 - s), 0.0)
