"""Tests for fasterpose.geometry: boxes, warp matrices (classic/UDP), crops, point mapping, normalisation, flips."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from fasterpose.geometry import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    box_to_center_scale,
    crop_person,
    crop_to_image,
    flip_center,
    flip_image,
    flip_keypoints,
    get_warp_matrices,
    get_warp_matrix,
    normalize_crop,
    transform_points,
)
from fasterpose.keypoints import COCO17

COCO_DIR = Path(__file__).parent / "data" / "coco_val2017_samples"
INPUT_SIZE = (256, 192)  # (H, W)


@pytest.fixture(scope="module")
def coco():
    with open(COCO_DIR / "person_keypoints.json") as f:
        data = json.load(f)
    images = {im["id"]: im for im in data["images"]}
    return images, data["annotations"]


def _load_person(coco, min_keypoints: int = 17):
    """The first annotation with at least ``min_keypoints`` labelled keypoints, with its BGR image."""
    images, anns = coco
    ann = next(a for a in anns if a["num_keypoints"] >= min_keypoints)
    image = cv2.imread(str(COCO_DIR / images[ann["image_id"]]["file_name"]))
    assert image is not None
    kpts = np.array(ann["keypoints"], dtype=np.float64).reshape(-1, 3)
    return image, ann, kpts[:, :2], kpts[:, 2]


def _reference_affine(center, scale, rot, output_size, inv=False):
    """SimpleBaseline / mmpose ``get_affine_transform`` (3 points + cv2.getAffineTransform), scale in pixels."""
    out_h, out_w = output_size
    src_w = scale[0]
    rot_rad = np.pi * rot / 180

    def rotate(pt, rad):
        sn, cs = np.sin(rad), np.cos(rad)
        return np.array([pt[0] * cs - pt[1] * sn, pt[0] * sn + pt[1] * cs])

    def third(a, b):
        d = a - b
        return b + np.array([-d[1], d[0]])

    src_dir = rotate([0, src_w * -0.5], rot_rad)
    dst_dir = np.array([0, out_w * -0.5])
    src = np.zeros((3, 2), np.float32)
    dst = np.zeros((3, 2), np.float32)
    src[0] = center
    src[1] = center + src_dir
    dst[0] = [out_w * 0.5, out_h * 0.5]
    dst[1] = dst[0] + dst_dir
    src[2] = third(src[0], src[1])
    dst[2] = third(dst[0], dst[1])
    return cv2.getAffineTransform(dst, src) if inv else cv2.getAffineTransform(src, dst)


def _reference_udp(center, scale, rot, output_size):
    """Huang et al.'s ``get_warpmatrix`` (UDP reference code) expressed with center/scale in pixels."""
    theta = math.radians(rot)
    out_h, out_w = output_size
    size_input = 2 * np.asarray(center)  # the reference is called with size_input = c * 2
    sx, sy = (out_w - 1) / scale[0], (out_h - 1) / scale[1]
    m = np.zeros((2, 3))
    m[0, 0] = math.cos(theta) * sx
    m[0, 1] = math.sin(theta) * sx
    m[0, 2] = sx * (-0.5 * size_input[0] * math.cos(theta) - 0.5 * size_input[1] * math.sin(theta) + 0.5 * scale[0])
    m[1, 0] = -math.sin(theta) * sy
    m[1, 1] = math.cos(theta) * sy
    m[1, 2] = sy * (0.5 * size_input[0] * math.sin(theta) - 0.5 * size_input[1] * math.cos(theta) + 0.5 * scale[1])
    return m


# ---------------------------------------------------------------------------------------------- box_to_center_scale


def test_box_to_center_scale_tall_box_grows_width():
    center, scale = box_to_center_scale([10, 20, 30, 80], aspect_ratio=0.75)
    # w=30 < 0.75*80=60 -> w=60; then *1.25 (all exact in float64)
    np.testing.assert_allclose(center, [25.0, 60.0])
    np.testing.assert_allclose(scale, [75.0, 100.0])


