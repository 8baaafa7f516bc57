"""Heatmap codec: Gaussian training targets and heatmap -> keypoint decoding, plus the flip-test helper.

Coordinates are in crop-input pixels (the model input, e.g. 256x192); heatmaps are ``(K, h, w)`` at stride 4 by
default. Two encodings:

* **classic** (MSRA / SimpleBaseline ``generate_target``): the Gaussian is centred on the *rounded* heatmap
  position ``floor(x / stride + 0.5)``; heatmap ``j`` <-> input ``j * stride`` with ``stride = input / heatmap``.
* **unbiased** (UDP, Huang et al. 2020): the Gaussian is centred on the exact sub-pixel position and heatmap
  ``j`` <-> input ``j * (input - 1) / (heatmap - 1)``, matching :func:`fasterpose.geometry.get_warp_matrix` with
  ``udp=True``.

Decoding modes: ``"argmax"``; ``"quarter"`` (argmax + 0.25 px toward the higher neighbour, SimpleBaseline's
``get_final_preds``); ``"dark"`` (Zhang et al. 2020, "Distribution-Aware Coordinate Representation": blur, log,
second-order Taylor expansion around the maximum).

This module must not import torch: the onnxruntime predictor uses it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from fasterpose.errors import ConfigError

__all__ = ["DECODE_MODES", "HeatmapCodec", "flip_back", "sigmoid"]

DECODE_MODES = ("argmax", "quarter", "dark")
# OpenCV 4 takes up to 512 channels per image (CV_CN_MAX), OpenCV 5 only 128: 128 works on both. Chunks of 128 give
# the same float32 bits as one 512-channel call on 4.x and as 5.x (measured for 17 to 1088 maps, widths 5 to 48).
_CV_MAX_CHANNELS = 128


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Numerically stable logistic function (no overflow warnings for large ``|x|``); keeps float dtypes."""
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    # exp(-|x|) never overflows; the two branches are the same function written for x >= 0 and x < 0.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(x.dtype, copy=False)


def flip_back(heatmaps: np.ndarray, flip_index: np.ndarray | Sequence[int], shift: bool = False) -> np.ndarray:
    """Undo a horizontal input flip on predicted heatmaps.

    Args:
        heatmaps: ``(N, K, h, w)`` (or ``(K, h, w)``) output for the horizontally flipped crops.
        flip_index: ``(K,)`` permutation (:attr:`fasterpose.keypoints.KeypointSet.flip_index`); output channel ``i``
            is flipped channel ``flip_index[i]``.
        shift: shift the result one pixel to the right (``out[..., 1:] = out[..., :-1]``), as SimpleBaseline does
            for the classic transform, whose flipped crop is offset by one input pixel from the mirror image.
            Not needed with UDP, whose flip maps the heatmap grid onto itself.

    Returns:
        Heatmaps aligned with the unflipped input, same shape, a new C-contiguous array.
    """
    heatmaps = np.asarray(heatmaps)
    flip_index = np.asarray(flip_index, dtype=np.int64)
    if heatmaps.ndim < 3 or heatmaps.shape[-3] != flip_index.shape[0]:
        raise ValueError(f"heatmaps (..., K, h, w) with K={len(flip_index)} expected, got shape {heatmaps.shape}")
    out = np.ascontiguousarray(heatmaps[..., flip_index, :, ::-1])
    if shift:
        out[..., 1:] = out[..., :-1].copy()
    return out


