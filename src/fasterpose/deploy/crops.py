"""Real person crops for int8 calibration and export parity checks.

:func:`collect_crops` takes person crops from a COCO keypoints json (ground-truth boxes, the same
:mod:`fasterpose.geometry` crop as evaluation) or a folder of images (HOG person boxes, or the whole image when HOG
finds nobody or the installed OpenCV has no HOG: OpenCV 5 removed it). When a small source gives fewer crops than
requested, mirrored, rescaled and rotated crops of the same photos are added (still real pixels).
:func:`default_parity_crops` is what the export checks on when the user gives no data. This module imports no torch.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..data.images import IMAGE_SUFFIXES, list_images
from ..detect.hog import hog_available, hog_people_boxes
from ..errors import DataError
from ..geometry import box_to_center_scale, crop_person, normalize_crop
from ..io_utils import read_image, read_json
from ..keypoints.category import keypoint_categories
from ..spec import PoseSpec

__all__ = ["IMAGE_SUFFIXES", "collect_crops", "coco_person_boxes", "default_parity_crops", "hog_people_boxes"]

_PADDING = 1.25
# (flip, scale factor, rotation) variants used to enlarge small calibration sources.
_VARIANTS = ((False, 1.0, 0.0), (True, 1.0, 0.0), (False, 0.85, 0.0), (True, 1.15, 0.0), (False, 1.0, 20.0),
             (True, 1.0, -20.0), (False, 1.25, 10.0), (True, 0.75, -10.0))


def _read_image(path: Path) -> np.ndarray:
    image = read_image(path)
    if image is None:
        raise DataError(f"cannot read image {path} (missing, unreadable or not an image)")
    return image


def coco_person_boxes(ann_file: str | os.PathLike, image_root: str | os.PathLike | None = None,
                      option: str = "--calib") -> list[tuple[int, Path, np.ndarray]]:
    """``[(image id, image path, (M, 4) GT person boxes)]`` from a COCO keypoints json.

    Only non-crowd annotations of the keypoint categories (category 1 when none declares keypoint names) with
    keypoints (``num_keypoints > 0`` when the field exists) and a box of at least 1x1 pixel are used; images default
    to the json's folder. ``option`` is the command-line flag that named the file, for messages.
    """
    ann_file = Path(ann_file)
    image_root = Path(image_root) if image_root is not None else None
    hint = f"pass a COCO person_keypoints json or a folder of images as {option}"
    data = read_json(ann_file, "COCO keypoints", hint)
    if not isinstance(data, dict) or "images" not in data or "annotations" not in data:
        raise DataError(f"{ann_file} is not a COCO keypoints json (needs 'images' and 'annotations'); {hint}")
    root = image_root if image_root is not None else ann_file.parent
    if image_root is None and data["images"] and not (root / data["images"][0]["file_name"]).exists() \
            and (root / "images" / data["images"][0]["file_name"]).exists():
        root = root / "images"  # the other common layout: <folder>/annotations.json + <folder>/images/
    cats = {c.get("id") for c in keypoint_categories(data)} or {1}
    boxes: dict[int, list] = {}
    for ann in data["annotations"]:
        if ann.get("iscrowd", 0) or ann.get("category_id", 1) not in cats or ann.get("num_keypoints", 1) == 0:
            continue
        x, y, w, h = (float(v) for v in ann["bbox"])
        if w > 1 and h > 1:
            boxes.setdefault(ann["image_id"], []).append([x, y, w, h])
    out = []
    for img in data["images"]:
        if img["id"] in boxes:
            out.append((img["id"], root / img["file_name"], np.asarray(boxes[img["id"]])))
    if not out:
        raise DataError(f"{ann_file} has no usable person boxes (non-crowd, of a keypoint category, with keypoints)")
    return out


def _image_boxes(source: Path) -> list[tuple[Path, np.ndarray | None]]:
    if source.is_dir():
        files = list_images(source)[0]
    else:
        files = [source]
    return [(f, None) for f in files]


def collect_crops(
    source: str | os.PathLike,
    spec: PoseSpec,
    max_crops: int = 300,
    image_root: str | os.PathLike | None = None,
    seed: int = 0,
    augment: bool = True,
    option: str = "--calib",
) -> tuple[np.ndarray, str]:
    """Real person crops for calibration or parity checks.

    Args:
        source: a COCO keypoints json (crops from the ground-truth person boxes), a folder of images or one image
            (HOG person boxes; the whole image when HOG finds nobody or this OpenCV has no HOG).
        spec: the model spec (input size, UDP or classic crop from ``spec.codec``).
        max_crops: number of crops returned (a random subset of the boxes when there are more).
        image_root: image folder for a COCO json (default: the json's folder).
        seed: random seed for the subset.
        augment: add mirrored / rescaled / rotated variants when the source has fewer boxes than ``max_crops``.
        option: the command-line flag that named ``source``, for messages.

    Returns:
        ``inputs`` ``(N, 3, H, W)`` float32 normalised crops and a short description of the source.
    """
    source = Path(source)
    if not source.exists():
        raise DataError(f"{option} {source} does not exist; pass a COCO keypoints json or an image folder")
    if source.suffix.lower() == ".json":
        items: list[tuple[Path, np.ndarray | None]] = [
            (p, b) for _, p, b in coco_person_boxes(source, image_root, option)]
        kind = "GT boxes"
    else:
        items = _image_boxes(source)
        use_hog = hog_available()
        kind = "HOG boxes" if use_hog else "whole images: this OpenCV has no HOG"
    rng = np.random.default_rng(seed)
    # One (image index, box) entry per person; images are read lazily, each once.
    entries: list[tuple[int, np.ndarray | None]] = []
    for i, (_, boxes) in enumerate(items):
        entries.extend([(i, b) for b in boxes] if boxes is not None else [(i, None)])
    if len(entries) > max_crops:
        keep = np.sort(rng.choice(len(entries), size=max_crops, replace=False))
        entries = [entries[j] for j in keep]
    h, w = spec.input_size
    udp = bool(spec.codec.get("unbiased", False))
    cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    regions: list[tuple[int, np.ndarray, np.ndarray]] = []
    for i, box in entries:
        if i not in cache:
            image = _read_image(items[i][0])
            if box is None:
                found = hog_people_boxes(image) if use_hog else np.zeros((0, 5))
                img_boxes = found[:, :4] if len(found) else np.array([[0, 0, image.shape[1], image.shape[0]]], float)
            else:
                img_boxes = np.zeros((0, 4))
            cache[i] = (image, img_boxes)
        image, img_boxes = cache[i]
        for b in ([box] if box is not None else img_boxes):
            c, s = box_to_center_scale(np.asarray(b, dtype=np.float64), aspect_ratio=w / h, padding=_PADDING)
            regions.append((i, c, s))
    if not regions:
        raise DataError(f"no person crops found in {source}")
    variants = _VARIANTS if augment else _VARIANTS[:1]
    n_variants = min(len(variants), max(1, -(-max_crops // len(regions))))
    crops = []
    for flip, factor, rot in variants[:n_variants]:
        for i, c, s in regions:
            crop, _ = crop_person(cache[i][0], c, s * factor, (h, w), rot=rot, udp=udp)
            crops.append(crop[:, ::-1] if flip else crop)
            if len(crops) >= max_crops:
                break
        if len(crops) >= max_crops:
            break
    desc = f"{len(crops)} crops of {len(regions)} persons ({kind}) in {len(cache)} images from {source}"
    return normalize_crop(np.stack(crops)), desc


def default_parity_crops(spec: PoseSpec, n: int = 4) -> tuple[np.ndarray, str]:
    """Crops for the export parity check when the user gives no data.

    Uses the photos shipped in ``fasterpose/assets`` (whole-image crops) when present; otherwise smooth synthetic
    images (gradients + shapes + noise, deterministic) so that the check still covers realistic input statistics.
    """
    from importlib import resources

    try:
        assets = resources.files("fasterpose") / "assets"
        files = sorted(str(p) for p in assets.iterdir() if Path(str(p)).suffix.lower() in IMAGE_SUFFIXES)
    except (FileNotFoundError, NotADirectoryError, OSError):
        files = []
    if files:
        inputs, desc = collect_crops(Path(files[0]).parent, spec, max_crops=n, augment=True)
        return inputs, desc
    import cv2

    h, w = spec.input_size
    rng = np.random.default_rng(0)
    crops = []
    for _ in range(n):
        yy, xx = np.mgrid[0:h, 0:w]
        img = np.stack([(xx * rng.uniform(0.5, 1.5) + yy * rng.uniform(0.2, 1)) % 256 for _ in range(3)], -1)
        img = img.astype(np.uint8)
        for _ in range(6):
            center = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            axes = (int(rng.integers(5, w // 2)), int(rng.integers(5, h // 2)))
            color = tuple(int(v) for v in rng.integers(0, 256, 3))
            cv2.ellipse(img, center, axes, float(rng.uniform(0, 180)), 0, 360, color, -1)
        img = np.clip(img + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8)
        crops.append(cv2.GaussianBlur(img, (3, 3), 0))
    return normalize_crop(np.stack(crops)), f"{n} synthetic images (no parity data given)"
