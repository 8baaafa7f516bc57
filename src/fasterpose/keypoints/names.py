"""What keypoint names say: the body side of each keypoint, its mirror partner, and whether it is upper body.

A name is split into lower-case words at ``_``, ``-``, ``.``, spaces and camelCase boundaries (``LeftHand`` ->
``left hand``, ``hand_L`` -> ``hand l``, ``l_ankle`` -> ``l ankle``). A word ``left``/``l``/``lt``/``lft``
(``right``/``r``/``rt``/``rgt``) anywhere in the name marks its side. Two keypoints are mirror partners when one
is left, the other right, and their names are equal once the side word is taken out (``left_eye`` /
``right_eye``, ``LeftHand`` / ``RightHand``, ``paw_L_front`` / ``paw_R_front``). Everything else is
``"center"`` and maps to itself under a flip. Names that glue the side to a word without a separator or a case
change (``lknee``) are not recognised: give ``flip_pairs`` explicitly for those.

Pure Python; used by :mod:`fasterpose.keypoints` (named sets) and :mod:`fasterpose.keypoints.category`
(sets built from a dataset).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["LOWER_BODY_WORDS", "infer_flip_pairs", "infer_sides", "infer_upper_body", "looks_like_person",
           "name_words", "unpaired_sided"]

_SIDE_WORDS = {"left": "left", "l": "left", "lt": "left", "lft": "left",
               "right": "right", "r": "right", "rt": "right", "rgt": "right"}
#: Words that put a keypoint in the lower half of a body (for the half-body augmentation).
LOWER_BODY_WORDS = frozenset({"hip", "hips", "pelvis", "knee", "knees", "ankle", "ankles", "foot", "feet", "heel",
                              "heels", "toe", "toes", "bigtoe", "smalltoe", "leg", "legs", "thigh", "shin", "calf"})

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_SEPARATORS = re.compile(r"[\s_\-.]+")


def name_words(name: str) -> list[str]:
    """Lower-case words of a name: ``"LeftHand"`` -> ``["left", "hand"]``, ``"l_ankle"`` -> ``["l", "ankle"]``."""
    return [w.lower() for w in _SEPARATORS.split(_CAMEL.sub(" ", str(name).strip())) if w]


def _side_and_key(name: str) -> tuple[str, tuple[str, ...]]:
    """``(side, name without its side word)``; side ``"center"`` when the name has no (or an ambiguous) side word."""
    words = name_words(name)
    hits = [i for i, w in enumerate(words) if w in _SIDE_WORDS]
    if len(hits) != 1:
        return "center", tuple(words)
    i = hits[0]
    return _SIDE_WORDS[words[i]], (*words[:i], "<side>", *words[i + 1:])


def infer_sides(names: Sequence[str]) -> tuple[str, ...]:
    """``"left"``, ``"right"`` or ``"center"`` for each name (drives the drawing colours)."""
    return tuple(_side_and_key(n)[0] for n in names)


def infer_flip_pairs(names: Sequence[str]) -> tuple[tuple[int, int], ...]:
    """Index pairs ``(i, j)``, ``i < j``, sorted, of keypoints whose names differ only by the side word.

    A keypoint whose partner is missing or ambiguous gets no pair (it maps to itself; see :func:`unpaired_sided`).
    """
    parsed = [_side_and_key(n) for n in names]
    by_key: dict[tuple[str, tuple[str, ...]], list[int]] = {}
    for i, (side, key) in enumerate(parsed):
        if side != "center":
            by_key.setdefault((side, key), []).append(i)
    pairs = []
    for (side, key), left in by_key.items():
        right = by_key.get(("right", key), [])
        if side == "left" and len(left) == 1 and len(right) == 1:
            pairs.append((min(left[0], right[0]), max(left[0], right[0])))
    return tuple(sorted(pairs))


def unpaired_sided(names: Sequence[str], flip_pairs: Sequence[Sequence[int]]) -> list[int]:
    """Indices of keypoints named left or right that no flip pair covers (a flip would mislabel them)."""
    paired = {i for p in flip_pairs for i in p}
    return [i for i, side in enumerate(infer_sides(names)) if side != "center" and i not in paired]


def infer_upper_body(names: Sequence[str]) -> tuple[int, ...]:
    """Indices of keypoints that are not lower body (:data:`LOWER_BODY_WORDS`); ``()`` when no name is lower body.

    An empty result switches the half-body augmentation off: without a lower half there is nothing to split.
    """
    lower = [any(w in LOWER_BODY_WORDS for w in name_words(n)) for n in names]
    if not any(lower):
        return ()
    return tuple(i for i, is_lower in enumerate(lower) if not is_lower)


#: Words in a keypoint category's name that say it is a person's (COCO's category is "person").
_PERSON_CATEGORY_WORDS = frozenset({"person", "persons", "people", "human", "humans", "pedestrian", "body",
                                    "wholebody", "player", "athlete", "crowdpose", "halpe", "coco17", "mpii16"})
#: Keypoint-name words of animals, hands and objects (a person set with these also has a person category name).
_NOT_PERSON_WORDS = frozenset({"paw", "paws", "tail", "hoof", "hooves", "wing", "wings", "beak", "fin", "antenna",
                               "withers", "throat", "thumb", "finger", "index", "middle", "ring", "pinky", "little",
                               "mcp", "pip", "dip", "tip", "wheel", "headlight", "taillight", "mirror", "door", "roof"})
_PERSON_JOINTS = frozenset({"shoulder", "elbow", "wrist", "hip", "knee", "ankle"})


def looks_like_person(set_name: str, names: Sequence[str]) -> bool:
    """Whether a keypoint set is a person's: its name (the keypoint category's, e.g. ``person``, or a named set)
    says so, or its keypoints include at least four of shoulder/elbow/wrist/hip/knee/ankle and none of the words of
    animals (paw, tail, ...), hands (thumb, finger, ...) or vehicles (wheel, ...)."""
    if set(name_words(set_name)) & _PERSON_CATEGORY_WORDS:
        return True
    words = [set(name_words(n)) for n in names]
    if any(w & _NOT_PERSON_WORDS for w in words):
        return False
    return sum(bool(w & _PERSON_JOINTS) for w in words) >= 4
