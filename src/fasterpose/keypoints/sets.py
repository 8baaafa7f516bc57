"""Keypoint metadata: the one source of truth for names, flip pairs, OKS sigmas, skeletons and colours.

Everything here is plain numpy / tuples (no torch) so that inference without PyTorch can use it.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import check_argument
from .names import infer_sides

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

    def to_dict(self) -> dict[str, Any]:
        """The whole set as JSON-friendly data (in checkpoints and ONNX metadata); :meth:`from_dict` inverts it."""
        return {
            "name": self.name,
            "num_keypoints": self.num_keypoints,
            "names": list(self.names),
            "flip_pairs": [list(p) for p in self.flip_pairs],
            "skeleton": [list(p) for p in self.skeleton],
            "sigmas": None if self.sigmas is None else [float(v) for v in self.sigmas],
            "upper_body": list(self.upper_body),
            "side": list(self.side),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> KeypointSet:
        """Rebuild a set from :meth:`to_dict` output, checking every index and length.

        Raises:
            ValueError: a missing field, an index out of range, or a list of the wrong length (the message names it).
        """
        if not isinstance(d, dict):
            raise ValueError(f"a keypoint set must be a mapping, got {type(d).__name__}")
        missing = [k for k in ("name", "names") if k not in d]
        if missing:
            raise ValueError(f"keypoint set has no {', '.join(missing)} field")
        names = tuple(str(n) for n in d["names"])
        sigmas = d.get("sigmas")
        kset = cls(
            name=str(d["name"]),
            names=names,
            flip_pairs=tuple(tuple(int(i) for i in p) for p in d.get("flip_pairs") or ()),
            skeleton=tuple(tuple(int(i) for i in p) for p in d.get("skeleton") or ()),
            sigmas=None if sigmas is None else np.asarray(sigmas, dtype=np.float64),
            upper_body=tuple(int(i) for i in d.get("upper_body") or ()),
            side=tuple(str(s) for s in d.get("side") or infer_sides(names)),
        )
        if "num_keypoints" in d and int(d["num_keypoints"]) != kset.num_keypoints:
            raise ValueError(f"keypoint set {kset.name!r}: num_keypoints {d['num_keypoints']} but "
                             f"{kset.num_keypoints} names")
        return kset

    def __post_init__(self) -> None:
        for what in ("names", "flip_pairs", "skeleton", "upper_body", "side"):
            value = getattr(self, what)
            check_argument(isinstance(value, (tuple, list)), f"KeypointSet({what}=...)", value, "a tuple")
        k = len(self.names)
        if k == 0:
            raise ValueError(f"keypoint set {self.name!r} has no keypoint names")
        if len(set(self.names)) != k:
            dup = sorted({n for n in self.names if self.names.count(n) > 1})
            raise ValueError(f"keypoint set {self.name!r}: duplicate keypoint names {dup}")
        for what, pairs in (("flip_pairs", self.flip_pairs), ("skeleton", self.skeleton)):
            for p in pairs:
                if len(p) != 2 or not all(0 <= i < k for i in p):
                    raise ValueError(f"keypoint set {self.name!r}: {what} entry {list(p)} must be two indices in "
                                     f"0..{k - 1}")
        used = [i for p in self.flip_pairs for i in p]
        if len(used) != len(set(used)) or any(a == b for a, b in self.flip_pairs):
            raise ValueError(f"keypoint set {self.name!r}: flip_pairs {[list(p) for p in self.flip_pairs]} use a "
                             "keypoint twice; each keypoint has at most one mirror partner")
        if not all(0 <= i < k for i in self.upper_body):
            raise ValueError(f"keypoint set {self.name!r}: upper_body indices must be in 0..{k - 1}")
        if self.sigmas is not None:
            sig = np.asarray(self.sigmas, dtype=np.float64).reshape(-1)
            if sig.shape[0] != k or not (np.isfinite(sig).all() and (sig > 0).all()):
                raise ValueError(f"keypoint set {self.name!r}: sigmas must be {k} positive numbers, got "
                                 f"{sig.tolist()}")
            object.__setattr__(self, "sigmas", sig)
        if not self.side:
            object.__setattr__(self, "side", infer_sides(self.names))
        if len(self.side) != k or not set(self.side) <= {"left", "right", "center"}:
            raise ValueError(f"keypoint set {self.name!r}: side must list 'left', 'right' or 'center' for each of "
                             f"the {k} keypoints")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, KeypointSet) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash((self.name, self.names, self.flip_pairs, self.skeleton))


def _side_color(side: str) -> tuple[int, int, int]:
    return {"left": _LEFT, "right": _RIGHT}.get(side, _CENTER)


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
    side=infer_sides(_COCO_NAMES),
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
    side=infer_sides(_MPII_NAMES),
)

KEYPOINT_SETS: dict[str, KeypointSet] = {s.name: s for s in (COCO17, MPII16)}


def get_keypoint_set(name: str) -> KeypointSet:
    """Look up a keypoint set by name (``"coco17"`` or ``"mpii16"``)."""
    check_argument(isinstance(name, str), "get_keypoint_set(name)", name, f"one of {', '.join(KEYPOINT_SETS)}")
    try:
        return KEYPOINT_SETS[name]
    except KeyError:
        close = difflib.get_close_matches(name, KEYPOINT_SETS, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise KeyError(f"unknown keypoint set {name!r}; known: {', '.join(KEYPOINT_SETS)}.{hint}") from None
