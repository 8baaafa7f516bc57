"""Keypoint sets built from a COCO-format annotation file's keypoint category, and explicit per-field overrides.

A COCO keypoint file declares its layout in a category: ``{"id", "name", "keypoints": [names...], "skeleton":
[[a, b], ...] (1-based)}``, optionally with ``"sigmas": [...]`` (OKS sigmas, one per keypoint). From that:

* names and skeleton are read as they are (the skeleton converted to 0-based);
* flip pairs, sides (colours) and the upper body (half-body augmentation) are inferred from the names
  (:mod:`fasterpose.keypoints.names`);
* sigmas come from the category's ``sigmas`` list, else stay ``None`` (evaluation then uses PCK as headline and a
  documented default for OKS, saying so);
* names identical to a named set's (COCO-17, MPII-16) give that set itself, so ``auto`` on COCO is exactly ``coco17``.

Any of ``flip_pairs``, ``skeleton``, ``sigmas``, ``upper_body`` can then be replaced by :func:`override_fields`
(pairs and indices by index or by keypoint name).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from ..io_utils import read_json
from .names import infer_flip_pairs, infer_sides, infer_upper_body
from .sets import KEYPOINT_SETS, KeypointSet

__all__ = ["OVERRIDE_FIELDS", "keypoint_categories", "keypoint_set_from_category", "keypoint_set_from_file",
           "override_fields", "select_keypoint_category"]

#: Fields of a set that a config may give explicitly.
OVERRIDE_FIELDS = ("flip_pairs", "skeleton", "sigmas", "upper_body")


def keypoint_categories(data: Any) -> list[dict[str, Any]]:
    """The categories of a loaded annotation file that declare a ``keypoints`` name list."""
    cats = data.get("categories") if isinstance(data, dict) else None
    if not isinstance(cats, list):
        return []
    return [c for c in cats if isinstance(c, dict) and isinstance(c.get("keypoints"), list) and c["keypoints"]]


def select_keypoint_category(data: Any, source: str | os.PathLike, category: str | None = None) -> dict[str, Any]:
    """The one keypoint category of an annotation file (or the one named ``category``).

    Raises:
        DataError: no keypoint category, several without ``category`` saying which, or ``category`` not found.
    """
    cats = keypoint_categories(data)
    described = ", ".join(f"{c.get('name')!r} (id {c.get('id')}, {len(c['keypoints'])} keypoints)" for c in cats)
    if category is not None:
        chosen = [c for c in cats if str(c.get("name")) == str(category) or str(c.get("id")) == str(category)]
        if not chosen:
            raise DataError(f"{source}: no keypoint category named {category!r}; its keypoint categories are "
                            f"{described or 'none'}")
        return chosen[0]
    if not cats:
        raise DataError(f"{source}: no category declares 'keypoints' (a list of keypoint names), so the keypoint set "
                        "cannot be read from it; add {\"keypoints\": [names...], \"skeleton\": [[a, b], ...]} to its "
                        "category, or set data.keypoint_set to a named or inline set")
    if len(cats) > 1:
        same = all(c["keypoints"] == cats[0]["keypoints"] for c in cats)
        hint = ("; they declare the same keypoints (one category per species or class, as AP-10K writes them), but "
                "one model is trained on one category: to train on all of them, give their annotations one "
                "category_id and keep that one category in the file") if same else ""
        raise DataError(f"{source}: several keypoint categories: {described}; choose one with "
                        f"--opt data.keypoint_category=NAME{hint}")
    return cats[0]


def keypoint_set_from_category(cat: dict[str, Any], source: str | os.PathLike) -> KeypointSet:
    """The keypoint set a category describes (see the module docstring for what is read and what is inferred)."""
    names = tuple(str(n) for n in cat["keypoints"])
    k = len(names)
    where = f"{source}: category {cat.get('name') or cat.get('id')!r}"
    skeleton = _pairs(cat.get("skeleton") or [], names, f"{where}: skeleton", one_based=True)
    sigmas = cat.get("sigmas")
    if sigmas is not None:
        sigmas = _sigmas(sigmas, k, f"{where}: sigmas")
    for named in KEYPOINT_SETS.values():
        if named.names == names:
            base = named
            if cat.get("skeleton"):
                base = replace(base, skeleton=skeleton)
            if sigmas is not None:
                base = replace(base, sigmas=sigmas)
            return base if base == named else replace(base, name=str(cat.get("name") or named.name))
    try:
        return KeypointSet(name=str(cat.get("name") or "custom"), names=names, flip_pairs=infer_flip_pairs(names),
                           skeleton=skeleton, sigmas=sigmas, upper_body=infer_upper_body(names),
                           side=infer_sides(names))
    except ValueError as e:
        raise DataError(f"{where}: {e}") from None


def keypoint_set_from_file(ann_file: str | os.PathLike, category: str | None = None) -> KeypointSet:
    """Read an annotation file and build the set of its keypoint category."""
    path = Path(ann_file)
    data = read_json(path, "annotation", "set data.train_ann to a COCO keypoint annotation json", pause_gc=True)
    return keypoint_set_from_category(select_keypoint_category(data, path, category), path)


def override_fields(kset: KeypointSet, fields: dict[str, Any], source: str) -> KeypointSet:
    """``kset`` with the given fields replaced; pairs and indices may name keypoints instead of numbering them.

    Args:
        kset: the set to start from.
        fields: any of :data:`OVERRIDE_FIELDS` (``None`` values are skipped); ``flip_pairs`` and ``skeleton`` are
            lists of ``[a, b]`` (0-based indices or names), ``upper_body`` a list of indices or names, ``sigmas``
            one positive number per keypoint.
        source: where the fields came from (for messages), e.g. ``"data.flip_pairs"``.

    Raises:
        DataError: an unknown field, name or index, or a wrong length.
    """
    changes: dict[str, Any] = {}
    for key, value in fields.items():
        if value is None:
            continue
        where = f"{source}.{key}" if not source.endswith(key) else source
        if key in ("flip_pairs", "skeleton"):
            changes[key] = _pairs(value, kset.names, where, one_based=False)
        elif key == "upper_body":
            if not isinstance(value, (list, tuple)):
                raise DataError(f"{where} must be a list of keypoint indices or names, got {value!r}")
            changes[key] = tuple(_index(v, kset.names, where) for v in value)
        elif key == "sigmas":
            changes[key] = _sigmas(value, kset.num_keypoints, where)
        else:
            raise DataError(f"{where}: unknown keypoint set field; known: {', '.join(OVERRIDE_FIELDS)}")
    if not changes:
        return kset
    try:
        return replace(kset, **changes)
    except ValueError as e:
        raise DataError(f"{source}: {e}") from None


def _index(value: Any, names: Sequence[str], where: str, one_based: bool = False) -> int:
    if isinstance(value, str):
        if value not in names:
            raise DataError(f"{where}: {value!r} is not a keypoint name; names are {', '.join(names)}")
        return list(names).index(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
        raise DataError(f"{where}: {value!r} is neither a keypoint index nor a name")
    i = int(value) - (1 if one_based else 0)
    if not 0 <= i < len(names):
        base = "1-based, 1.." + str(len(names)) if one_based else f"0-based, 0..{len(names) - 1}"
        raise DataError(f"{where}: index {value} is out of range ({base})")
    return i


def _pairs(value: Any, names: Sequence[str], where: str, one_based: bool) -> tuple[tuple[int, int], ...]:
    if not isinstance(value, (list, tuple)):
        raise DataError(f"{where} must be a list of [a, b] pairs, got {value!r}")
    out = []
    for p in value:
        if not isinstance(p, (list, tuple)) or len(p) != 2:
            raise DataError(f"{where}: entry {p!r} is not a pair [a, b]")
        out.append((_index(p[0], names, where, one_based), _index(p[1], names, where, one_based)))
    return tuple(out)


def _sigmas(value: Any, k: int, where: str) -> np.ndarray:
    try:
        sig = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise DataError(f"{where} must be {k} positive numbers, got {value!r}") from None
    if sig.shape[0] != k or not (np.isfinite(sig).all() and (sig > 0).all()):
        raise DataError(f"{where} must be {k} positive numbers (one OKS sigma per keypoint), got {sig.tolist()}")
    return sig
