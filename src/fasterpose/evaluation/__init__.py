"""Evaluation: rescoring, OKS-NMS, COCO results json and pycocotools COCOeval, MPII PCKh.

Nothing here imports torch (batched dataset inference is :mod:`fasterpose.engine.inference`).
"""

from .coco import (
    STAT_NAMES,
    evaluate_keypoints,
    format_table,
    load_coco,
    load_results,
    make_results,
    rescore,
    write_results,
)
from .nms import oks_iou, oks_nms, soft_oks_nms
from .pckh import (
    SC_BIAS,
    format_pckh_table,
    head_sizes_from_gt_valid,
    head_sizes_from_joints,
    load_mpii_gt_valid,
    pckh,
)

__all__ = [
    "SC_BIAS",
    "STAT_NAMES",
    "evaluate_keypoints",
    "format_pckh_table",
    "format_table",
    "head_sizes_from_gt_valid",
    "head_sizes_from_joints",
    "load_coco",
    "load_mpii_gt_valid",
    "load_results",
    "make_results",
    "oks_iou",
    "oks_nms",
    "pckh",
    "rescore",
    "soft_oks_nms",
    "write_results",
]