class HeatmapCodec:
    """Encode keypoints to Gaussian heatmaps and decode heatmaps to keypoints.

    Args:
        input_size: model input size ``(H, W)``.
        heatmap_size: heatmap size ``(h, w)``; defaults to ``input_size // 4``.
        sigma: Gaussian standard deviation in heatmap pixels.
        unbiased: UDP encoding and coordinate mapping instead of the classic MSRA one.
        decode: ``"argmax"``, ``"quarter"`` or ``"dark"``.
        dark_kernel: odd Gaussian blur kernel size used by DARK decoding (11 for sigma 2 in the paper).

    Attributes:
        input_size: ``(H, W)`` ints.
        heatmap_size: ``(h, w)`` ints.
        stride: ``(x, y)`` floats, input size / heatmap size.
        sigma, unbiased, decode_mode, dark_kernel: the constructor arguments.
    """

    def __init__(
        self,
        input_size: Sequence[int] = (256, 192),
        heatmap_size: Sequence[int] | None = None,
        sigma: float = 2.0,
        unbiased: bool = False,
        decode: str = "quarter",
        dark_kernel: int = 11,
    ) -> None:
        self.input_size = _size_pair(input_size, "input_size")
        if heatmap_size is None:
            heatmap_size = (self.input_size[0] // 4, self.input_size[1] // 4)
        self.heatmap_size = _size_pair(heatmap_size, "heatmap_size")
        if min(self.heatmap_size) < 2:
            raise ConfigError(f"heatmap_size must be at least 2x2, got {self.heatmap_size}")
        if not sigma > 0:
            raise ConfigError(f"codec sigma must be positive, got {sigma!r}")
        if decode not in DECODE_MODES:
            raise ConfigError(f"unknown heatmap decode mode {decode!r}; choose one of {', '.join(DECODE_MODES)}")
        if int(dark_kernel) != dark_kernel or dark_kernel < 3 or dark_kernel % 2 == 0:
            raise ConfigError(f"dark_kernel must be an odd integer >= 3, got {dark_kernel!r}")
        self.sigma = float(sigma)
        self.unbiased = bool(unbiased)
        self.decode_mode = decode
        self.dark_kernel = int(dark_kernel)
        (in_h, in_w), (hm_h, hm_w) = self.input_size, self.heatmap_size
        self.stride = (in_w / hm_w, in_h / hm_h)
        # Heatmap pixel -> input pixel factor: UDP aligns the first and last pixel centres of both grids.
        if self.unbiased:
            self._factor = np.array([(in_w - 1) / (hm_w - 1), (in_h - 1) / (hm_h - 1)])
        else:
            self._factor = np.array(self.stride)

    # ------------------------------------------------------------------ description

    def to_dict(self) -> dict[str, Any]:
        """Constructor kwargs (JSON-friendly): ``HeatmapCodec(**codec.to_dict())`` rebuilds the codec."""
        return {
            "input_size": list(self.input_size),
            "heatmap_size": list(self.heatmap_size),
            "sigma": self.sigma,
            "unbiased": self.unbiased,
            "decode": self.decode_mode,
            "dark_kernel": self.dark_kernel,
        }

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items())
        return f"HeatmapCodec({args})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, HeatmapCodec) and self.to_dict() == other.to_dict()

    __hash__ = None  # mutable attributes; equality is by value

    # ------------------------------------------------------------------ coordinate mapping

    def input_to_heatmap(self, points: np.ndarray) -> np.ndarray:
        """``(..., 2)`` crop-input pixels -> heatmap pixels (float64)."""
        return np.asarray(points, dtype=np.float64) / self._factor

    def heatmap_to_input(self, points: np.ndarray) -> np.ndarray:
        """``(..., 2)`` heatmap pixels -> crop-input pixels (float64)."""
        return np.asarray(points, dtype=np.float64) * self._factor

    # ------------------------------------------------------------------ encoding

    def encode(self, keypoints: np.ndarray, visible: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Gaussian heatmap targets for one person.

        The Gaussian is cut to the ``(2 * 3 sigma + 1)``-pixel window around the rounded heatmap position, as in
        SimpleBaseline. A keypoint gets weight 1 when it is labelled (``visible > 0``), finite, and that window
        overlaps the heatmap; otherwise its weight is 0 and its heatmap is all zeros.

        Args:
            keypoints: ``(K, 2)`` keypoints in crop-input pixels.
            visible: ``(K,)`` COCO visibility (0 unlabelled, 1 labelled but occluded, 2 visible); ``> 0`` = labelled.

        Returns:
            ``heatmaps`` ``(K, h, w)`` float32 in [0, 1] (1 at the Gaussian centre) and ``target_weight`` ``(K,)``
            float32.
        """
        keypoints = np.asarray(keypoints, dtype=np.float64)
        visible = np.asarray(visible)
        if keypoints.ndim != 2 or keypoints.shape[1] < 2 or visible.shape != keypoints.shape[:1]:
            raise ValueError(
                f"encode expects keypoints (K, 2) and visible (K,), got {keypoints.shape} and {visible.shape}"
            )
        hm_h, hm_w = self.heatmap_size
        mu = self.input_to_heatmap(keypoints[:, :2])  # (K, 2) exact heatmap position
        finite = np.all(np.isfinite(mu), axis=1)
        mu = np.where(finite[:, None], mu, 0.0)
        # Classic rounding is int(x + 0.5); floor keeps it a true rounding for slightly negative positions too.
        mu_int = np.floor(mu + 0.5)
        radius = 3.0 * self.sigma
        size = int(2 * radius + 1)
        # SimpleBaseline's window: ul = int(mu - radius), br = ul + size (exclusive); Gaussian centre at mu_int.
        ul = np.floor(mu_int - radius)
        br = ul + size
        overlaps = (ul[:, 0] < hm_w) & (ul[:, 1] < hm_h) & (br[:, 0] > 0) & (br[:, 1] > 0)
        weight = ((visible > 0) & finite & overlaps).astype(np.float32)

        centre = mu if self.unbiased else mu_int
        xs = np.arange(hm_w, dtype=np.float64)
        ys = np.arange(hm_h, dtype=np.float64)
        # The 2-D Gaussian is separable: (K, h, 1) * (K, 1, w) builds all K heatmaps without a loop.
        gx = np.exp(-((xs[None, :] - centre[:, 0:1]) ** 2) / (2 * self.sigma**2))
        gy = np.exp(-((ys[None, :] - centre[:, 1:2]) ** 2) / (2 * self.sigma**2))
        gx *= (xs[None, :] >= ul[:, 0:1]) & (xs[None, :] < br[:, 0:1])
        gy *= (ys[None, :] >= ul[:, 1:2]) & (ys[None, :] < br[:, 1:2])
        # The 1-D factors are exact in float64; the (K, h, w) product is built in float32 (8x less work).
        gx = gx.astype(np.float32) * weight[:, None]
        heatmaps = gy.astype(np.float32)[:, :, None] * gx[:, None, :]
        return heatmaps, weight

    # ------------------------------------------------------------------ decoding

    def decode(self, heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Heatmaps -> keypoints in crop-input pixels and their scores.

        Args:
            heatmaps: ``(N, K, h, w)`` or ``(K, h, w)`` activated heatmaps (sigmoid probabilities for RCE models,
                raw outputs for MSE models).

        Returns:
            ``keypoints`` ``(N, K, 2)`` float64 in crop-input pixels and ``scores`` ``(N, K)`` (the heatmap value at
            the maximum, before any blur), or ``(K, 2)`` / ``(K,)`` for a single person.
        """
        heatmaps = np.asarray(heatmaps)
        single = heatmaps.ndim == 3
        if single:
            heatmaps = heatmaps[None]
        if heatmaps.ndim != 4:
            raise ValueError(f"decode expects heatmaps (N, K, h, w) or (K, h, w), got shape {heatmaps.shape}")
        if not np.issubdtype(heatmaps.dtype, np.floating):
            heatmaps = heatmaps.astype(np.float32)
        coords, scores = _argmax(heatmaps)
        if self.decode_mode == "quarter":
            coords = coords + _quarter_offset(heatmaps, coords)
        elif self.decode_mode == "dark":
            coords = coords + _dark_offset(heatmaps, coords, self.dark_kernel)
        keypoints = self.heatmap_to_input(coords)
        if single:
            return keypoints[0], scores[0]
        return keypoints, scores


# ---------------------------------------------------------------------- helpers


def _size_pair(size: Sequence[int], name: str) -> tuple[int, int]:
    try:
        h, w = (int(s) for s in size)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a (height, width) pair of integers, got {size!r}") from None
    if h <= 0 or w <= 0 or (h, w) != tuple(size):
        raise ConfigError(f"{name} must be a (height, width) pair of positive integers, got {size!r}")
    return h, w


def _argmax(heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integer maximum location ``(N, K, 2)`` (float64 x, y) and value ``(N, K)`` of ``(N, K, h, w)`` heatmaps."""
    n, k, h, w = heatmaps.shape
    flat = heatmaps.reshape(n, k, h * w)
    idx = np.argmax(flat, axis=2)
    scores = np.take_along_axis(flat, idx[..., None], axis=2)[..., 0]
    # Unlike SimpleBaseline we keep the location when the maximum is <= 0: the score already says it is unreliable.
    coords = np.stack([idx % w, idx // w], axis=-1).astype(np.float64)
    return coords, scores


def _gather(heatmaps: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``heatmaps[n, k, y[n, k], x[n, k]]`` for integer ``(N, K)`` index arrays (clipped into the map)."""
    n, k, h, w = heatmaps.shape
    x = np.clip(x, 0, w - 1)
    y = np.clip(y, 0, h - 1)
    return heatmaps[np.arange(n)[:, None], np.arange(k)[None, :], y, x]


def _quarter_offset(heatmaps: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """SimpleBaseline's refinement: 0.25 px toward the higher neighbour along each axis, ``(N, K, 2)``."""
    _, _, h, w = heatmaps.shape
    px = coords[..., 0].astype(np.int64)
    py = coords[..., 1].astype(np.int64)
    dx = _gather(heatmaps, px + 1, py) - _gather(heatmaps, px - 1, py)
    dy = _gather(heatmaps, px, py + 1) - _gather(heatmaps, px, py - 1)
    # Each axis needs both neighbours on that axis (SimpleBaseline's 1 < px < w - 1 also drops column 1).
    dx = np.where((px >= 1) & (px <= w - 2), dx, 0.0)
    dy = np.where((py >= 1) & (py <= h - 2), dy, 0.0)
    return 0.25 * np.stack([np.sign(dx), np.sign(dy)], axis=-1)


def _blur(heatmaps: np.ndarray, kernel: int) -> np.ndarray:
    """DARK's modulation: zero-padded Gaussian blur, rescaled so that each map keeps its original maximum.

    Args:
        heatmaps: ``(N, K, h, w)`` heatmaps.
        kernel: odd kernel size (sigma derived by OpenCV from it, as ``cv2.GaussianBlur(..., (k, k), 0)`` in the
            reference implementation).

    Returns:
        ``(N, K, h, w)`` float32 blurred heatmaps.
    """
    n, k, h, w = heatmaps.shape
    # OpenCV filters many channels at once; the maps become channels of (h, w, <=128) images (OpenCV 5's limit per
    # call; a larger one fails there). A zero border equals the reference's explicit zero padding.
    planes = heatmaps.astype(np.float32).reshape(n * k, h, w).transpose(1, 2, 0)
    blurred = np.empty((h, w, n * k), dtype=np.float32)
    for start in range(0, n * k, _CV_MAX_CHANNELS):
        chunk = np.ascontiguousarray(planes[:, :, start : start + _CV_MAX_CHANNELS])
        out = cv2.GaussianBlur(chunk, (kernel, kernel), 0, borderType=cv2.BORDER_CONSTANT)
        blurred[:, :, start : start + _CV_MAX_CHANNELS] = out.reshape(h, w, -1)
    blurred = blurred.transpose(2, 0, 1).reshape(n, k, h, w)
    orig_max = heatmaps.reshape(n, k, -1).max(axis=2).astype(np.float32)
    blur_max = blurred.reshape(n, k, -1).max(axis=2)
    ratio = np.divide(orig_max, blur_max, out=np.ones_like(blur_max), where=blur_max > 0)
    return blurred * ratio[..., None, None]


def _dark_offset(heatmaps: np.ndarray, coords: np.ndarray, kernel: int) -> np.ndarray:
    """DARK sub-pixel offset ``(N, K, 2)``: Newton step ``-H^-1 g`` on the log of the blurred heatmap."""
    _, _, h, w = heatmaps.shape
    logs = np.log(np.clip(_blur(heatmaps, kernel).astype(np.float64), 1e-10, 50.0))
    px = coords[..., 0].astype(np.int64)
    py = coords[..., 1].astype(np.int64)

    def at(dx: int, dy: int) -> np.ndarray:
        return _gather(logs, px + dx, py + dy)

    centre = at(0, 0)
    gx = 0.5 * (at(1, 0) - at(-1, 0))
    gy = 0.5 * (at(0, 1) - at(0, -1))
    # Second derivatives with step 2, as in the DARK reference implementation.
    hxx = 0.25 * (at(2, 0) - 2 * centre + at(-2, 0))
    hyy = 0.25 * (at(0, 2) - 2 * centre + at(0, -2))
    hxy = 0.25 * (at(1, 1) - at(1, -1) - at(-1, 1) + at(-1, -1))
    det = hxx * hyy - hxy**2
    # Only a negative-definite Hessian makes the Newton step point to a maximum; a flat (clipped) or saddle-shaped
    # neighbourhood keeps the integer location instead of jumping far away. The reference needs +-2 neighbours.
    ok = (det > 1e-12) & (hxx < 0) & (px >= 2) & (px <= w - 3) & (py >= 2) & (py <= h - 3)
    safe_det = np.where(ok, det, 1.0)
    ox = -(hyy * gx - hxy * gy) / safe_det
    oy = -(-hxy * gx + hxx * gy) / safe_det
    offset = np.stack([np.where(ok, ox, 0.0), np.where(ok, oy, 0.0)], axis=-1)
    # The true maximum lies within one pixel of the integer maximum; clipping guards near-singular Hessians.
    return np.clip(offset, -1.0, 1.0)
