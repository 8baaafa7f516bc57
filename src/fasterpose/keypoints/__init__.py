"""Keypoint sets: what a model's outputs mean.

- :mod:`.sets`: :class:`KeypointSet` (names, flip pairs, OKS sigmas, skeleton, sides) and the named COCO-17 / MPII-16
- :mod:`.names`: what names say (sides, mirror partners, upper body)
- :mod:`.category`: a set from a COCO file's keypoint category, per-field overrides
- :mod:`.config`: the set a training config asks for, and the flip decision

Pure Python and numpy (no torch).
"""

from .sets import COCO17, KEYPOINT_SETS, MPII16, KeypointSet, get_keypoint_set

__all__ = ["COCO17", "KEYPOINT_SETS", "MPII16", "KeypointSet", "get_keypoint_set"]
