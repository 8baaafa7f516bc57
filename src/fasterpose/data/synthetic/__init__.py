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

from .config import SynthConfig
from .dataset import (
    ANNOTATION_ID_STRIDE,
    DETECTIONS_FILE,
    GENERATOR_VERSION,
    IMAGE_ID_STRIDE,
    IMAGES_DIR,
    INFO_KEY,
    KEYPOINTS_FILE,
    SPLIT_SEEDS,
    STATS_KEY,
    dataset_params,
    default_cache_dir,
    ensure_synthetic_dataset,
    generate_dataset,
    params_hash,
    parse_size,
)
from .scene import _iou, render_sample  # noqa: F401 - _iou: box IoU, used by the tests

__all__ = ["ANNOTATION_ID_STRIDE", "DETECTIONS_FILE", "GENERATOR_VERSION", "IMAGE_ID_STRIDE", "IMAGES_DIR",
           "INFO_KEY", "KEYPOINTS_FILE", "SPLIT_SEEDS", "STATS_KEY", "SynthConfig", "dataset_params",
           "default_cache_dir", "ensure_synthetic_dataset", "generate_dataset", "params_hash", "parse_size",
           "render_sample"]
