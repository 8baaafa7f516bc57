"""OKS similarity and (soft) OKS-NMS against hand-computed values and a literal port of HRNet's loops."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from fasterpose.evaluation.nms import oks_iou, oks_nms, soft_oks_nms
from fasterpose.keypoints import COCO17

DATA = Path(__file__).parent / "data"


def _real_poses() -> tuple[np.ndarray, np.ndarray]:
    """(M, 17, 3) fully annotated COCO val2017 persons and their box areas."""
    d = json.loads((DATA / "coco_val2017_samples" / "person_keypoints.json").read_text())
    anns = [a for a in d["annotations"] if a["num_keypoints"] == 17]
    kp = np.array([a["keypoints"] for a in anns], dtype=np.float64).reshape(-1, 17, 3)
    kp[:, :, 2] = 0.9
    return kp, np.array([a["bbox"][2] * a["bbox"][3] for a in anns])


# --- literal port of HRNet lib/nms/nms.py (loops), the reference --------------------------------------------
def _hrnet_oks_iou(g, d, a_g, a_d, sigmas):
    variances = (sigmas * 2) ** 2
    xg, yg = g[0::3], g[1::3]
    ious = np.zeros(d.shape[0])
    for n in range(d.shape[0]):
        dx, dy = d[n, 0::3] - xg, d[n, 1::3] - yg
        e = (dx**2 + dy**2) / variances / ((a_g + a_d[n]) / 2 + np.spacing(1)) / 2
        ious[n] = np.sum(np.exp(-e)) / e.shape[0]
    return ious


def _hrnet_oks_nms(kpts, scores, areas, thresh, sigmas):
    kpts = kpts.reshape(len(kpts), -1)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size > 0:
        i = order[0]
        keep.append(i)
        ovr = _hrnet_oks_iou(kpts[i], kpts[order[1:]], areas[i], areas[order[1:]], sigmas)
        order = order[np.where(ovr <= thresh)[0] + 1]
    return keep


def _hrnet_soft_oks_nms(kpts, scores, areas, thresh, sigmas, max_dets=20):
    kpts = kpts.reshape(len(kpts), -1)
    order = np.argsort(-scores, kind="stable")
    scores = scores[order]
    keep = []
    while order.size > 0 and len(keep) < max_dets:
        i = order[0]
        ovr = _hrnet_oks_iou(kpts[i], kpts[order[1:]], areas[i], areas[order[1:]], sigmas)
        order = order[1:]
        scores = scores[1:] * np.exp(-(ovr**2) / thresh)
        tmp = np.argsort(-scores, kind="stable")
        order, scores = order[tmp], scores[tmp]
        keep.append(i)
    return keep


# --- oks_iou ---------------------------------------------------------------------------------------------------
def test_oks_iou_hand_computed_one_keypoint():
    # sigma 0.5 -> vars = (2 * 0.5)^2 = 1; d^2 = 3^2 + 4^2 = 25; mean area (20 + 30) / 2 = 25
    # e = 25 / 1 / 25 / 2 = 0.5 -> OKS = exp(-0.5); the identical pose has OKS 1.
    ref = np.array([[10.0, 10.0, 1.0]])
    others = np.array([[[13.0, 14.0, 1.0]], [[10.0, 10.0, 1.0]]])
    got = oks_iou(ref, others, 20.0, np.array([30.0, 20.0]), sigmas=np.array([0.5]))
    np.testing.assert_allclose(got, [math.exp(-0.5), 1.0], rtol=1e-12)  # float64 exp (numpy SIMD vs libm): ~4 ulp


def test_oks_iou_two_real_persons_hand_computed():
    kp, areas = _real_poses()
    ref = kp[0]
    shifted = ref.copy()
    shifted[:, :2] += (3.0, 4.0)  # every keypoint 5 px away
    mean_area = (areas[0] + areas[1]) / 2
    expected_shifted = np.mean(np.exp(-25.0 / (2 * COCO17.sigmas) ** 2 / (mean_area + np.spacing(1)) / 2))
    got = oks_iou(ref, np.stack([shifted, kp[1]]), areas[0], np.array([areas[1], areas[1]]))
    # float64 means of 17 positive exp terms in other orders: ~n u = 2e-15 relative, inside rel=1e-12.
    assert got[0] == pytest.approx(expected_shifted, rel=1e-12)
    assert got[1] == pytest.approx(_hrnet_oks_iou(ref.ravel(), kp[1:2].reshape(1, -1), areas[0], areas[1:2],
                                                  COCO17.sigmas)[0], rel=1e-12)
    assert 0.0 < got[1] < 0.01  # two different people of that image barely overlap


def test_oks_iou_vis_thr_uses_keypoints_visible_in_both():
    ref = np.array([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.1]])
    other = np.array([[[0.0, 0.0, 1.0], [100.0, 0.0, 0.1], [0.0, 0.0, 1.0]]])
    sig = np.array([0.1, 0.1, 0.1])
    # without vis_thr: the mean over all 3 keypoints (keypoint 1 is 100 px away: exp(-1250) ~ 0)
    full = oks_iou(ref, other, 100.0, [100.0], sig)[0]  # float64; exp(-1250) underflows to 0 on both sides
    assert full == pytest.approx((2 + math.exp(-1e4 / 0.04 / 100 / 2)) / 3)
    assert oks_iou(ref, other, 100.0, [100.0], sig, vis_thr=0.5)[0] == pytest.approx(1.0)  # only keypoint 0
    none_visible = other.copy()
    none_visible[0, 0, 2] = 0.0
    assert oks_iou(ref, none_visible, 100.0, [100.0], sig, vis_thr=0.5)[0] == 0.0


# --- oks_nms -----------------------------------------------------------------------------------------------------
def test_oks_nms_removes_near_duplicate_keeps_distinct_person():
    kp, areas = _real_poses()
    dup = kp[0].copy()
    dup[:, :2] += 1.0  # 1.4 px away: OKS ~ 1
    poses = np.stack([kp[0], dup, kp[1]])
    keep = oks_nms(poses, np.array([0.8, 0.9, 0.7]), np.array([areas[0], areas[0], areas[1]]), thr=0.9)
    assert keep.tolist() == [1, 2]  # best of the duplicates first, then the other person
    assert keep.dtype == np.int64
    assert oks_nms(np.zeros((0, 17, 3)), np.zeros(0), np.zeros(0)).tolist() == []


def test_oks_nms_matches_hrnet_reference_on_random_crowd():
    rng = np.random.default_rng(0)
    kp, areas = _real_poses()
    idx = rng.integers(0, len(kp), 60)
    poses = kp[idx] + rng.normal(0, 6, (60, 17, 3)) * [1, 1, 0]
    scores, ar = rng.random(60), areas[idx] * rng.uniform(0.8, 1.2, 60)
    for thr in (0.5, 0.9):
        assert oks_nms(poses, scores, ar, thr=thr).tolist() == _hrnet_oks_nms(poses, scores, ar, thr, COCO17.sigmas)
    soft = soft_oks_nms(poses, scores, ar, thr=0.9)
    assert soft.tolist() == _hrnet_soft_oks_nms(poses, scores, ar, 0.9, COCO17.sigmas)
    assert len(soft) == 20  # HRNet's max_dets


# --- soft_oks_nms ------------------------------------------------------------------------------------------------
def test_soft_nms_lowers_duplicate_score_and_keeps_distinct():
    kp, areas = _real_poses()
    dup = kp[0].copy()
    dup[:, :2] += 1.0
    poses = np.stack([kp[0], dup, kp[1]])
    scores = np.array([0.9, 0.85, 0.5])
    ar = np.array([areas[0], areas[0], areas[1]])
    keep, new = soft_oks_nms(poses, scores, ar, thr=0.3, return_scores=True)
    assert keep.tolist() == [0, 2, 1]  # the duplicate decays below the distinct person
    ovr = oks_iou(kp[0], dup[None], areas[0], [areas[0]])[0]
    assert new[0] == 0.9
    # Gaussian decay by OKS to the kept pose: the same float64 formula (approx's rel=1e-6 vs ulps)
    assert new[2] == pytest.approx(0.85 * math.exp(-(ovr**2) / 0.3))
    assert new[2] < 0.85 * 0.1
    # a distinct person is barely touched: OKS < 0.01 (see above) decays it by exp(-1e-4 / 0.3) > 1 - 4e-4
    assert new[1] == pytest.approx(0.5, rel=1e-3)
    lin_keep, lin = soft_oks_nms(poses, scores, ar, thr=0.3, method="linear", return_scores=True)
    assert lin[list(lin_keep).index(1)] == pytest.approx(0.85 * (1 - ovr))
    assert soft_oks_nms(poses, scores, ar, max_dets=2).tolist() == [0, 2]
    with pytest.raises(ValueError, match="method"):
        soft_oks_nms(poses, scores, ar, method="box")