def test_box_to_center_scale_wide_box_grows_height_and_batches():
    boxes = np.array([[0, 0, 100, 40], [10, 20, 30, 80]], dtype=np.float64)
    center, scale = box_to_center_scale(boxes, aspect_ratio=0.75, padding=1.0)
    assert center.shape == (2, 2) and scale.shape == (2, 2)
    np.testing.assert_allclose(center, [[50.0, 20.0], [25.0, 60.0]])
    np.testing.assert_allclose(scale, [[100.0, 100.0 / 0.75], [60.0, 80.0]])  # the same float64 operations
    np.testing.assert_allclose(scale[:, 0] / scale[:, 1], 0.75)  # two float64 roundings: ~2e-16 relative


# ---------------------------------------------------------------------------------------------- warp matrices


def test_warp_matrix_hand_computed_classic_and_udp():
    center, scale, out = (100.0, 50.0), (40.0, 80.0), (256, 192)
    m = get_warp_matrix(center, scale, out)
    # factor 192/40 = 4.8 on both axes; centre -> (96, 128). float64 entries <= 400: a few ulp(400) = 5.7e-14 off.
    np.testing.assert_allclose(m, [[4.8, 0.0, 96 - 480.0], [0.0, 4.8, 128 - 240.0]], atol=1e-12)
    assert m.dtype == np.float64 and m.shape == (2, 3)
    m_udp = get_warp_matrix(center, scale, out, udp=True)
    # factors 191/40 and 255/80; centre -> (95.5, 127.5)
    sx, sy = 191 / 40, 255 / 80
    np.testing.assert_allclose(m_udp, [[sx, 0.0, 95.5 - 100 * sx], [0.0, sy, 127.5 - 50 * sy]], atol=1e-12)
    np.testing.assert_allclose(transform_points(np.array([100.0, 50.0]), m), [96.0, 128.0])
    # Zero from cancelling float64 terms of ~400 (any BLAS kernel): a few ulp(400) = 5.7e-14.
    np.testing.assert_allclose(transform_points(np.array([80.0, 10.0]), m_udp), [0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(transform_points(np.array([120.0, 90.0]), m_udp), [191.0, 255.0], atol=1e-12)


@pytest.mark.parametrize("rot", [0.0, 30.0, -47.5, 180.0])
def test_classic_matrix_matches_simplebaseline_reference(rot):
    center, scale = np.array([321.5, 210.25]), np.array([150.0, 200.0])
    ours = get_warp_matrix(center, scale, INPUT_SIZE, rot=rot)
    # The reference rounds its 3 points (|p| < 500) to float32 (<= 3e-5 px) before solving over a 75 px baseline:
    # ~1e-6 relative in the linear part, times |centre| ~ 400 in the translation (measured <= 3.4e-5).
    np.testing.assert_allclose(ours, _reference_affine(center, scale, rot, INPUT_SIZE), atol=1e-3)
    inv = get_warp_matrix(center, scale, INPUT_SIZE, rot=rot, inverse=True)
    np.testing.assert_allclose(inv, _reference_affine(center, scale, rot, INPUT_SIZE, inv=True), atol=1e-3)


@pytest.mark.parametrize("rot", [0.0, 25.0, -60.0])
def test_udp_matrix_matches_huang_reference(rot):
    center, scale = np.array([321.5, 210.25]), np.array([150.0, 200.0])
    ours = get_warp_matrix(center, scale, INPUT_SIZE, rot=rot, udp=True)
    # Both float64, operations in another order: a few ulp of entries <= 700, ~1e-13.
    np.testing.assert_allclose(ours, _reference_udp(center, scale, rot, INPUT_SIZE), atol=1e-9)


def test_positive_rotation_turns_content_counter_clockwise():
    m = get_warp_matrix((0.0, 0.0), (100.0, 100.0), (100, 100), rot=90.0)
    # A point to the right of the centre appears above it in the crop (y points down).
    u = transform_points(np.array([10.0, 0.0]), m) - transform_points(np.array([0.0, 0.0]), m)
    np.testing.assert_allclose(u, [0.0, -10.0], atol=1e-9)  # float64: cos(pi / 2) = 6e-17, values ~10


@pytest.mark.parametrize("udp", [False, True])
def test_inverse_is_exact_and_batched_matches_single(udp):
    rng = np.random.default_rng(0)
    centers = rng.uniform(0, 600, (5, 2))
    scales = rng.uniform(50, 400, (5, 2))
    rots = rng.uniform(-45, 45, 5)
    fwd = get_warp_matrices(centers, scales, INPUT_SIZE, rot=rots, udp=udp)
    inv = get_warp_matrices(centers, scales, INPUT_SIZE, rot=rots, udp=udp, inverse=True)
    assert fwd.shape == (5, 2, 3)
    for i in range(5):
        # The same float64 elementwise formulas for one or five regions (rtol 1e-7 vs ~1e-15).
        np.testing.assert_allclose(fwd[i], get_warp_matrix(centers[i], scales[i], INPUT_SIZE, rots[i], udp=udp))
        full = np.vstack([fwd[i], [0, 0, 1]]) @ np.vstack([inv[i], [0, 0, 1]])
        # The translation column cancels products of linear parts <= 5.1 (255 / 50) and translations <= ~1800:
        # terms <= ~9e3, so a few roundings of ulp(8192) = 1.8e-12 (measured 1.1e-13); 1e-12 would be ~1 ulp.
        np.testing.assert_allclose(full, np.eye(3), atol=1e-11)


def test_transform_points_batched_matrices():
    rng = np.random.default_rng(1)
    pts = rng.uniform(0, 100, (3, 4, 2))
    mats = get_warp_matrices(rng.uniform(0, 100, (3, 2)), rng.uniform(20, 80, (3, 2)), INPUT_SIZE)
    out = transform_points(pts, mats)
    assert out.shape == (3, 4, 2)
    for i in range(3):
        # einsum vs BLAS matmul in float64: ~1e-13 absolute on outputs >= 9 px, far inside rtol 1e-7.
        np.testing.assert_allclose(out[i], transform_points(pts[i], mats[i]))
    with pytest.raises(ValueError):
        transform_points(pts[:2], mats)


# ---------------------------------------------------------------------------------------------- crops on real data


@pytest.mark.parametrize("udp", [False, True])
@pytest.mark.parametrize("rot", [0.0, 35.0])
def test_real_person_crop_round_trip(coco, udp, rot):
    image, ann, kpts, vis = _load_person(coco)
    labelled = vis > 0
    center, scale = box_to_center_scale(ann["bbox"], aspect_ratio=INPUT_SIZE[1] / INPUT_SIZE[0])
    crop, m = crop_person(image, center, scale, INPUT_SIZE, rot=rot, udp=udp)
    assert crop.shape == (*INPUT_SIZE, 3) and crop.dtype == np.uint8
    np.testing.assert_allclose(m, get_warp_matrix(center, scale, INPUT_SIZE, rot=rot, udp=udp))  # same call: exact

    in_crop = transform_points(kpts, m)
    # The padded box contains every keypoint, so they all land inside the crop.
    assert np.all((in_crop[labelled] >= 0) & (in_crop[labelled] <= [INPUT_SIZE[1] - 1, INPUT_SIZE[0] - 1]))
    if rot == 0.0:
        back = crop_to_image(in_crop[None], center[None], scale[None], INPUT_SIZE, udp=udp)[0]
    else:
        back = transform_points(in_crop, get_warp_matrix(center, scale, INPUT_SIZE, rot=rot, udp=udp, inverse=True))
    assert np.abs(back - kpts)[labelled].max() < 0.5
    np.testing.assert_allclose(back, kpts, atol=1e-6)  # float64 round trip of points < 1000 px: ~1e-13

    # The matrix describes what cv2.warpAffine drew: crop pixel (u, v) shows the image at M^-1 (u, v).
    uv = np.round(in_crop[labelled]).astype(int)
    src = transform_points(uv.astype(np.float64), get_warp_matrix(center, scale, INPUT_SIZE, rot, udp, inverse=True))
    map_x = src[:, 0].astype(np.float32).reshape(1, -1)
    map_y = src[:, 1].astype(np.float32).reshape(1, -1)
    expected = cv2.remap(image.astype(np.float32), map_x, map_y, cv2.INTER_LINEAR)[0]
    got = crop[uv[:, 1], uv[:, 0]].astype(np.float32)
    # warpAffine rounds to uint8 (0.5 level); it and remap quantise sub-pixel positions to 1/32 px (fixed point)
    # or float32 (3e-5 px): a position rounded to another 1/32 cell costs (|I_x| + |I_y|) / 32, so 0.5 + 2.5
    # levels hold for gradients < 80 levels/px at these keypoints (measured 1.3). A wrong matrix is tens off.
    assert np.abs(got - expected).max() <= 3.0


def test_crop_to_image_vectorised_over_people(coco):
    _, anns = coco
    anns = [a for a in anns if a["num_keypoints"] > 0]
    boxes = np.array([a["bbox"] for a in anns])
    kpts = np.array([a["keypoints"] for a in anns], dtype=np.float64).reshape(len(anns), -1, 3)[..., :2]
    centers, scales = box_to_center_scale(boxes, 0.75)
    for udp in (False, True):
        mats = get_warp_matrices(centers, scales, INPUT_SIZE, udp=udp)
        in_crop = transform_points(kpts, mats)
        back = crop_to_image(in_crop, centers, scales, INPUT_SIZE, udp=udp)
        assert back.shape == kpts.shape
        np.testing.assert_allclose(back, kpts, atol=1e-6)  # float64 round trip of points < 1000 px: ~1e-13
        for i in range(len(anns)):
            single = crop_to_image(in_crop[i], centers[i], scales[i], INPUT_SIZE, udp=udp)
            # BLAS matmul (one person) vs einsum (batch): float64 sums in another order / with FMA, a few
            # ulp(1000) = 1e-13 absolute; unlabelled (0, 0) keypoints map back to ~1e-13, so rtol alone cannot do.
            np.testing.assert_allclose(single, back[i], rtol=1e-7, atol=1e-9)


def test_crop_border_value_fills_outside():
    image = np.full((20, 30, 3), 200, np.uint8)
    crop, _ = crop_person(image, (0.0, 0.0), (30.0, 40.0), (32, 24), border_value=(1, 2, 3))
    assert tuple(crop[0, 0]) == (1, 2, 3)  # top-left of the crop is outside the image
    assert tuple(crop[-1, -1]) == (200, 200, 200)


# ---------------------------------------------------------------------------------------------- normalisation


def test_normalize_crop_matches_manual():
    rng = np.random.default_rng(2)
    crops = rng.integers(0, 256, (2, 4, 5, 3), dtype=np.uint8)
    out = normalize_crop(crops)
    assert out.shape == (2, 3, 4, 5) and out.dtype == np.float32 and out.flags.c_contiguous
    mean = (123.675, 116.28, 103.53)
    std = (58.395, 57.12, 57.375)
    for c in range(3):  # output channel c is RGB channel c = BGR channel 2 - c
        manual = (crops[..., 2 - c].astype(np.float64) - mean[c]) / std[c]
        # float32 mean/std constants and two float32 operations on values <= 255: ~1e-5 / 57 + 4.4 * 1.2e-7 = 7e-7.
        np.testing.assert_allclose(out[:, c], manual, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(normalize_crop(crops[1]), out[1])  # IEEE elementwise float32 ops: bit-identical
    # float32 rounding of the float64 constants: <= 2^-24 = 6e-8 relative, inside the default rtol 1e-7.
    np.testing.assert_allclose(IMAGENET_MEAN, mean)
    np.testing.assert_allclose(IMAGENET_STD, std)


# ---------------------------------------------------------------------------------------------- flips


def test_flip_real_annotation_swaps_sides_and_mirrors_pixels(coco):
    image, _, kpts, vis = _load_person(coco)
    width = image.shape[1]
    flipped_image = flip_image(image)
    assert flipped_image.flags.c_contiguous
    np.testing.assert_array_equal(flipped_image[:, 0], image[:, -1])
    new_kpts, new_vis = flip_keypoints(kpts, vis, width, COCO17.flip_index)
    ls, rs = COCO17.names.index("left_shoulder"), COCO17.names.index("right_shoulder")
    np.testing.assert_allclose(new_kpts[ls], [width - 1 - kpts[rs, 0], kpts[rs, 1]])  # same float64 ops: exact
    assert new_vis[ls] == vis[rs]
    # The flipped image shows at the flipped keypoint what the original showed at the original one.
    new_index = np.argsort(COCO17.flip_index)  # new_index[k]: where old keypoint k ends up
    for k in np.flatnonzero(vis > 0):
        x, y = np.round(kpts[k]).astype(int)
        nx, ny = np.round(new_kpts[new_index[k]]).astype(int)
        np.testing.assert_array_equal(flipped_image[ny, nx], image[y, x])
    # Flipping twice is the identity, inputs are not modified.
    twice, twice_vis = flip_keypoints(new_kpts, new_vis, width, COCO17.flip_index)
    np.testing.assert_allclose(twice, kpts)  # integer pixel coordinates: exact in float64
    np.testing.assert_array_equal(twice_vis, vis)
    np.testing.assert_array_equal(flip_image(flipped_image), image)


def test_flip_keypoints_batched_and_without_visibility():
    rng = np.random.default_rng(3)
    kpts = rng.uniform(0, 100, (4, 17, 2))
    out, vis = flip_keypoints(kpts, None, 100, COCO17.flip_index)
    assert vis is None and out.shape == kpts.shape
    np.testing.assert_allclose(out[:, 1, 0], 99 - kpts[:, 2, 0])  # the same float64 subtraction: exact
    np.testing.assert_allclose(out[:, 0], [[99, 0]] + kpts[:, 0] * [-1, 1])


def test_flip_center_udp_crop_is_exact_mirror(coco):
    image, ann, _, _ = _load_person(coco)
    center, scale = box_to_center_scale(ann["bbox"], 0.75)
    fcenter = flip_center(center, image.shape[1])
    crop, _ = crop_person(image, center, scale, INPUT_SIZE, udp=True)
    crop_f, _ = crop_person(flip_image(image), fcenter, scale, INPUT_SIZE, udp=True)
    # UDP: the crop of the flipped image is the mirrored crop, up to warpAffine's 1/32 px fixed-point coordinates
    # (which round mirrored sub-pixel positions differently and so may differ by a few levels on sharp edges).
    diff = np.abs(crop_f.astype(int) - flip_image(crop).astype(int))
    assert diff.mean() < 0.05 and np.percentile(diff, 99.9) <= 1
    # Classic: it is the mirrored crop shifted by one pixel, which is what flip_back(shift=True) compensates.
    crop, _ = crop_person(image, center, scale, INPUT_SIZE)
    crop_f, _ = crop_person(flip_image(image), fcenter, scale, INPUT_SIZE)
    diff = np.abs(crop_f[:, 1:].astype(int) - flip_image(crop)[:, :-1].astype(int))
    assert diff.mean() < 0.05 and np.percentile(diff, 99.9) <= 1
    assert np.abs(crop_f.astype(int) - flip_image(crop).astype(int)).mean() > 2


def test_module_does_not_import_torch():
    code = "import sys, fasterpose.geometry, fasterpose.codec; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
