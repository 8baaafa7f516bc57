"""Top-down geometry: person box -> center/scale, affine crops (classic and UDP), point mapping, input normalisation.

Conventions (docs/design.md): sizes are ``(height, width)``; points, ``center`` and ``scale`` are ``(x, y)``;
``scale`` is the region size ``(w, h)`` in image pixels (already aspect-fixed and padded, no 200 px unit). Pixel
coordinates use the pixel-centre convention: pixel ``i`` covers ``[i - 0.5, i + 0.5]``.

Two crop transforms exist:

* **classic** (SimpleBaseline / HRNet / mmpose ``get_affine_transform``): ``center`` goes to ``(W/2, H/2)`` and one
  uniform factor ``W / scale_w`` is used. It is half a pixel off under the pixel-centre convention, which is why the
  classic flip test shifts the flipped heatmap by one pixel.
* **UDP** (Huang et al. 2020, "The Devil is in the Details", mmpose ``get_udp_warp_matrix``): ``center`` goes to
  ``((W-1)/2, (H-1)/2)`` with factors ``(W-1)/scale_w`` and ``(H-1)/scale_h``, so the first and last crop pixels
  sit exactly on the region edges and a horizontal flip maps the crop grid onto itself.

This module must not import torch: the onnxruntime predictor uses it.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "box_to_center_scale",
    "get_warp_matrix",
    "get_warp_matrices",
    "transform_points",
    "crop_person",
    "crop_to_image",
    "normalize_crop",
    "flip_image",
    "flip_keypoints",
    "flip_center",
]

# ImageNet statistics in RGB order on the 0-255 scale (torchvision's values times 255), so uint8 crops are
# normalised without a separate division by 255.
IMAGENET_MEAN = np.array([123.675, 116.28, 103.53], dtype=np.float32)
IMAGENET_STD = np.array([58.395, 57.12, 57.375], dtype=np.float32)


def box_to_center_scale(
    boxes: np.ndarray | Sequence[float], aspect_ratio: float, padding: float = 1.25
) -> tuple[np.ndarray, np.ndarray]:
    """Convert person boxes to the center/scale of the region to crop.

    The shorter side (relative to ``aspect_ratio``) is enlarged so that the region has the model input's aspect
    ratio, then both sides are multiplied by ``padding`` (SimpleBaseline's ``_box2cs`` without the 200 px unit).

    Args:
        boxes: ``(4,)`` or ``(N, 4)`` boxes ``(x, y, w, h)`` in image pixels (COCO ``bbox``).
        aspect_ratio: model input ``width / height`` (0.75 for 256x192).
        padding: enlargement factor applied after fixing the aspect ratio.

    Returns:
        ``center`` ``(..., 2)`` = ``(x + w/2, y + h/2)`` and ``scale`` ``(..., 2)`` = region ``(w, h)`` in pixels,
        both float64 with the leading shape of ``boxes``.
    """
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.shape[-1] != 4:
        raise ValueError(f"boxes must have shape (4,) or (N, 4) in xywh order, got {boxes.shape}")
    if aspect_ratio <= 0:
        raise ValueError(f"aspect_ratio must be positive, got {aspect_ratio}")
    x, y, w, h = np.moveaxis(boxes, -1, 0)
    center = np.stack([x + 0.5 * w, y + 0.5 * h], axis=-1)
    # Only one side grows: the region always contains the whole box.
    wide = w > aspect_ratio * h
    w_fixed = np.where(wide, w, h * aspect_ratio)
    h_fixed = np.where(wide, w / aspect_ratio, h)
    scale = np.stack([w_fixed, h_fixed], axis=-1) * padding
    return center, scale


def get_warp_matrices(
    center: np.ndarray,
    scale: np.ndarray,
    output_size: Sequence[int],
    rot: float | np.ndarray = 0.0,
    udp: bool = False,
    inverse: bool = False,
) -> np.ndarray:
    """Vectorised :func:`get_warp_matrix` for a batch of regions.

    Args:
        center: ``(..., 2)`` region centres ``(x, y)`` in image pixels.
        scale: ``(..., 2)`` region sizes ``(w, h)`` in image pixels.
        output_size: crop size ``(H, W)``.
        rot: rotation in degrees, scalar or broadcastable to the leading shape.
        udp: unbiased (UDP) transform instead of the classic one.
        inverse: return the crop -> image matrices instead.

    Returns:
        ``(..., 2, 3)`` float64 affine matrices.
    """
    center = np.asarray(center, dtype=np.float64)
    scale = np.asarray(scale, dtype=np.float64)
    out_h, out_w = (float(s) for s in output_size)
    if np.any(scale <= 0):
        raise ValueError("scale must be positive (region width and height in pixels)")
    theta = np.deg2rad(np.asarray(rot, dtype=np.float64))
    batch = np.broadcast_shapes(center.shape[:-1], scale.shape[:-1], theta.shape)
    cos = np.broadcast_to(np.cos(theta), batch)
    sin = np.broadcast_to(np.sin(theta), batch)
    if udp:
        sx = (out_w - 1.0) / scale[..., 0]
        sy = (out_h - 1.0) / scale[..., 1]
        dst = np.array([(out_w - 1.0) / 2.0, (out_h - 1.0) / 2.0])
    else:
        # The classic transform uses the width factor for both axes (get_affine_transform only looks at src_w).
        sx = out_w / scale[..., 0]
        sy = sx
        dst = np.array([out_w / 2.0, out_h / 2.0])
    sx = np.broadcast_to(sx, batch)
    sy = np.broadcast_to(sy, batch)
    center = np.broadcast_to(center, (*batch, 2))
    # Forward: crop = diag(sx, sy) @ R(-rot) @ (p - center) + dst, with R(a) = [[cos, -sin], [sin, cos]]. This is
    # what mmpose's 3-point get_affine_transform produces (a positive angle turns the person counter-clockwise
    # in the crop, i.e. the crop window is rotated clockwise on the image).
    a = np.empty((*batch, 2, 2))
    if not inverse:
        a[..., 0, 0] = sx * cos
        a[..., 0, 1] = sx * sin
        a[..., 1, 0] = -sy * sin
        a[..., 1, 1] = sy * cos
        t = dst - np.einsum("...ij,...j->...i", a, center)
    else:
        # Exact inverse: p = R(rot) @ diag(1/sx, 1/sy) @ (crop - dst) + center.
        a[..., 0, 0] = cos / sx
        a[..., 0, 1] = -sin / sy
        a[..., 1, 0] = sin / sx
        a[..., 1, 1] = cos / sy
        t = center - np.einsum("...ij,j->...i", a, dst)
    return np.concatenate([a, t[..., None]], axis=-1)


def get_warp_matrix(
    center: np.ndarray | Sequence[float],
    scale: np.ndarray | Sequence[float],
    output_size: Sequence[int],
    rot: float = 0.0,
    udp: bool = False,
    inverse: bool = False,
) -> np.ndarray:
    """Affine matrix mapping image pixels to crop pixels (or back with ``inverse=True``).

    The crop of size ``output_size = (H, W)`` shows the region of size ``scale`` around ``center``, rotated by
    ``rot`` degrees (SimpleBaseline/mmpose sign convention; the same for classic and UDP). Built analytically
    (rotation, scale, translation), so ``inverse`` is the exact inverse.

    Args:
        center: ``(2,)`` region centre ``(x, y)`` in image pixels.
        scale: ``(2,)`` region size ``(w, h)`` in image pixels.
        output_size: crop size ``(H, W)``.
        rot: rotation in degrees.
        udp: UDP transform (centre -> ``((W-1)/2, (H-1)/2)``, factors ``(W-1)/w``, ``(H-1)/h``) instead of the
            classic one (centre -> ``(W/2, H/2)``, factor ``W/w``).
        inverse: return the crop -> image matrix.

    Returns:
        ``(2, 3)`` float64 matrix ``M`` with ``[u, v] = M @ [x, y, 1]``.
    """
    center = np.asarray(center, dtype=np.float64)
    scale = np.asarray(scale, dtype=np.float64)
    if center.shape != (2,) or scale.shape != (2,):
        raise ValueError(f"center and scale must have shape (2,), got {center.shape} and {scale.shape}; "
                         "use get_warp_matrices for batches")
    return get_warp_matrices(center, scale, output_size, rot=float(rot), udp=udp, inverse=inverse)


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply affine matrices to points.

    Args:
        points: ``(..., 2)`` points ``(x, y)`` with one ``(2, 3)`` matrix, or ``(N, K, 2)`` with ``(N, 2, 3)``
            matrices (one per leading index; more generally ``(..., K, 2)`` with ``(..., 2, 3)``).
        matrix: ``(2, 3)`` or ``(N, 2, 3)`` affine matrices.

    Returns:
        Transformed points with the shape of ``points`` (float64, or the input float dtype if float32).
    """
    points = np.asarray(points)
    matrix = np.asarray(matrix, dtype=np.float64)
    if points.shape[-1] != 2 or matrix.shape[-2:] != (2, 3):
        raise ValueError(f"expected points (..., 2) and matrix (..., 2, 3), got {points.shape} and {matrix.shape}")
    dtype = points.dtype if points.dtype in (np.float32, np.float64) else np.float64
    p = points.astype(np.float64, copy=False)
    if matrix.ndim == 2:
        out = p @ matrix[:, :2].T + matrix[:, 2]
    else:
        if p.ndim != matrix.ndim or p.shape[:-2] != matrix.shape[:-2]:
            raise ValueError(f"batched matrices {matrix.shape} need points of shape {(*matrix.shape[:-2], 'K', 2)}, "
                             f"got {points.shape}")
        out = np.einsum("...ij,...kj->...ki", matrix[..., :2], p) + matrix[..., None, :, 2]
    return out.astype(dtype, copy=False)


def crop_person(
    image: np.ndarray,
    center: np.ndarray | Sequence[float],
    scale: np.ndarray | Sequence[float],
    output_size: Sequence[int],
    rot: float = 0.0,
    udp: bool = False,
    border_value: int | Sequence[int] = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Cut the person region out of an image with an affine warp (bilinear).

    Args:
        image: ``(h, w, 3)`` BGR uint8 image (any OpenCV-supported image works).
        center: ``(2,)`` region centre ``(x, y)``.
        scale: ``(2,)`` region size ``(w, h)`` in pixels.
        output_size: crop size ``(H, W)``.
        rot: rotation in degrees.
        udp: use the UDP transform.
        border_value: fill value outside the image (scalar or per channel).

    Returns:
        ``crop`` ``(H, W, 3)`` of the image's dtype and the ``(2, 3)`` image -> crop matrix.
    """
    out_h, out_w = (int(s) for s in output_size)
    matrix = get_warp_matrix(center, scale, (out_h, out_w), rot=rot, udp=udp)
    if np.isscalar(border_value):
        border = (float(border_value),) * 4
    else:
        border = tuple(float(v) for v in border_value)
    crop = cv2.warpAffine(
        image, matrix, (out_w, out_h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=border
    )
    return crop, matrix


def crop_to_image(
    points: np.ndarray,
    center: np.ndarray,
    scale: np.ndarray,
    input_size: Sequence[int],
    udp: bool = False,
) -> np.ndarray:
    """Map points from crop-input pixels back to image pixels (inverse warp, no rotation), vectorised over N.

    Args:
        points: ``(N, K, 2)`` points in crop-input pixels (or ``(K, 2)`` with ``(2,)`` center/scale).
        center: ``(N, 2)`` region centres used for the crops.
        scale: ``(N, 2)`` region sizes used for the crops.
        input_size: crop (model input) size ``(H, W)``.
        udp: the crops were made with the UDP transform.

    Returns:
        ``(N, K, 2)`` float64 points in image pixels.
    """
    points = np.asarray(points, dtype=np.float64)
    matrices = get_warp_matrices(center, scale, input_size, rot=0.0, udp=udp, inverse=True)
    return transform_points(points, matrices)


def normalize_crop(crops: np.ndarray, channel_order: str = "rgb") -> np.ndarray:
    """BGR uint8 crops -> network input: RGB, ImageNet mean/std normalised, channels first.

    Args:
        crops: ``(H, W, 3)`` or ``(N, H, W, 3)`` BGR images (uint8, or float on the 0-255 scale).
        channel_order: ``"rgb"`` (every model trained here, MMPose) or ``"bgr"``: the channels stay in OpenCV's
            order and are still normalised with the RGB-ordered ImageNet statistics, as the official SimpleBaseline
            code did (``PoseSpec.channel_order``).

    Returns:
        ``(3, H, W)`` or ``(N, 3, H, W)`` C-contiguous float32.
    """
    if channel_order not in ("rgb", "bgr"):
        raise ValueError(f"channel_order must be 'rgb' or 'bgr', got {channel_order!r}")
    crops = np.asarray(crops)
    if crops.ndim not in (3, 4) or crops.shape[-1] != 3:
        raise ValueError(f"crops must be (H, W, 3) or (N, H, W, 3) BGR images, got shape {crops.shape}")
    out = np.empty(crops.shape[:-3] + (3,) + crops.shape[-3:-1], dtype=np.float32)
    # Per channel into the channels-first output: BGR->RGB, the subtraction and the layout change in one pass.
    for c in range(3):
        source = 2 - c if channel_order == "rgb" else c
        np.subtract(crops[..., source], IMAGENET_MEAN[c], out=out[..., c, :, :], dtype=np.float32)
        out[..., c, :, :] /= IMAGENET_STD[c]
    return out


def flip_image(image: np.ndarray) -> np.ndarray:
    """Mirror an ``(H, W[, C])`` image horizontally (contiguous copy, as OpenCV needs)."""
    return np.ascontiguousarray(np.asarray(image)[:, ::-1])


def flip_keypoints(
    keypoints: np.ndarray,
    visible: np.ndarray | None,
    image_width: float,
    flip_index: np.ndarray | Sequence[int],
) -> tuple[np.ndarray, np.ndarray | None]:
    """Mirror keypoints for a horizontally flipped image and swap left/right labels.

    ``x' = image_width - 1 - x`` (pixel-centre convention: pixel ``i`` lands on pixel ``W - 1 - i``, matching
    :func:`flip_image`), then keypoint ``i`` of the result is keypoint ``flip_index[i]`` of the input.

    Args:
        keypoints: ``(..., K, 2)`` points ``(x, y)`` (extra trailing columns, e.g. ``(..., K, 3)``, are permuted but
            not mirrored).
        visible: ``(..., K)`` visibility or scores, permuted the same way; may be ``None``.
        image_width: width of the image the keypoints live in (the crop width when flipping crop coordinates).
        flip_index: ``(K,)`` permutation, :attr:`fasterpose.keypoints.KeypointSet.flip_index`.

    Returns:
        New ``keypoints`` and ``visible`` arrays (inputs are not modified).
    """
    keypoints = np.asarray(keypoints)
    flip_index = np.asarray(flip_index, dtype=np.int64)
    if keypoints.shape[-2] != flip_index.shape[0]:
        raise ValueError(f"flip_index has {flip_index.shape[0]} entries but keypoints have K={keypoints.shape[-2]}")
    out = keypoints[..., flip_index, :].astype(np.result_type(keypoints.dtype, np.float32), copy=True)
    out[..., 0] = image_width - 1 - out[..., 0]
    vis = None if visible is None else np.asarray(visible)[..., flip_index].copy()
    return out, vis


def flip_center(center: np.ndarray | Sequence[float], image_width: float) -> np.ndarray:
    """Mirror region centres ``(..., 2)`` like :func:`flip_keypoints` (the scale does not change)."""
    out = np.array(center, dtype=np.float64, copy=True)
    out[..., 0] = image_width - 1 - out[..., 0]
    return out
