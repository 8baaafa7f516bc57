"""Person detections for top-down evaluation and inference.

Three json layouts are accepted:

* COCO detection results: a list of ``{"image_id", "category_id", "bbox": [x, y, w, h], "score"}``;
* ``{"images": [{"id", "file_name", ...}], "detections": [...]}`` (``tests/data/people/person_detections.json``),
  which also lets detections be matched to image files by name;
* ``{"video": ..., "frames": n, "detections": [...]}`` (``vtest_detections.json``; ``image_id`` = frame index).

Boxes with zero or negative width/height are skipped and counted (one warning per file), never silently.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..io_utils import read_json

__all__ = ["Detections", "ids_from_file_names", "listed_image_id", "read_detections", "load_detections",
           "match_detections"]

logger = logging.getLogger(__name__)

_EMPTY = np.zeros((0, 5), dtype=np.float32)


@dataclass
class Detections:
    """Person boxes of one detection file.

    Attributes:
        path: the json file.
        boxes: ``image_id -> (M, 5)`` float32 array ``(x, y, w, h, score)``, sorted by descending score.
        file_names: ``image_id -> file_name`` when the file lists its images (wrapper format), else empty.
        num_skipped: boxes dropped because their width or height was <= 0.
        num_below_threshold: boxes dropped by the score threshold.
        num_other_category: boxes of other categories (not persons).
        meta: the wrapper's other top-level fields (e.g. ``video``, ``frames``).
    """

    path: Path
    boxes: dict[int, np.ndarray]
    file_names: dict[int, str] = field(default_factory=dict)
    num_skipped: int = 0
    num_below_threshold: int = 0
    num_other_category: int = 0
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return sum(len(b) for b in self.boxes.values())

    def for_image(self, key: int | str | os.PathLike) -> np.ndarray:
        """Boxes ``(M, 5)`` of one image; see :func:`match_detections`."""
        return match_detections(self, key)


def _fail(path: Path, msg: str) -> DataError:
    return DataError(f"{path}: {msg}")


# Boxes are kept as float32: a value beyond its range would become infinite there (and any real pixel coordinate is
# far below it).
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _is_number(v: object) -> bool:
    # NaN and infinity fail the comparison; so does an integer too large for a float (``math.isfinite`` would raise)
    return isinstance(v, (int, float)) and not isinstance(v, bool) and abs(v) <= _FLOAT32_MAX


def read_detections(path: str | os.PathLike, image_ids: list[int] | np.ndarray | set[int] | None = None,
                    score_thr: float = 0.0, category_id: int = 1) -> Detections:
    """Read and validate a detection json (any of the three layouts in the module docstring).

    Args:
        path: the json file.
        image_ids: when given, every detection must belong to one of these images (a detection of another image
            raises :class:`DataError` naming the first such ids), and every id gets an entry (possibly empty).
        score_thr: keep boxes with ``score >= score_thr``.
        category_id: the person category; other categories are dropped. Entries without ``category_id`` are
            taken as persons (some detectors write person-only files without it).

    Returns:
        A :class:`Detections`.

    Raises:
        DataError: missing/unreadable file, invalid json, unknown layout, or an entry with a missing or malformed
            field (the message names the file, the entry index and the field).
    """
    path = Path(path)
    data = read_json(path, "detection", "pass the json written by your person detector (COCO results format: a list "
                     "of {image_id, category_id, bbox, score})")

    file_names: dict[int, str] = {}
    meta: dict = {}
    if isinstance(data, dict):
        if not isinstance(data.get("detections"), list):
            raise _fail(path, "expected a list of detections, or an object with a 'detections' list (found keys "
                        f"{sorted(data)[:8]}); is this a keypoint annotation file instead?")
        entries = data["detections"]
        meta = {k: v for k, v in data.items() if k not in ("detections", "images")}
        images = data.get("images", [])
        if not isinstance(images, list):
            raise _fail(path, "'images' must be a list of {id, file_name}")
        for i, img in enumerate(images):
            if not isinstance(img, dict) or "id" not in img or "file_name" not in img:
                raise _fail(path, f"images[{i}] must have 'id' and 'file_name'")
            file_names[int(img["id"])] = str(img["file_name"])
    elif isinstance(data, list):
        entries = data
    else:
        raise _fail(path, f"expected a list of detections, got a json {type(data).__name__}")

    n = len(entries)
    ids = np.empty(n, dtype=np.int64)
    rows = np.empty((n, 5), dtype=np.float64)
    keep = np.zeros(n, dtype=bool)
    other = 0
    for i, d in enumerate(entries):
        if not isinstance(d, dict):
            raise _fail(path, f"detection {i} is a {type(d).__name__}, expected an object "
                        "{image_id, category_id, bbox, score}")
        for key in ("image_id", "bbox", "score"):
            if key not in d:
                raise _fail(path, f"detection {i} has no '{key}' field; each entry needs image_id, bbox [x, y, w, h] "
                            "and score")
        if d.get("category_id", category_id) != category_id:
            other += 1
            continue
        image_id, bbox, score = d["image_id"], d["bbox"], d["score"]
        if not isinstance(image_id, int) or isinstance(image_id, bool):
            raise _fail(path, f"detection {i}: image_id must be an integer, got {image_id!r}")
        if not isinstance(bbox, (list, tuple)) or len(bbox) != 4 or not all(_is_number(v) for v in bbox):
            raise _fail(path, f"detection {i}: bbox must be 4 finite numbers [x, y, w, h], got {bbox!r}")
        if not _is_number(score):
            raise _fail(path, f"detection {i}: score must be a finite number, got {score!r}")
        ids[i] = image_id
        rows[i, :4] = bbox
        rows[i, 4] = score
        keep[i] = True

    valid_size = keep & (rows[:, 2] > 0) & (rows[:, 3] > 0)
    num_skipped = int(keep.sum() - valid_size.sum())
    if num_skipped:
        logger.warning("%s: skipped %d detection(s) with zero or negative width/height", path, num_skipped)
    above = valid_size & (rows[:, 4] >= score_thr)
    num_below = int(valid_size.sum() - above.sum())

    if image_ids is not None:
        known = np.unique(np.asarray(list(image_ids), dtype=np.int64))
        # Check every person box (also those below the threshold): a wrong id means the wrong file was given.
        unknown = np.setdiff1d(ids[keep], known)
        if len(unknown):
            first = ", ".join(str(int(u)) for u in unknown[:5])
            raise _fail(path, f"{len(unknown)} image id(s) with detections are not in the annotations (first: "
                        f"{first}); are the detections for another split/annotation file?")

    sel = np.flatnonzero(above)
    sel_ids = ids[sel]
    # Group by image with one stable sort; within an image, descending score.
    order = np.lexsort((-rows[sel, 4], sel_ids))
    sel, sel_ids = sel[order], sel_ids[order]
    boxes: dict[int, np.ndarray] = {}
    if image_ids is not None:
        boxes = {int(i): _EMPTY for i in known}
    uniq, starts = np.unique(sel_ids, return_index=True)
    ends = np.append(starts[1:], len(sel))
    for image_id, s, e in zip(uniq, starts, ends):
        boxes[int(image_id)] = rows[sel[s:e]].astype(np.float32)
    return Detections(path=path, boxes=boxes, file_names=file_names, num_skipped=num_skipped,
                      num_below_threshold=num_below, num_other_category=other, meta=meta)


def load_detections(path: str | os.PathLike, image_ids: list[int] | np.ndarray | set[int] | None = None,
                    score_thr: float = 0.0, category_id: int = 1) -> dict[int, np.ndarray]:
    """Person boxes per image from a detection json.

    Args:
        path: detection json (COCO results list, or the ``images``/``detections`` or ``video``/``detections``
            wrappers).
        image_ids: if given, detections of other images raise :class:`DataError`, and every listed image gets an
            entry (``(0, 5)`` when it has no box).
        score_thr: keep boxes with ``score >= score_thr``.
        category_id: the person category id.

    Returns:
        ``image_id -> (M, 5)`` float32 ``(x, y, w, h, score)``, descending score.
    """
    return read_detections(path, image_ids=image_ids, score_thr=score_thr, category_id=category_id).boxes


_DIGITS = re.compile(r"(\d+)")


def match_detections(detections: Detections | dict[int, np.ndarray], key: int | str | os.PathLike,
                     file_names: dict[int, str] | None = None) -> np.ndarray:
    """Boxes of one image, found by image id or by file name.

    Lookup order: an ``int`` key is an image id; a path/name is matched against the file's ``images`` list
    (by full relative name, then by base name); failing that, the last run of digits in the file stem is used as
    the image id (COCO's ``000000000785.jpg`` -> 785, a video frame ``frame_0011.png`` -> 11), but only when the
    file lists no images.

    Args:
        detections: a :class:`Detections` or an ``image_id -> boxes`` dict.
        key: image id, or image path / file name.
        file_names: ``image_id -> file_name`` (taken from ``detections`` when it is a :class:`Detections`).

    Returns:
        ``(M, 5)`` float32 boxes, empty when the image has none.
    """
    if isinstance(detections, Detections):
        boxes, names = detections.boxes, (file_names if file_names is not None else detections.file_names)
    else:
        boxes, names = detections, (file_names or {})
    if isinstance(key, (int, np.integer)):
        return boxes.get(int(key), _EMPTY)
    key_path = Path(key)
    if names:
        # The file names its images: a name it does not list has no detections (guessing an id from digits could
        # silently pick another image's boxes).
        where = str(detections.path) if isinstance(detections, Detections) else "the detection file"
        image_id = listed_image_id(names, key_path, where)
        return _EMPTY if image_id is None else boxes.get(image_id, _EMPTY)
    digits = _DIGITS.findall(key_path.stem)
    if digits:
        return boxes.get(int(digits[-1]), _EMPTY)
    return _EMPTY


def listed_image_id(file_names: dict[int, str], path: str | os.PathLike, source: str) -> int | None:
    """The id of the image at ``path`` in a detection file's ``images`` list (``image_id -> file_name``).

    A listed name matches when it is the end of the path (``a/img.jpg`` matches ``/data/a/img.jpg``; the longest
    such name wins), else when it has the path's base name. ``None`` when no listed name matches.

    Raises:
        DataError: two listed names share the base name and neither ends the path: which image is meant is unknown
            (two folders' ``img.jpg``), and matching by base name would give one the other's boxes.
    """
    as_posix = Path(path).as_posix()
    listed = [(n.replace("\\", "/"), i) for i, n in file_names.items()]
    hits = [(n, i) for n, i in listed if as_posix == n or as_posix.endswith("/" + n.removeprefix("./"))]
    if hits:
        return max(hits, key=lambda h: len(h[0]))[1]
    same = [(n, i) for n, i in listed if Path(n).name == Path(path).name]
    if len(same) > 1:
        raise DataError(f"{source} lists {len(same)} images named {Path(path).name} ({_examples([n for n, _ in same])})"
                        f" and none of them is the path of {path}: which one's boxes belong to it is unknown. Give "
                        "the file names in the detection file relative to the folder you read (a/img.jpg), or read "
                        "each folder with its own detection file")
    return same[0][1] if same else None


def _examples(items: list, n: int = 3) -> str:
    return ", ".join(str(i) for i in items[:n]) + (" ..." if len(items) > n else "")


def ids_from_file_names(files: list[Path], detection_ids: set[int] | list[int], source: str) -> dict[str, int]:
    """Image ids of files from the digits in their names (COCO's ``000000000785.jpg`` -> 785), for a plain detection
    list that names no files; never a silent wrong mapping.

    The digits are trusted only as far as the ids agree: two files reading as the same detection id are refused; ids
    that fit every file only when shifted by one (``fasterpose synth``'s ``000001.jpg`` is image id 2) are refused;
    files left without an id while the detection list has ids left without a file are reported (counts and
    examples), since that is also what a folder not named by id looks like. Each message says how to name the files
    in the detection file instead (the ``images`` wrapper).

    Args:
        files: the image files.
        detection_ids: the image ids that have boxes.
        source: the detection file, for messages.

    Returns:
        ``file name -> image id`` for the files whose digits are a detection id (the others have no boxes).

    Raises:
        DataError: two files read as the same id, or the ids are the file digits shifted by one.
    """
    det_ids = set(int(i) for i in detection_ids)
    digits = {f.name: int(d[-1]) for f in files if (d := _DIGITS.findall(f.stem))}
    hint = (f"to say which file is which image, give {source} as {{\"images\": [{{\"id\": ..., \"file_name\": ...}}], "
            "\"detections\": [...]} (file names matched first)")
    by_id: dict[int, list[str]] = {}
    for name, image_id in digits.items():
        by_id.setdefault(image_id, []).append(name)
    clashes = [names for image_id, names in sorted(by_id.items()) if len(names) > 1 and image_id in det_ids]
    if clashes:
        raise DataError(f"{source} names no files, and the image files {' and '.join(clashes[0])} both read as "
                        f"image id {digits[clashes[0][0]]} from the digits in their names ({len(clashes)} such "
                        f"clash(es)): each would get the same boxes. Rename them, or {hint}")
    matched = {n: i for n, i in digits.items() if i in det_ids}
    for shift in (1, -1):
        shifted = sum(i + shift in det_ids for i in digits.values())
        if len(digits) > 1 and shifted == len(digits) > len(matched):
            example = next(iter(digits))
            raise DataError(f"{source} names no files, and its image ids fit the digits in the {len(digits)} file "
                            f"names only when shifted by {shift:+d} ({example} would be id {digits[example] + shift}, "
                            f"not {digits[example]}): the files are not named by image id (as `fasterpose synth` "
                            f"names them: 000001.jpg is id 2). Boxes matched by digits would land on the wrong "
                            f"images; {hint}")
    files_left = [f.name for f in files if f.name not in matched]
    ids_left = sorted(det_ids - set(matched.values()))
    if files_left and ids_left:
        logger.warning("%s names no files, and the digits in the file names match its image ids only in part: %d of "
                       "%d images matched, %d without an id (%s), %d ids of %s without a file (%s). If the files are "
                       "not named by image id, the matched boxes belong to other images; %s", source, len(matched),
                       len(files), len(files_left), _examples(files_left), len(ids_left), source,
                       _examples(ids_left), hint)
    elif matched:
        logger.info("%s: %d images matched to its image ids by the digits in their file names (COCO's naming)",
                    source, len(matched))
    return matched
