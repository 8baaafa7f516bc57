"""MPII PCKh: a hand-computed toy case, the real MPII samples, head sizes and the .mat reader."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from fasterpose.errors import DataError
from fasterpose.evaluation.pckh import (
    HEAD_SIZE_FROM_SEGMENT,
    PCKH_GROUPS,
    format_pckh_table,
    head_sizes_from_gt_valid,
    head_sizes_from_joints,
    load_mpii_gt_valid,
    pckh,
)

DATA = Path(__file__).parent / "data"


def _mpii() -> tuple[np.ndarray, np.ndarray]:
    anns = json.loads((DATA / "mpii_samples" / "annotations.json").read_text())
    gt = np.array([a["joints"] for a in anns], dtype=np.float64)
    vis = np.array([a["joints_vis"] for a in anns]) > 0
    return gt, vis


def test_pckh_hand_computed_tiny_example():
    gt = np.zeros((2, 16, 2))
    pred = gt.copy()
    head = np.array([10.0, 20.0])
    # person 0 (head size 10): r_ankle (0) 4 px off, l_ankle (5) 6 px off -> 0.4 and 0.6 head sizes
    pred[0, 0] = (4.0, 0.0)
    pred[0, 5] = (0.0, 6.0)
    # person 1 (head size 20): r_ankle 1 px off (0.05), head_top (9) 30 px off (1.5), pelvis 100 px off (excluded)
    pred[1, 0] = (1.0, 0.0)
    pred[1, 9] = (30.0, 0.0)
    pred[1, 6] = (100.0, 0.0)
    vis = np.ones((2, 16), dtype=bool)
    vis[1, 5] = False  # not annotated: does not count
    vis[1, 15] = False
    out = pckh(pred, gt, vis, head, thresholds=(0.5, 0.1))
    pj = out["per_joint"]["0.5"]
    assert pj[0] == 100.0 and pj[5] == 0.0 and pj[9] == 50.0 and pj[6] == 50.0 and pj[15] == 100.0
    assert out["Ankle"] == 50.0 and out["Head"] == 50.0 and out["Shoulder"] == 100.0
    # Mean over joints except pelvis/thorax: 14 joints x 2 persons - 2 invisible = 26 visible; 2 wrong (ratios of
    # counts: float64 round-off only, approx's rel=1e-6)
    assert out["Mean"] == pytest.approx(100.0 * 24 / 26)
    # at 0.1: wrong are p0 r_ankle (0.4), p0 l_ankle, p1 head_top; p1 r_ankle (0.05) is right
    assert out["per_joint"]["0.1"][0] == 50.0
    assert out["Mean@0.1"] == pytest.approx(100.0 * 23 / 26)
    assert out["joint_count"][5] == 1 and out["thresholds"] == [0.5, 0.1]
    assert set(PCKH_GROUPS) <= set(out)


def test_pckh_threshold_is_inclusive_and_unseen_joint_is_nan():
    gt = np.zeros((1, 16, 2))
    pred = gt.copy()
    pred[0, :, 0] = 5.0  # exactly 0.5 head sizes: counted correct (<=, as MPII/HRNet)
    vis = np.ones((1, 16), dtype=bool)
    vis[0, 9] = False
    out = pckh(pred, gt, vis, np.array([10.0]), thresholds=(0.5,))
    assert out["Mean"] == 100.0 and math.isnan(out["Head"])


def test_pckh_on_real_mpii_samples():
    gt, vis = _mpii()
    heads = head_sizes_from_joints(gt, vis)
    assert np.all(np.isfinite(heads)) and np.all(heads > 10)
    same = pckh(gt, gt, vis, heads)
    assert same["Mean"] == 100.0 and same["Mean@0.1"] == 100.0
    assert all(same[g] == 100.0 for g in PCKH_GROUPS)
    # shift every joint by 0.3 head sizes: right at 0.5, wrong at 0.1
    shift = gt + np.stack([0.3 * heads, np.zeros_like(heads)], axis=1)[:, None, :]
    out = pckh(shift, gt, vis, heads)
    assert out["Mean"] == 100.0 and out["Mean@0.1"] == 0.0
    # additionally move the wrists 0.8 head sizes away: Wrist drops to 0, Mean by exactly their share
    far = shift.copy()
    far[:, [10, 15], 0] += 0.8 * heads[:, None]
    out = pckh(far, gt, vis, heads)
    counted = vis.copy()
    counted[:, [6, 7]] = False
    n_wrists = vis[:, [10, 15]].sum()
    assert out["Wrist"] == 0.0 and out["Elbow"] == 100.0
    assert out["Mean"] == pytest.approx(100.0 * (counted.sum() - n_wrists) / counted.sum())


def test_head_sizes_from_joints_factor_and_missing():
    gt = np.zeros((2, 16, 2))
    gt[:, 9] = (0.0, -30.0)  # head_top 30 px above upper_neck
    vis = np.ones((2, 16), dtype=bool)
    vis[1, 8] = False
    heads = head_sizes_from_joints(gt, vis)
    # float64 product vs closed form: ulps. The constant 0.6 * sqrt(2) = 0.848528 written with 4 decimals: 3e-5.
    assert heads[0] == pytest.approx(0.6 * math.sqrt(2) * 30.0) and HEAD_SIZE_FROM_SEGMENT == pytest.approx(0.8485,
                                                                                                          abs=1e-4)
    assert math.isnan(heads[1])
    with pytest.raises(ValueError, match="head_sizes"):
        pckh(gt, gt, vis, heads)


def test_gt_valid_mat_reader(tmp_path):
    scipy_io = pytest.importorskip("scipy.io")
    n = 3
    rng = np.random.default_rng(0)
    pos = rng.uniform(0, 500, (16, 2, n))
    missing = np.zeros((16, n))
    missing[4, 1] = 1
    boxes = np.zeros((2, 2, n))
    boxes[1] = [[30.0, 60.0, 9.0], [40.0, 80.0, 12.0]]  # corner 2 - corner 1 = (30, 40) -> diagonal 50
    path = tmp_path / "gt_valid.mat"
    scipy_io.savemat(path, {"pos_gt_src": pos, "jnt_missing": missing, "headboxes_src": boxes,
                            "dataset_joints": np.array([["r_ankle"]], dtype=object)})
    np.testing.assert_allclose(head_sizes_from_gt_valid(path), [30.0, 60.0, 9.0])  # 0.6 * (50, 100, 15): ulps
    gt = load_mpii_gt_valid(path)
    assert gt["joints"].shape == (n, 16, 2) and gt["visible"].shape == (n, 16)
    np.testing.assert_allclose(gt["joints"][2, 7], pos[7, :, 2])  # a float64 copy through the .mat file: exact
    assert not gt["visible"][1, 4] and gt["visible"].sum() == 16 * n - 1
    assert pckh(gt["joints"], gt["joints"], gt["visible"], gt["head_sizes"])["Mean"] == 100.0
    with pytest.raises(DataError, match="nope.mat: MPII ground-truth file not found"):
        head_sizes_from_gt_valid(tmp_path / "nope.mat")
    scipy_io.savemat(tmp_path / "other.mat", {"x": np.zeros(2)})
    with pytest.raises(DataError, match=r"other\.mat: missing 'headboxes_src'"):
        head_sizes_from_gt_valid(tmp_path / "other.mat")
    (tmp_path / "text.mat").write_text("not a mat file")
    with pytest.raises(DataError, match=r"text\.mat: cannot be read"):
        load_mpii_gt_valid(tmp_path / "text.mat")


def test_format_pckh_table():
    gt, vis = _mpii()
    table = format_pckh_table(pckh(gt, gt, vis, head_sizes_from_joints(gt, vis)))
    header, rule, row = table.splitlines()
    assert header.split("|")[1].strip() == "Head" and "Mean@0.1" in header and "100.00" in row
