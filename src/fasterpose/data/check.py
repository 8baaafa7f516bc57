"""Validate a COCO-format keypoint dataset before training on it: the engine behind ``fasterpose check-data``.

:func:`check_dataset` reads an annotation file as plain JSON (it never stops at the first fault, unlike the
training loader) and returns a :class:`DataReport`: the keypoint set it infers (names, skeleton, flip pairs), counts
of images and persons, labelled / visible counts per keypoint, and a list of :class:`Problem` with the ids to look
at. ``error`` problems are those the training loader refuses or that make training meaningless (no keypoint
category, duplicate or dangling ids, malformed fields, missing or unreadable images, nothing labelled);
``warning`` problems are suspicious data that training would silently skip or learn from (empty boxes, boxes or
keypoints outside their image, keypoints outside their box, unpaired left/right keypoints, odd visibility
flags). :attr:`DataReport.ok` is true when there are no errors.

Images are checked for existence one by one (a ``stat``) and decoded for a sample of at most ``decode_sample``
of them (all when the dataset is smaller), chosen evenly over the file.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from ..io_utils import read_json
from ..keypoints import KeypointSet
from ..keypoints.category import keypoint_categories, keypoint_set_from_category, select_keypoint_category
from ..keypoints.names import unpaired_sided
from .coco import default_image_root

__all__ = ["DataReport", "Problem", "check_dataset"]

#: How many ids a problem lists (the count says how many there are in all).
MAX_IDS = 10
#: A keypoint more than this fraction of the box size outside its box is reported.
BOX_MARGIN = 0.1


@dataclass
class Problem:
    """One kind of fault: ``level`` ``"error"`` or ``"warning"``, a short ``code``, a message, and the ids."""

    level: str
    code: str
    message: str
    count: int = 0
    ids: list[Any] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"level": self.level, "code": self.code, "message": self.message, "count": self.count,
                "ids": self.ids}


@dataclass
class DataReport:
    """What :func:`check_dataset` found."""

    ann_file: str
    image_root: str | None
    keypoint_set: KeypointSet | None = None
    num_images: int = 0
    num_annotations: int = 0
    num_persons: int = 0
    labelled: list[int] = field(default_factory=list)
    visible: list[int] = field(default_factory=list)
    images_checked: int = 0
    images_decoded: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing stops training (warnings allowed)."""
        return not any(p.level == "error" for p in self.problems)

    def add(self, level: str, code: str, message: str, ids: list[Any] | None = None) -> None:
        ids = list(ids or [])
        self.problems.append(Problem(level, code, message, len(ids), [_plain(i) for i in ids[:MAX_IDS]]))

    def to_dict(self) -> dict[str, Any]:
        k = self.keypoint_set
        return {
            "ann_file": self.ann_file, "image_root": self.image_root, "ok": self.ok,
            "keypoint_set": k.to_dict() if k is not None else None,
            "flip_pairs_by_name": [[k.names[a], k.names[b]] for a, b in k.flip_pairs] if k is not None else [],
            "num_images": self.num_images, "num_annotations": self.num_annotations, "num_persons": self.num_persons,
            "labelled": self.labelled, "visible": self.visible, "images_checked": self.images_checked,
            "images_decoded": self.images_decoded, "problems": [p.to_dict() for p in self.problems],
        }


def check_dataset(ann_file: str | os.PathLike, image_root: str | os.PathLike | None = None,
                  category: str | None = None, decode_sample: int = 200, check_images: bool = True) -> DataReport:
    """Check a COCO-format keypoint annotation file (and its images).

    Args:
        ann_file: the annotation json.
        image_root: folder of the images (``file_name`` is relative to it); ``None``: the loader's default (the
            folder that holds the first image among the annotation file's folder, its ``images/`` subfolder, and
            COCO's ``../<split>`` layout).
        category: the keypoint category to check when the file has several (name or id).
        decode_sample: decode at most this many images (evenly spaced); existence is checked for all.
        check_images: look at the image files at all.

    Raises:
        DataError: the file does not exist or is not JSON (nothing else can be checked then).
    """
    path = Path(ann_file)
    data = read_json(path, "annotation", "pass a COCO keypoint annotation json", pause_gc=True)
    report = DataReport(ann_file=str(path), image_root=None if image_root is None else str(image_root))
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) \
            or not isinstance(data.get("annotations"), list):
        report.add("error", "not-coco", "not a COCO annotation file: it needs 'images' and 'annotations' lists "
                   "and a 'categories' list with a keypoint category")
        return report
    cat = _category(data, path, category, report)
    images = _check_images_field(data["images"], report)
    if cat is not None and report.keypoint_set is not None:
        _check_annotations(data["annotations"], cat, images, report)
    if check_images and images:
        first = next(iter(images.values()))["file_name"]
        root = Path(image_root) if image_root is not None else default_image_root(path, first)
        report.image_root = str(root)
        _check_image_files(images, root, decode_sample, report)
    return report


