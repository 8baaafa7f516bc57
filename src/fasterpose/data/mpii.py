"""MPII Human Pose, in the common json format of HRNet / mmpose (``train.json``, ``valid.json``).

Each entry is ``{"image", "joints": 16 x [x, y], "joints_vis": 16 x {0, 1}, "center": [x, y], "scale"}`` where
``scale`` is the person box height / 200 px. The coordinates come from MPII's MATLAB annotations and are 1-based.

Conversion (following HRNet's ``MPIIDataset._get_db``, documented here because it changes the numbers):

* joints: ``xy - 1`` (0-based pixel centres, as every other coordinate in fasterpose);
* centre: ``center[1] += 15 * scale`` (moves the box down a little so the feet are not cut), then ``- 1``;
* region size in pixels: height ``h = scale * 200 * padding`` (padding 1.25 as HRNet's ``s * 1.25``), width
  ``h * input_w / input_h``. For the usual square 256x256 input this is exactly HRNet's crop; for non-square
  inputs HRNet would derive the height from the width (``200 * s * H / W``), we keep the annotated height instead.
* entries whose centre is ``[-1, -1]`` (unannotated test people) get neither the shift nor the padding, as HRNet.

PCKh: :attr:`MPIIDataset.head_sizes` comes from the official ``gt_valid.mat`` (``headboxes_src``) when
``gt_valid_mat`` is given, otherwise ``None`` so that the evaluator falls back to the annotated head segment.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from ..codec import HeatmapCodec
from ..errors import DataError
from ..io_utils import read_json
from ..keypoints import MPII16, KeypointSet
from .augment import MPII_AUGMENT, AugmentConfig
from .coco import TopDownDataset

__all__ = ["MPIIDataset", "PCKH_SC_BIAS"]

# MPII's evaluation scales the head-box diagonal by 0.6 to get the head size (HRNet/mmpose ``SC_BIAS``).
PCKH_SC_BIAS = 0.6


def _numbers(value: object, shape: tuple[int, ...]) -> np.ndarray | None:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (ValueError, TypeError):
        return None
    if arr.shape != shape or not np.isfinite(arr).all():
        return None
    return arr


class MPIIDataset(TopDownDataset):
    """MPII top-down dataset (one sample per annotated person), same sample layout as :class:`CocoKeypoints`.

    Args:
        ann_file: MPII json (a list of entries, see the module docstring).
        image_root: image folder; default ``<json folder>/images`` if the first image is there, else the json's
            folder.
        input_size: model input ``(height, width)`` (MPII models are usually 256x256).
        codec: heatmap codec (default ``HeatmapCodec(input_size)``).
        train: enable augmentation.
        augment: augmentation settings (default :data:`MPII_AUGMENT` when ``train``: HRNet's MPII recipe, scale
            0.25, rotation 30, flip, no half-body).
        gt_valid_mat: MPII's ``gt_valid.mat`` for the validation split (needs scipy); gives :attr:`head_sizes`.
        keypoint_set: keypoint layout (``MPII16``).
        seed: augmentation seed (see :mod:`fasterpose.data.coco`).
        padding: box enlargement (HRNet: 1.25).

    Attributes:
        gt_joints: ``(N, 16, 2)`` float32 ground truth, 0-based image pixels.
        gt_visible: ``(N, 16)`` float32, 1 for annotated joints (``joints_vis``).
        head_boxes: ``(N, 2, 2)`` float32 head boxes ``[[x1, y1], [x2, y2]]`` from ``gt_valid_mat``, or ``None``.
        head_sizes: ``(N,)`` float32 PCKh normaliser ``0.6 * ||head box diagonal||`` from ``gt_valid_mat``, or
            ``None``.
        image_names: ``(N,)`` file names.
    """

    def __init__(self, ann_file: str | os.PathLike, image_root: str | os.PathLike | None = None,
                 input_size: tuple[int, int] = (256, 256), codec: HeatmapCodec | None = None, train: bool = False,
                 augment: AugmentConfig | None = None, gt_valid_mat: str | os.PathLike | None = None,
                 keypoint_set: KeypointSet | str = MPII16, seed: int = 0, padding: float = 1.25) -> None:
        if train and augment is None:
            augment = MPII_AUGMENT
        super().__init__(keypoint_set, input_size, codec, train, augment, seed, padding)
        self.ann_file = Path(ann_file)
        k = self.keypoint_set.num_keypoints
        hint = "pass an MPII json in the HRNet/mmpose format (a list of {image, joints, joints_vis, center, scale})"
        data = read_json(self.ann_file, "MPII annotation", hint, pause_gc=True)
        if not isinstance(data, list):
            raise DataError(f"{self.ann_file}: expected a list of MPII entries, got a json {type(data).__name__}; "
                            f"{hint}")
        n = len(data)
        joints = np.zeros((n, k, 2), dtype=np.float64)
        vis = np.zeros((n, k), dtype=np.float64)
        centers = np.zeros((n, 2), dtype=np.float64)
        box_h = np.zeros(n, dtype=np.float64)
        files: list[str] = []
        for i, a in enumerate(data):
            if not isinstance(a, dict):
                raise DataError(f"{self.ann_file}: entry {i} is not an object; {hint}")
            for key in ("image", "joints", "center", "scale"):
                if key not in a:
                    raise DataError(f"{self.ann_file}: entry {i} has no '{key}' field; {hint}")
            j = _numbers(a["joints"], (k, 2))
            if j is None:
                raise DataError(f"{self.ann_file}: entry {i} ({a['image']}): 'joints' must be {k} [x, y] pairs of "
                                f"finite numbers for {self.keypoint_set.name}")
            v = _numbers(a.get("joints_vis", [1] * k), (k,))
            if v is None:
                raise DataError(f"{self.ann_file}: entry {i} ({a['image']}): 'joints_vis' must be {k} numbers (0/1)")
            c = _numbers(a["center"], (2,))
            s = a["scale"]
            if c is None or not isinstance(s, (int, float)) or isinstance(s, bool) or not math.isfinite(s) or s <= 0:
                raise DataError(f"{self.ann_file}: entry {i} ({a['image']}): 'center' must be [x, y] and 'scale' a "
                                f"positive number (box height / 200), got {a['center']!r}, {s!r}")
            if c[0] != -1:
                c[1] += 15.0 * s
                box_h[i] = s * 200.0 * self.padding
            else:
                box_h[i] = s * 200.0
            centers[i] = c - 1.0
            joints[i] = j - 1.0
            vis[i] = v
            files.append(str(a["image"]))

        self.gt_joints = joints.astype(np.float32)
        self.gt_visible = (vis > 0).astype(np.float32)
        self.image_names = files
        keypoints = np.concatenate([self.gt_joints, self.gt_visible[..., None]], axis=2)
        # The region is height-based (MPII's scale is the person height); the width follows the input aspect.
        scales = np.stack([box_h * self.aspect_ratio, box_h], axis=1)

        # One "image" per entry keeps the base class simple (MPII has at most a few people per image).
        self._image_files = files
        self._sample_image = np.arange(n, dtype=np.int32)
        self._image_ids = np.arange(n, dtype=np.int64)
        self._ann_ids = np.arange(n, dtype=np.int64)
        self._centers = centers.astype(np.float32)
        self._scales = scales.astype(np.float32)
        self._box_scores = np.ones(n, dtype=np.float32)
        self._areas = (scales[:, 0] * scales[:, 1] / self.padding**2).astype(np.float32)
        self._keypoints = np.ascontiguousarray(keypoints, dtype=np.float32)

        if image_root is None:
            folder = self.ann_file.parent
            image_root = folder / "images" if files and (folder / "images" / files[0]).is_file() else folder
        self.image_root = Path(image_root)

        self.head_boxes: np.ndarray | None = None
        self.head_sizes: np.ndarray | None = None
        if gt_valid_mat is not None:
            self.head_boxes, self.head_sizes = self._load_head_boxes(Path(gt_valid_mat), n)
        self._finish_init()

    def _load_head_boxes(self, path: Path, n: int) -> tuple[np.ndarray, np.ndarray]:
        if not path.is_file():
            raise DataError(f"MPII gt_valid_mat {path} does not exist; pass MPII's gt_valid.mat or leave it unset to "
                            "use the annotated head segment for PCKh")
        try:
            from scipy.io import loadmat
        except ImportError:
            raise DataError(f"reading {path} needs scipy: pip install 'fasterpose[mpii]'") from None
        try:
            mat = loadmat(str(path))
        except Exception as e:  # scipy raises several types for non-mat files
            raise DataError(f"{path}: not a readable MATLAB file ({e})") from None
        if "headboxes_src" not in mat:
            found = sorted(k for k in mat if not k.startswith("_"))
            raise DataError(f"{path}: no 'headboxes_src' variable (found {found}); is this MPII's gt_valid.mat?")
        hb = np.asarray(mat["headboxes_src"], dtype=np.float64)
        if hb.ndim != 3 or hb.shape[:2] != (2, 2):
            raise DataError(f"{path}: 'headboxes_src' must have shape (2, 2, N), got {hb.shape}")
        if hb.shape[2] != n:
            raise DataError(f"{path}: 'headboxes_src' has {hb.shape[2]} head boxes but {self.ann_file} has {n} "
                            "entries; gt_valid.mat belongs to the validation json (valid.json) in its original order")
        # headboxes_src[corner, axis, person] -> (N, corner, axis); MATLAB 1-based like the joints.
        boxes = np.transpose(hb, (2, 0, 1)) - 1.0
        sizes = np.linalg.norm(boxes[:, 1] - boxes[:, 0], axis=1) * PCKH_SC_BIAS
        return boxes.astype(np.float32), sizes.astype(np.float32)
