"""MPIIDataset on the real MPII samples: HRNet's conversion, sample layout, head sizes, validation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from fasterpose import geometry
from fasterpose.data import MPIIDataset
from fasterpose.errors import DataError
from fasterpose.keypoints import MPII16

MPII_DIR = Path(__file__).parent / "data" / "mpii_samples"
MPII_ANN = MPII_DIR / "annotations.json"


def test_conversion_follows_hrnet() -> None:
    raw = json.loads(MPII_ANN.read_text())
    ds = MPIIDataset(MPII_ANN)
    assert len(ds) == len(raw) == 5 and ds.keypoint_set is MPII16 and ds.image_root == MPII_DIR
    assert ds.gt_joints.shape == (5, 16, 2) and ds.gt_visible.shape == (5, 16) and ds.head_sizes is None
    # Joints, centres and scales are stored as float32: half an ulp is <= 6.1e-5 px for |x| < 2048 (the samples
    # are < 1200 px) and 6e-8 relative.
    for i, a in enumerate(raw):
        np.testing.assert_allclose(ds.gt_joints[i], np.array(a["joints"]) - 1, atol=1e-4)  # MATLAB 1-based
        np.testing.assert_array_equal(ds.gt_visible[i], np.array(a["joints_vis"]) > 0)
        s = ds[i]["meta"]
        cx, cy = a["center"]
        np.testing.assert_allclose(s["center"], [cx - 1, cy + 15 * a["scale"] - 1], atol=1e-3)
        np.testing.assert_allclose(s["scale"], [a["scale"] * 200 * 1.25] * 2, rtol=1e-5)  # square 256x256 input
        assert ds.image_names[i] == a["image"]


def test_sample_layout_and_crop() -> None:
    ds = MPIIDataset(MPII_ANN)
    s = ds[2]
    assert s["image"].shape == (3, 256, 256) and s["image"].dtype == torch.float32
    assert s["target"].shape == (16, 64, 64) and s["target_weight"].shape == (16,)
    m = s["meta"]
    assert m["keypoints"].shape == (16, 3) and m["ann_id"] == 2 and m["image_id"] == 2
    np.testing.assert_array_equal(s["target_weight"].numpy(), ds.gt_visible[2])  # joints 0 and 5 unannotated
    # Every annotated joint lies inside the crop and its target peak sits on it.
    dec, _ = ds.codec.decode(s["target"].numpy()[None])
    back = geometry.crop_to_image(dec, m["center"][None], m["scale"][None], ds.input_size)[0]
    vis = ds.gt_visible[2] > 0
    # Classic targets: rounding to the grid (<= 0.5 heatmap px) + quarter step (0.25), times stride 4 and image px
    # per input px; the float64 mapping adds ~1e-13 (measured 0.48 heatmap px).
    assert np.abs(back[vis] - ds.gt_joints[2][vis]).max() <= 0.75 * 4 * m["scale"][0] / 256
    # 256x192 keeps the annotated height.
    narrow = MPIIDataset(MPII_ANN, input_size=(256, 192))
    assert narrow[0]["image"].shape == (3, 256, 192)
    # float32 storage of box_h * 0.75 vs float32(box_h) * 0.75: two roundings, 1.2e-7 relative.
    np.testing.assert_allclose(narrow._scales[0], [ds._scales[0][1] * 0.75, ds._scales[0][1]], rtol=1e-5)


def test_training_is_deterministic() -> None:
    ds = MPIIDataset(MPII_ANN, train=True, seed=2)
    assert ds.augment.half_body_prob == 0.0 and ds.augment.rotation_factor == 30.0
    a = [ds[i]["image"] for i in range(len(ds))]
    assert all(torch.equal(x, ds[i]["image"]) for i, x in enumerate(a))
    ds.set_epoch(1)
    assert not all(torch.equal(x, ds[i]["image"]) for i, x in enumerate(a))


def test_head_sizes_from_gt_valid_mat(tmp_path: Path) -> None:
    scipy_io = pytest.importorskip("scipy.io")
    boxes = np.zeros((2, 2, 5))  # (corner, axis, person), 1-based like MPII's gt_valid.mat
    boxes[0] = [[10, 20, 30, 40, 50], [5, 5, 5, 5, 5]]
    boxes[1] = boxes[0] + [[30] * 5, [40] * 5]
    mat = tmp_path / "gt_valid.mat"
    scipy_io.savemat(mat, {"headboxes_src": boxes})
    ds = MPIIDataset(MPII_ANN, gt_valid_mat=mat)
    # 0.6 * ||(30, 40)|| in float64, stored as float32 (6e-8 relative); the boxes are integers minus 1 (exact).
    np.testing.assert_allclose(ds.head_sizes, np.full(5, 0.6 * 50.0), rtol=1e-6)
    np.testing.assert_allclose(ds.head_boxes[0], [[9, 4], [39, 44]])
    scipy_io.savemat(mat, {"headboxes_src": boxes[:, :, :3]})
    with pytest.raises(DataError, match="3 head boxes but .*5 entries"):
        MPIIDataset(MPII_ANN, gt_valid_mat=mat)
    scipy_io.savemat(mat, {"other": boxes})
    with pytest.raises(DataError, match="no 'headboxes_src'"):
        MPIIDataset(MPII_ANN, gt_valid_mat=mat)


def test_bad_mpii_files(tmp_path: Path) -> None:
    raw = json.loads(MPII_ANN.read_text())
    p = tmp_path / "mpii.json"
    p.write_text(json.dumps({"images": []}))
    with pytest.raises(DataError, match="mpii.json: expected a list"):
        MPIIDataset(p)
    bad = [dict(a) for a in raw]
    bad[1]["joints"] = bad[1]["joints"][:15]
    p.write_text(json.dumps(bad))
    with pytest.raises(DataError, match=r"mpii.json: entry 1 \(052475643.jpg\): 'joints' must be 16"):
        MPIIDataset(p)
    bad = [dict(a) for a in raw]
    del bad[3]["scale"]
    p.write_text(json.dumps(bad))
    with pytest.raises(DataError, match="entry 3 has no 'scale'"):
        MPIIDataset(p)
    p.write_text(json.dumps(raw))
    ds = MPIIDataset(p)  # images are not beside this copy
    with pytest.raises(DataError, match="005808361.jpg.*does not exist"):
        ds[0]
