"""COCO keypoint evaluation: rescoring, OKS-NMS, results json and the official pycocotools ``COCOeval``.

The published recipe of SimpleBaseline / HRNet (``lib/dataset/coco.py::evaluate``), step by step:

1. every detected person gets a pose ``(K, 3)`` (x, y, heatmap max) in image pixels and its detector box score;
2. **rescoring**: ``score = box_score * mean(keypoint scores > 0.2)`` (0 when no keypoint is above 0.2);
3. **OKS-NMS** per image with threshold 0.9 (or soft OKS-NMS);
4. the kept poses are written as a COCO results json and scored with ``COCOeval(gt, gt.loadRes(res), "keypoints")``.

:func:`make_results` does 2-3 on arrays, :func:`evaluate_keypoints` does 4 (optionally 2-3 on an existing results
list/file too), :func:`load_coco` / :func:`load_results` validate the input files with clear
:class:`~fasterpose.errors.DataError` messages. pycocotools' prints are captured and logged at DEBUG level.

No torch here.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import os
from collections.abc import Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from ..errors import DataError
from ..io_utils import atomic_write_json, read_json
from ..keypoints import COCO17, KeypointSet
from .nms import oks_nms, soft_oks_nms

__all__ = [
    "DEFAULT_OKS_SIGMA",
    "category_sigmas",
    "oks_sigmas",
    "STAT_NAMES",
    "evaluate_keypoints",
    "format_table",
    "load_coco",
    "load_results",
    "make_results",
    "rescore",
    "write_results",
]

logger = logging.getLogger(__name__)

#: The ten numbers of ``COCOeval.summarize()`` for keypoints, in its order.
STAT_NAMES: tuple[str, ...] = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")

_NMS_CHOICES = ("oks", "soft", None)
# Fields COCOeval reads from every ground-truth annotation of a keypoint category.
_GT_FIELDS = ("id", "image_id", "category_id", "keypoints", "num_keypoints", "iscrowd", "area", "bbox")
_RESULT_FIELDS = ("image_id", "category_id", "keypoints", "score")
#: Fields of _GT_FIELDS that training does not need; :func:`fill_eval_fields` fills them in where missing.
_FILLED_FIELDS = ("num_keypoints", "iscrowd", "area")


@contextlib.contextmanager
def _quiet(what: str) -> Iterator[None]:
    """Capture pycocotools' stdout prints and log them at DEBUG level (stdout stays clean for ``--json``)."""
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf):
            yield
    finally:
        text = buf.getvalue().strip()
        if text:
            logger.debug("pycocotools (%s):\n%s", what, text)


