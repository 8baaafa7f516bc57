"""Keypoint metadata: the one source of truth for names, flip pairs, OKS sigmas, skeletons and colours.

Everything here is plain numpy / tuples (no torch) so that inference without PyTorch can use it.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

import numpy as np

# BGR colours (OpenCV order) for the three body sides.
_LEFT = (0, 165, 255)  # orange
_RIGHT = (255, 128, 0)  # blue
_CENTER = (0, 220, 0)  # green


@dataclass(frozen=True)
class KeypointSet:
    """Static description of a keypoint layout.

    Attributes:
        name: registry name, e.g. ``"coco17"``.
        names: keypoint names, in model-output order.
        flip_pairs: ``(left, right)`` index pairs swapped by a horizontal flip.
        skeleton: ``(a, b)`` index pairs drawn as limbs.
        sigmas: per-keypoint OKS sigmas ``(K,)`` (COCO convention), or ``None`` when the dataset has none.
        upper_body: indices used by the half-body augmentation as the upper half.
        side: per keypoint ``"left"``, ``"right"`` or ``"center"``; drives the colours.
    """

    name: str
    names: tuple[str, ...]
    flip_pairs: tuple[tuple[int, int], ...]
    skeleton: tuple[tuple[int, int], ...]
    sigmas: np.ndarray | None
    upper_body: tuple[int, ...]
    side: tuple[str, ...] = field(default=())

    @property
    def num_keypoints(self) -> int:
        return len(self.names)

    @property
    def lower_body(self) -> tuple[int, ...]:
        return tuple(i for i in range(self.num_keypoints) if i not in self.upper_body)

    @property
    def flip_index(self) -> np.ndarray:
        """Permutation ``(K,)``: output keypoint ``i`` of a flipped image is keypoint ``flip_index[i]``."""
        index = np.arange(self.num_keypoints)
        for a, b in self.flip_pairs:
            index[a], index[b] = b, a
        return index

    @property
    def keypoint_colors(self) -> list[tuple[int, int, int]]:
        return [_side_color(s) for s in self.side]

    @property
    def limb_colors(self) -> list[tuple[int, int, int]]:
        out = []
        for a, b in self.skeleton:
            sides = {self.side[a], self.side[b]}
            out.append(_side_color(sides.pop() if len(sides) == 1 else "center"))
        return out

    def to_dict(self) -> dict:
        """JSON-friendly description (stored in checkpoints and ONNX metadata)."""
        return {"name": self.name, "num_keypoints": self.num_keypoints, "names": list(self.names)}


def _side_color(side: str) -> tuple[int, int, int]:
    return {"left": _LEFT, "right": _RIGHT}.get(side, _CENTER)


def _sides(names: tuple[str, ...]) -> tuple[str, ...]:
    out = []
    for n in names:
        if n.startswith(("left", "l_")):
            out.append("left")
        elif n.startswith(("right", "r_")):
            out.append("right")
        else:
            out.append("center")
    return tuple(out)


_COCO_NAMES = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)

COCO17 = KeypointSet(
    name="coco17",
    names=_COCO_NAMES,
    flip_pairs=((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)),
    skeleton=(
        (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8),
        (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
    ),  # fmt: skip
    # The official COCO OKS sigmas (pycocotools' COCOeval.kpt_oks_sigmas).
    sigmas=np.array(
        [0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87, 0.87, 0.89, 0.89]
    )
    / 10.0,
    upper_body=tuple(range(11)),
    side=_sides(_COCO_NAMES),
)

_MPII_NAMES = (
    "r_ankle",
    "r_knee",
    "r_hip",
    "l_hip",
    "l_knee",
    "l_ankle",
    "pelvis",
    "thorax",
    "upper_neck",
    "head_top",
    "r_wrist",
    "r_elbow",
    "r_shoulder",
    "l_shoulder",
    "l_elbow",
    "l_wrist",
)

MPII16 = KeypointSet(
    name="mpii16",
    names=_MPII_NAMES,
    flip_pairs=((0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13)),
    skeleton=(
        (0, 1), (1, 2), (2, 6), (6, 3), (3, 4), (4, 5), (6, 7), (7, 8), (8, 9),
        (7, 12), (12, 11), (11, 10), (7, 13), (13, 14), (14, 15),
    ),  # fmt: skip
    sigmas=None,
    upper_body=(7, 8, 9, 10, 11, 12, 13, 14, 15),
    side=_sides(_MPII_NAMES),
)

KEYPOINT_SETS: dict[str, KeypointSet] = {s.name: s for s in (COCO17, MPII16)}


def get_keypoint_set(name: str) -> KeypointSet:
    """Look up a keypoint set by name (``"coco17"`` or ``"mpii16"``)."""
    try:
        return KEYPOINT_SETS[name]
    except KeyError:
        close = difflib.get_close_matches(name, KEYPOINT_SETS, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise KeyError(f"unknown keypoint set {name!r}; known: {', '.join(KEYPOINT_SETS)}.{hint}") from None


def keypoint_set_for(num_keypoints: int) -> KeypointSet:
    """The keypoint set with ``num_keypoints`` keypoints (17 -> COCO, 16 -> MPII)."""
    for s in KEYPOINT_SETS.values():
        if s.num_keypoints == num_keypoints:
            return s
    raise ValueError(f"no keypoint set has {num_keypoints} keypoints; known: "
                     + ", ".join(f"{s.name} ({s.num_keypoints})" for s in KEYPOINT_SETS.values()))