# ---------------------------------------------------------------------------------------------------- parts


def _category(data: dict, path: Path, category: str | None, report: DataReport) -> dict | None:
    try:
        cat = select_keypoint_category(data, path, category)
        report.keypoint_set = keypoint_set_from_category(cat, path)
    except DataError as e:
        report.add("error", "category", str(e).replace(f"{path}: ", "", 1))
        return None
    kset = report.keypoint_set
    if "id" not in cat:
        report.add("error", "category", f"the keypoint category {cat.get('name')!r} has no 'id'")
        return None
    if not cat.get("skeleton"):
        report.add("warning", "no-skeleton", "the category has no 'skeleton': drawings will show points only")
    lone = unpaired_sided(kset.names, kset.flip_pairs)
    if lone:
        report.add("warning", "unpaired-side", "keypoints named left/right without a mirror partner (the flip "
                   "augmentation and flip test will be off unless data.flip_pairs pairs them)",
                   [kset.names[i] for i in lone])
    if len(keypoint_categories(data)) > 1:
        report.add("warning", "several-categories", f"several keypoint categories; checked {cat.get('name')!r}")
    return cat


def _check_images_field(images: list, report: DataReport) -> dict[Any, dict]:
    """``{image id: image dict}`` of the well-formed images; malformed and duplicate ones are reported."""
    out: dict[Any, dict] = {}
    bad, dup = [], []
    for i, img in enumerate(images):
        ok = isinstance(img, dict) and _is_int(img.get("id")) and isinstance(img.get("file_name"), str) \
            and _positive(img.get("width")) and _positive(img.get("height"))
        if not ok:
            bad.append(img.get("id", f"images[{i}]") if isinstance(img, dict) else f"images[{i}]")
            continue
        if img["id"] in out:
            dup.append(img["id"])
        out[img["id"]] = img
    report.num_images = len(images)
    if bad:
        report.add("error", "bad-image", "images without an integer 'id', a 'file_name' or a positive 'width' and "
                   "'height'", bad)
    if dup:
        report.add("error", "duplicate-image-id", "image ids used more than once", dup)
    if not images:
        report.add("error", "no-images", "the 'images' list is empty")
    return out


def _check_annotations(anns: list, cat: dict, images: dict[Any, dict], report: DataReport) -> None:
    kset = report.keypoint_set
    assert kset is not None
    k = kset.num_keypoints
    cat_id = cat["id"]
    seen: set[Any] = set()
    faults: dict[str, list[Any]] = {}
    labelled = np.zeros(k, dtype=np.int64)
    visible = np.zeros(k, dtype=np.int64)
    persons = 0
    own = [a for a in anns if isinstance(a, dict) and a.get("category_id", cat_id) == cat_id]
    report.num_annotations = len(own)
    for i, a in enumerate(own):
        aid = a.get("id", f"#{i}")
        if not _is_int(a.get("id")):
            faults.setdefault("bad-ann-id", []).append(aid)
        elif a["id"] in seen:
            faults.setdefault("duplicate-ann-id", []).append(aid)
        seen.add(a.get("id"))
        img = images.get(a.get("image_id"))
        if img is None:
            faults.setdefault("unknown-image", []).append(aid)
        kp = _numbers(a.get("keypoints"), 3 * k)
        if kp is None:
            faults.setdefault("bad-keypoints", []).append(aid)
            continue
        kp = kp.reshape(k, 3)
        v = kp[:, 2]
        if not np.isin(v, (0, 1, 2)).all():
            faults.setdefault("odd-visibility", []).append(aid)
        lab = v > 0
        if a.get("iscrowd", 0):
            continue
        if any(f not in a for f in ("area", "num_keypoints", "iscrowd")):
            faults.setdefault("eval-fields", []).append(aid)
        if "num_keypoints" in a and _is_int(a["num_keypoints"]) and a["num_keypoints"] != int(lab.sum()):
            faults.setdefault("num-keypoints", []).append(aid)
        if lab.any():
            persons += 1
            labelled += lab
            visible += v == 2
        box = _numbers(a.get("bbox"), 4)
        if box is None:
            faults.setdefault("bad-bbox", []).append(aid)
            continue
        x, y, w, h = box
        if w <= 0 or h <= 0:
            faults.setdefault("empty-box", []).append(aid)
            continue
        if img is not None:
            iw, ih = float(img["width"]), float(img["height"])
            if x >= iw or y >= ih or x + w <= 0 or y + h <= 0:
                faults.setdefault("box-outside-image", []).append(aid)
            elif x < -1 or y < -1 or x + w > iw + 1 or y + h > ih + 1:
                faults.setdefault("box-crosses-image", []).append(aid)
            xy = kp[lab, :2]
            if len(xy) and ((xy < 0).any() or (xy[:, 0] > iw).any() or (xy[:, 1] > ih).any()):
                faults.setdefault("keypoint-outside-image", []).append(aid)
        xy = kp[lab, :2]
        m = BOX_MARGIN * max(w, h)
        if len(xy) and ((xy[:, 0] < x - m).any() or (xy[:, 0] > x + w + m).any() or (xy[:, 1] < y - m).any()
                        or (xy[:, 1] > y + h + m).any()):
            faults.setdefault("keypoint-outside-box", []).append(aid)
    report.num_persons = persons
    report.labelled, report.visible = labelled.tolist(), visible.tolist()
    for code, ids in faults.items():
        level, message = _FAULTS[code]
        report.add(level, code, message.format(k=k, n=3 * k, margin=BOX_MARGIN), ids)
    if persons == 0:
        report.add("error", "no-persons", "no (non-crowd) annotation of the keypoint category has a labelled keypoint: "
                   "there is nothing to train on")
    never = [kset.names[j] for j in range(k) if labelled[j] == 0]
    if persons and never:
        report.add("warning", "never-labelled", "keypoints never labelled (the model cannot learn them)", never)