def _finite(v: Any) -> bool:
    """A JSON number that is finite as a float (not a bool; an integer too large for a float is not)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    try:
        return math.isfinite(float(v))
    except OverflowError:
        return False


def _name_some(values: Sequence[Any], limit: int = 5) -> str:
    shown = ", ".join(repr(v) for v in list(values)[:limit])
    return shown + (f", ... ({len(values)} in all)" if len(values) > limit else f" ({len(values)} in all)")


def _keypoint_categories(dataset: Mapping[str, Any]) -> dict[Any, int]:
    """``{category_id: K}`` for the categories that declare a ``keypoints`` name list."""
    return {c["id"]: len(c["keypoints"]) for c in dataset.get("categories", [])
            if isinstance(c, dict) and "id" in c and isinstance(c.get("keypoints"), list) and c["keypoints"]}


def load_coco(ann_file: str | os.PathLike) -> COCO:
    """Load and validate a COCO person-keypoints annotation file.

    Checks that it exists, is JSON, has ``images`` / ``annotations`` / ``categories``, declares at least one
    category with a ``keypoints`` name list, and that every annotation of such a category has ``id, image_id,
    category_id, keypoints, bbox``, a ``keypoints`` list of length ``3 * K`` and an ``image_id`` listed in
    ``images``. The other fields ``COCOeval`` reads (``num_keypoints, iscrowd, area``) are filled in with a warning
    where a keypoint annotation lacks them (:func:`fill_eval_fields`, as training's evaluation does).

    Args:
        ann_file: path of e.g. ``person_keypoints_val2017.json``.

    Returns:
        a ``pycocotools.coco.COCO`` with its index built.

    Raises:
        DataError: naming the file, the entry / field and what to do.
    """
    path = Path(ann_file)
    data = read_json(path, "annotation", "pass a COCO keypoint annotation json such as "
                      "annotations/person_keypoints_val2017.json")
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a COCO annotation object with 'images', 'annotations' and 'categories', "
                        f"got a JSON {type(data).__name__}; is this a results file? (put the annotations first)")
    missing = [k for k in ("images", "annotations", "categories") if not isinstance(data.get(k), list)]
    if missing:
        raise DataError(f"{path}: not a COCO annotation file: missing or non-list {', '.join(map(repr, missing))}; "
                        "pass a COCO person_keypoints_*.json")
    kp_cats = _keypoint_categories(data)
    if not kp_cats:
        raise DataError(f"{path}: no category declares 'keypoints' (a list of keypoint names); a person keypoint "
                        "annotation file (person_keypoints_*.json) is needed, not an instances file")
    image_ids = set()
    for i, img in enumerate(data["images"]):
        if not isinstance(img, dict) or "id" not in img:
            raise DataError(f"{path}: images[{i}] has no 'id'; every image entry needs an 'id'")
        image_ids.add(img["id"])
    unknown_images = []
    for i, ann in enumerate(data["annotations"]):
        if not isinstance(ann, dict):
            raise DataError(f"{path}: annotations[{i}] is a {type(ann).__name__}, not an object")
        if "id" not in ann:
            raise DataError(f"{path}: annotations[{i}] has no 'id'; every annotation needs a unique 'id'")
        if ann.get("category_id") not in kp_cats:
            continue
        absent = [f for f in _GT_FIELDS if f not in ann and f not in _FILLED_FIELDS]
        if absent:
            raise DataError(f"{path}: annotations[{i}] (id {ann['id']!r}) misses {', '.join(map(repr, absent))}; "
                            "COCOeval needs them for every keypoint annotation")
        if "area" not in ann and not (isinstance(ann["bbox"], list) and len(ann["bbox"]) == 4
                                      and all(_finite(v) for v in ann["bbox"])):
            raise DataError(f"{path}: annotations[{i}] (id {ann['id']!r}) has no 'area' and its 'bbox' "
                            f"{ann['bbox']!r} is not 4 finite numbers [x, y, w, h] to compute it from; fix the box")
        k = kp_cats[ann["category_id"]]
        kps = ann["keypoints"]
        if not isinstance(kps, list) or len(kps) != 3 * k:
            n = len(kps) if isinstance(kps, list) else type(kps).__name__
            raise DataError(f"{path}: annotations[{i}] (id {ann['id']!r}) 'keypoints' has length {n}, expected "
                            f"3 * {k} = {3 * k} (x, y, v per keypoint of category {ann['category_id']!r})")
        if not all(_finite(v) for v in kps):
            raise DataError(f"{path}: annotations[{i}] (id {ann['id']!r}) 'keypoints' contains a value that is not a "
                            "finite number (NaN, infinity or text); fix the annotation")
        if ann["image_id"] not in image_ids:
            unknown_images.append(ann["image_id"])
    if unknown_images:
        raise DataError(f"{path}: annotations refer to image ids not listed in 'images': "
                        f"{_name_some(sorted(set(unknown_images), key=str))}; fix or remove them")
    filled = fill_eval_fields(data, kp_cats)
    if filled:
        logger.warning("%s: %d keypoint annotations lack 'area', 'num_keypoints' or 'iscrowd' (first: id %r); "
                       "scored with area = box w*h, num_keypoints = the number of keypoints with v > 0, iscrowd = 0, "
                       "as training evaluates them", path, len(filled), filled[0])
    coco = COCO()
    coco.dataset = data
    with _quiet("createIndex"):
        coco.createIndex()
    logger.debug("%s: %d images, %d annotations", path, len(data["images"]), len(data["annotations"]))
    return coco


def rescore(keypoints: np.ndarray, box_scores: np.ndarray, kpt_thr: float = 0.2) -> np.ndarray:
    """SimpleBaseline / HRNet pose rescoring: box score times the mean of the keypoint scores above ``kpt_thr``.

    ``score = box_score * mean(s_k for s_k > kpt_thr)``, and ``0`` when no keypoint score is above ``kpt_thr``
    (HRNet: ``kpt_score / valid_num if valid_num else 0``).

    Args:
        keypoints: ``(N, K, 3)`` poses whose third value is the keypoint score (or ``(N, K)`` scores).
        box_scores: ``(N,)`` detector box scores.
        kpt_thr: keypoint score threshold (HRNet's ``IN_VIS_THRE`` = 0.2).

    Returns:
        ``(N,)`` float64 pose scores.
    """
    kp = np.asarray(keypoints, dtype=np.float64)
    s = kp[..., 2] if kp.ndim == 3 else kp
    box_scores = np.asarray(box_scores, dtype=np.float64).reshape(-1)
    if s.ndim != 2 or s.shape[0] != box_scores.shape[0]:
        raise ValueError(f"rescore: keypoints {kp.shape} and box_scores {box_scores.shape} do not match")
    valid = s > kpt_thr
    count = valid.sum(axis=1)
    mean = np.where(count > 0, np.where(valid, s, 0.0).sum(axis=1) / np.maximum(count, 1), 0.0)
    return mean * box_scores


_rescore = rescore  # reachable inside functions whose ``rescore`` flag shadows it


#: OKS sigma of every keypoint of a set that brings none (neither in the config nor in its annotation category):
#: between COCO's eyes (0.025) and hips (0.107). AP computed with it compares models on one dataset, not datasets;
#: reports say when it was used.
DEFAULT_OKS_SIGMA = 0.05


def fill_eval_fields(data: dict[str, Any], category_ids: Collection[Any]) -> list[Any]:
    """Add the fields COCOeval reads that keypoint annotations of ``category_ids`` lack, in place.

    ``iscrowd`` = 0, ``num_keypoints`` = the number of keypoints with v > 0, ``area`` = box ``w * h`` (how files
    without segmentations are scored). Training reads none of these, so many hand-made files leave them out.

    Returns:
        the ids of the annotations that lacked any of them.
    """
    filled = []
    for a in data.get("annotations", []):
        if not isinstance(a, dict) or a.get("category_id") not in category_ids:
            continue
        if all(k in a for k in _FILLED_FIELDS):
            continue
        filled.append(a.get("id"))
        a.setdefault("iscrowd", 0)
        if "num_keypoints" not in a:
            a["num_keypoints"] = int(sum(1 for v in a.get("keypoints", [])[2::3] if v > 0))
        if "area" not in a:
            box = a.get("bbox") or [0, 0, 0, 0]
            a["area"] = float(box[2]) * float(box[3])
    return filled


def oks_sigmas(keypoint_set: KeypointSet) -> tuple[np.ndarray, bool]:
    """The OKS sigmas for ``keypoint_set``, and whether they are :data:`DEFAULT_OKS_SIGMA` (the set has none)."""
    if keypoint_set.sigmas is not None:
        return np.asarray(keypoint_set.sigmas, dtype=np.float64), False
    return np.full(keypoint_set.num_keypoints, DEFAULT_OKS_SIGMA), True


def category_sigmas(coco_gt: COCO, category_id: Any) -> tuple[np.ndarray | None, str]:
    """OKS sigmas for a keypoint category of the ground truth, and where they come from.

    The category's keypoint set (:func:`fasterpose.keypoints.category.keypoint_set_from_category`: COCO-17's
    sigmas for COCO's names, a ``sigmas`` list of the category, else :data:`DEFAULT_OKS_SIGMA`). ``(None,
    "COCO-17")`` when the category declares no keypoint names (pycocotools' COCO-17 sigmas then apply).
    """
    from ..keypoints.category import keypoint_set_from_category

    cat = coco_gt.cats.get(category_id) or {}
    if not isinstance(cat.get("keypoints"), list) or not cat["keypoints"]:
        return None, "COCO-17"
    sig, default = oks_sigmas(keypoint_set_from_category(cat, "annotations"))
    return sig, (f"default {DEFAULT_OKS_SIGMA:g} for every keypoint (the category has no sigmas)" if default
                 else f"of keypoint set {cat.get('name')!r}")


def _resolve_sigmas(sigmas: np.ndarray | Sequence[float] | None, num_keypoints: int) -> np.ndarray:
    if sigmas is not None:
        sig = np.asarray(sigmas, dtype=np.float64).reshape(-1)
        if sig.shape[0] != num_keypoints:
            raise ValueError(f"{sig.shape[0]} OKS sigmas given for {num_keypoints} keypoints")
        return sig
    if num_keypoints != COCO17.num_keypoints:
        raise ValueError(f"no default OKS sigmas for {num_keypoints} keypoints (COCO has 17); pass sigmas=")
    return COCO17.sigmas


def _select(
    image_ids: Sequence[Any],
    keypoints: np.ndarray,
    scores: np.ndarray,
    areas: np.ndarray,
    nms: str | None,
    nms_thr: float,
    sigmas: np.ndarray,
) -> np.ndarray:
    """Indices kept by per-image NMS, grouped by image (first-appearance order), best first within an image."""
    if nms not in _NMS_CHOICES:
        raise ValueError(f"nms must be one of 'oks', 'soft' or None, not {nms!r}")
    if nms is None:
        return np.arange(len(scores))
    # group by image id, in order of first appearance, without comparing every result with every image
    first: dict[Any, int] = {}
    group = np.fromiter((first.setdefault(_py(i), len(first)) for i in image_ids), dtype=np.int64,
                        count=len(image_ids))
    order = np.argsort(group, kind="stable")
    bounds = np.cumsum(np.bincount(group, minlength=len(first)))[:-1]
    kept = []
    for idx in np.split(order, bounds):
        if nms == "oks":
            keep = oks_nms(keypoints[idx], scores[idx], areas[idx], thr=nms_thr, sigmas=sigmas)
        else:
            keep = soft_oks_nms(keypoints[idx], scores[idx], areas[idx], thr=nms_thr, sigmas=sigmas)
        kept.append(idx[keep])
    return np.concatenate(kept) if kept else np.zeros(0, dtype=np.int64)


def _py(value: Any) -> Any:
    """numpy scalar -> python scalar (json-serialisable, hashable like the annotation ids)."""
    return value.item() if isinstance(value, np.generic) else value


def make_results(
    image_ids: Sequence[Any] | np.ndarray,
    keypoints: np.ndarray,
    box_scores: np.ndarray,
    areas: np.ndarray,
    *,
    rescore: bool = True,
    nms: str | None = "oks",
    nms_thr: float = 0.9,
    kpt_thr: float = 0.2,
    sigmas: np.ndarray | Sequence[float] | None = None,
    category_id: int = 1,
) -> list[dict[str, Any]]:
    """Turn per-person predictions into COCO keypoint results, with the published rescoring and OKS-NMS.

    NMS runs per image (grouped by ``image_id``) as in HRNet; with ``nms="soft"`` HRNet's soft OKS-NMS is used
    with ``nms_thr`` as its parameter (HRNet passes its ``OKS_THRE`` = 0.9 to both) and the kept poses keep
    their (rescored) score, as in HRNet; soft NMS removes nothing but caps each image at HRNet's 20 poses. The
    keypoint third values are written unchanged (the keypoint scores).

    ``areas`` is the person area in the OKS normaliser of the NMS. HRNet uses ``prod(scale * 200)``, i.e. the
    detection box after aspect-ratio fixing and the 1.25 padding; here it is whatever the caller passes: the
    evaluation loop passes ``scale[0] * scale[1]`` (the padded box, as HRNet) and :func:`evaluate_keypoints` uses
    a result's ``bbox`` ``w * h`` (or its ``area``, or the keypoints' extent).

    Args:
        image_ids: ``(N,)`` COCO image id of each person.
        keypoints: ``(N, K, 3)`` x, y in image pixels and keypoint scores.
        box_scores: ``(N,)`` detector box scores (or pose scores when ``rescore=False``).
        areas: ``(N,)`` person areas in pixels^2 for the NMS.
        rescore: apply :func:`rescore` first.
        nms: ``"oks"``, ``"soft"`` or ``None``.
        nms_thr: OKS threshold of the NMS (0.9 in the recipe).
        kpt_thr: keypoint score threshold of the rescoring (0.2).
        sigmas: OKS sigmas ``(K,)``; default COCO-17.
        category_id: category id written in every result (1 = person).

    Returns:
        list of ``{"image_id", "category_id", "keypoints" (3K python floats), "score"}``, grouped by image in
        order of first appearance, best first within an image (input order when ``nms=None``).
    """
    kp = np.asarray(keypoints, dtype=np.float64)
    n = len(image_ids)
    box_scores = np.asarray(box_scores, dtype=np.float64).reshape(-1)
    areas = np.asarray(areas, dtype=np.float64).reshape(-1)
    if kp.ndim != 3 or kp.shape[2] != 3 or kp.shape[0] != n or box_scores.shape[0] != n or areas.shape[0] != n:
        raise ValueError(f"make_results: expected image_ids (N,), keypoints (N, K, 3), box_scores (N,), areas (N,); "
                         f"got {n}, {kp.shape}, {box_scores.shape}, {areas.shape}")
    sig = _resolve_sigmas(sigmas, kp.shape[1]) if nms is not None else None
    scores = _rescore(kp, box_scores, kpt_thr) if rescore else box_scores
    keep = _select(image_ids, kp, scores, areas, nms, nms_thr, sig)
    flat = kp.reshape(n, 3 * kp.shape[1])
    cat = _py(category_id)
    out = [{"image_id": _py(image_ids[i]), "category_id": cat, "keypoints": flat[i].tolist(),
            "score": float(scores[i])} for i in keep.tolist()]
    logger.debug("make_results: %d persons -> %d results (rescore=%s, nms=%s)", n, len(out), rescore, nms)
    return out


def _validate_results(results: Any, coco: COCO, source: str) -> list[dict[str, Any]]:
    """Check a results list against the ground truth; ``source`` names the file (or "results") in messages."""
    if not isinstance(results, list):
        raise DataError(f"{source}: expected a JSON list of COCO keypoint results, got a {type(results).__name__}"
                        + ("; is this an annotation file? (put the results second)" if isinstance(results, dict)
                           else ""))
    if not results:
        raise DataError(f"{source}: no results (the list is empty); nothing to evaluate")
    kp_cats = _keypoint_categories(coco.dataset)
    gt_images = set(coco.getImgIds())
    unknown: set[Any] = set()
    for i, r in enumerate(results):
        if not isinstance(r, dict):
            raise DataError(f"{source}: entry [{i}] is a {type(r).__name__}, not an object with "
                            f"{', '.join(_RESULT_FIELDS)}")
        absent = [f for f in _RESULT_FIELDS if f not in r]
        if absent:
            raise DataError(f"{source}: entry [{i}] misses {', '.join(map(repr, absent))}; every result needs "
                            f"{', '.join(_RESULT_FIELDS)}")
        if r["category_id"] not in kp_cats:
            raise DataError(f"{source}: entry [{i}] has category_id {r['category_id']!r}, which is not a keypoint "
                            f"category of the annotations (those are {sorted(kp_cats, key=str)})")
        k = kp_cats[r["category_id"]]
        kps = r["keypoints"]
        if not isinstance(kps, list) or len(kps) != 3 * k:
            n = len(kps) if isinstance(kps, list) else type(kps).__name__
            raise DataError(f"{source}: entry [{i}] 'keypoints' has length {n}, expected 3 * {k} = {3 * k} "
                            "(a flat list x1, y1, s1, x2, y2, s2, ...)")
        if not all(_finite(v) for v in kps):
            raise DataError(f"{source}: entry [{i}] 'keypoints' contains a value that is not a finite number")
        s = r["score"]
        if not _finite(s):
            shown = s if not isinstance(s, int) or abs(s) < 10 ** 20 else f"an integer of {len(str(abs(s)))} digits"
            raise DataError(f"{source}: entry [{i}] 'score' is {shown!r}, not a finite number")
        if "bbox" in r and not (isinstance(r["bbox"], list) and len(r["bbox"]) == 4
                                and all(_finite(v) for v in r["bbox"])):
            raise DataError(f"{source}: entry [{i}] 'bbox' is {r['bbox']!r}; it must be 4 finite numbers "
                            "[x, y, width, height], or be left out")
        try:
            if r["image_id"] not in gt_images:
                unknown.add(r["image_id"])
        except TypeError:  # unhashable id (a list, ...)
            raise DataError(f"{source}: entry [{i}] 'image_id' is {r['image_id']!r}, not an image id") from None
    if unknown:
        raise DataError(f"{source}: image ids not in the annotations: {_name_some(sorted(unknown, key=str))}; "
                        "the results must come from the same image set as the annotation file")
    return results


def load_results(path: str | os.PathLike, coco: COCO) -> list[dict[str, Any]]:
    """Load and validate a COCO keypoint results json against the ground truth.

    Every entry needs ``image_id`` (an image of ``coco``), ``category_id`` (a keypoint category), ``keypoints``
    (``3 * K`` finite numbers) and a finite ``score``.

    Args:
        path: results json (a list of result objects).
        coco: the ground truth, from :func:`load_coco`.

    Returns:
        the list of result dicts, as read.

    Raises:
        DataError: naming the file, the entry and what is wrong.
    """
    path = Path(path)
    data = read_json(path, "results", "pass a COCO keypoint results json (a list of {image_id, category_id, "
                      "keypoints, score})")
    return _validate_results(data, coco, str(path))


def _result_areas(results: Sequence[Mapping[str, Any]], kp: np.ndarray) -> np.ndarray:
    """NMS areas of file results: ``bbox`` w*h, else ``area``, else the keypoints' extent (as ``loadRes``)."""
    areas = np.empty(len(results))
    x, y = kp[:, :, 0], kp[:, :, 1]
    extent = (x.max(1) - x.min(1)) * (y.max(1) - y.min(1))
    for i, r in enumerate(results):
        bb = r.get("bbox")
        if isinstance(bb, (list, tuple)) and len(bb) == 4:
            areas[i] = float(bb[2]) * float(bb[3])
        elif isinstance(r.get("area"), (int, float)):
            areas[i] = float(r["area"])
        else:
            areas[i] = extent[i]
    return areas


def evaluate_keypoints(
    coco_gt: COCO | str | os.PathLike,
    results: list[dict[str, Any]] | str | os.PathLike,
    *,
    rescore: bool = False,
    nms: str | None = None,
    nms_thr: float = 0.9,
    kpt_thr: float = 0.2,
    sigmas: np.ndarray | Sequence[float] | None = None,
) -> dict[str, float]:
    """Official COCO keypoint AP/AR with pycocotools, optionally after rescoring and OKS-NMS of the results.

    With ``rescore=False, nms=None`` this is exactly ``COCOeval(gt, gt.loadRes(results), "keypoints")``
    (evaluate, accumulate, summarize) with ``params.catIds`` = the results' one category, so that boxes of a
    file's other categories (a ``car`` beside the keypoint category) are not scored as missed. Otherwise the
    results are first processed like :func:`make_results`: each result's ``score`` is taken as the **box score**
    and the third value of each keypoint as the **keypoint score**; the NMS area of a result is its ``bbox``
    ``w * h`` when present, else its ``area``, else the area of its keypoints' extent (what ``loadRes`` computes).
    Other fields of a result (e.g. ``bbox``) are kept. The input list is never modified (``loadRes`` adds
    ``area``/``bbox``/``id`` to copies).

    Args:
        coco_gt: ground truth (a ``COCO`` or a path, loaded with :func:`load_coco`).
        results: result dicts or a results json path (validated like :func:`load_results`).
        rescore: apply :func:`rescore` (kpt_thr) first.
        nms: ``"oks"``, ``"soft"`` or ``None``.
        nms_thr: NMS threshold.
        kpt_thr: rescoring keypoint threshold.
        sigmas: OKS sigmas ``(K,)`` for the NMS **and** COCOeval; default: those of the results' category
            (:func:`category_sigmas`: COCO-17's for COCO, the category's ``sigmas``, else the default sigma).

    Returns:
        ``{name: value}`` for the ten :data:`STAT_NAMES` (python floats; -1.0 where pycocotools has no data).

    Raises:
        DataError: invalid files / results (e.g. image ids not in the ground truth, empty results).
    """
    if not isinstance(coco_gt, COCO):
        coco_gt = load_coco(coco_gt)
    if isinstance(results, (str, os.PathLike)):
        results = load_results(results, coco_gt)
    else:
        results = _validate_results(results, coco_gt, "results")
    k = len(results[0]["keypoints"]) // 3
    if len({len(r["keypoints"]) for r in results}) != 1:
        raise DataError("results: entries have keypoint lists of different lengths; evaluate one category at a time")
    categories = sorted({r["category_id"] for r in results}, key=str)
    if len(categories) != 1:
        raise DataError(f"results: entries of several categories {categories}; evaluate one category at a time")
    if sigmas is None:
        sigmas, source = category_sigmas(coco_gt, results[0]["category_id"])
        logger.info("OKS sigmas: %s", source)
    try:
        sig = _resolve_sigmas(sigmas, k)
    except ValueError as e:
        raise DataError(f"results: {e}") from None
    if rescore or nms is not None:
        kp = np.asarray([r["keypoints"] for r in results], dtype=np.float64).reshape(len(results), k, 3)
        box = np.asarray([r["score"] for r in results], dtype=np.float64)
        scores = _rescore(kp, box, kpt_thr) if rescore else box
        keep = _select([r["image_id"] for r in results], kp, scores, _result_areas(results, kp), nms, nms_thr, sig)
        processed = [{**results[i], "score": float(scores[i])} for i in keep.tolist()]
        logger.info("%d results -> %d after %s%s", len(results), len(processed), "rescoring + " if rescore else "",
                    {"oks": f"OKS-NMS ({nms_thr})", "soft": f"soft OKS-NMS ({nms_thr})", None: "no NMS"}[nms])
    else:
        processed = [dict(r) for r in results]
    with _quiet("COCOeval"):
        coco_dt = coco_gt.loadRes(processed)
        ev = COCOeval(coco_gt, coco_dt, "keypoints")
        ev.params.catIds = categories  # only the results' category: a file's other categories are not scored
        if sigmas is not None or k != COCO17.num_keypoints:
            ev.params.kpt_oks_sigmas = sig
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {name: float(v) for name, v in zip(STAT_NAMES, ev.stats)}


def write_results(path: str | os.PathLike, results: list[dict[str, Any]]) -> None:
    """Write COCO keypoint results atomically (never a half-written json)."""
    atomic_write_json(path, results)
    logger.info("wrote %d results to %s", len(results), path)


def format_table(stats: Mapping[str, float], digits: int = 3) -> str:
    """The ten COCO keypoint stats as a markdown table (one header row, one value row).

    Negative values (pycocotools' -1 = no ground truth in that area range) are shown as ``n/a``.
    """
    names = [n for n in STAT_NAMES if n in stats] + [n for n in stats if n not in STAT_NAMES]
    cells = [f"{stats[n]:.{digits}f}" if stats[n] >= 0 else "n/a" for n in names]
    widths = [max(len(n), len(c)) for n, c in zip(names, cells)]
    header = "| " + " | ".join(n.ljust(w) for n, w in zip(names, widths)) + " |"
    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    row = "| " + " | ".join(c.rjust(w) for c, w in zip(cells, widths)) + " |"
    return "\n".join((header, rule, row))