_FAULTS: dict[str, tuple[str, str]] = {
    "bad-ann-id": ("error", "annotations without an integer 'id'"),
    "duplicate-ann-id": ("error", "annotation ids used more than once (COCOeval and results would mix them up)"),
    "unknown-image": ("error", "annotations whose image_id is not in 'images'"),
    "bad-keypoints": ("error", "annotations whose 'keypoints' is not {n} finite numbers (x, y, v for {k} keypoints)"),
    "bad-bbox": ("error", "annotations whose 'bbox' is not 4 finite numbers [x, y, w, h]"),
    "eval-fields": ("warning", "annotations without 'area', 'num_keypoints' or 'iscrowd' (every evaluation fills "
                               "them in: area = box w*h, num_keypoints = labelled count, iscrowd = 0)"),
    "odd-visibility": ("warning", "keypoint visibility flags other than 0, 1, 2 (values > 0 count as labelled)"),
    "num-keypoints": ("warning", "'num_keypoints' differs from the number of labelled keypoints (COCOeval ignores "
                                 "persons with num_keypoints 0)"),
    "empty-box": ("warning", "boxes with zero or negative width or height (training skips these persons)"),
    "box-outside-image": ("warning", "boxes entirely outside their image (training skips these persons)"),
    "box-crosses-image": ("warning", "boxes reaching over the image border (clipped to the image)"),
    "keypoint-outside-image": ("warning", "labelled keypoints outside their image (swapped x/y, or a wrong size?)"),
    "keypoint-outside-box": ("warning", "labelled keypoints more than {margin:g} x the box size outside their box "
                                        "(a box or keypoints of another person?)"),
}


def _check_image_files(images: dict[Any, dict], root: Path, decode_sample: int, report: DataReport) -> None:
    import cv2

    ids = list(images)
    missing = [i for i in ids if not (root / images[i]["file_name"]).is_file()]
    report.images_checked = len(ids)
    if missing:
        report.add("error", "missing-image", f"image files not found under {root} (check --images and the "
                   "file_name fields)", missing)
    gone = set(missing)
    present = [i for i in ids if i not in gone]
    step = max(1, math.ceil(len(present) / max(decode_sample, 1)))
    sample = present[::step][:decode_sample]
    unreadable, wrong_size = [], []
    for i in sample:
        img = cv2.imread(str(root / images[i]["file_name"]), cv2.IMREAD_UNCHANGED)
        if img is None:
            unreadable.append(i)
        elif (img.shape[1], img.shape[0]) != (int(images[i]["width"]), int(images[i]["height"])):
            wrong_size.append(i)
    report.images_decoded = len(sample)
    if unreadable:
        report.add("error", "unreadable-image", f"image files OpenCV cannot decode (of {len(sample)} decoded)",
                   unreadable)
    if wrong_size:
        report.add("warning", "image-size", f"images whose pixel size differs from their width/height fields (of "
                   f"{len(sample)} decoded)", wrong_size)


def _numbers(value: Any, length: int) -> np.ndarray | None:
    if not isinstance(value, list) or len(value) != length:
        return None
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return arr if np.isfinite(arr).all() else None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _positive(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


def _plain(value: Any) -> Any:
    return value if isinstance(value, (int, str, float)) else str(value)
