"""Top-down COCO keypoint dataset, and the sample pipeline shared with MPII (:class:`TopDownDataset`).

One sample is one person: the image is decoded lazily, the person region (GT box or detector box, aspect-fixed and
padded) is cut out with an affine warp, and the keypoints are encoded into Gaussian heatmap targets.

Memory and start-up: the annotation json is parsed once at init into a handful of compact numpy arrays (one row per
sample: image index, ids, center, scale, score, keypoints); the parsed json is then dropped. No per-sample Python
objects are kept, so DataLoader workers forked from the main process do not slowly copy the dataset through
reference-count writes, and 150k+ annotations load in a few seconds (dominated by ``json.load``).

Determinism: every random number of sample ``index`` in epoch ``e`` comes from
``np.random.default_rng([seed, e, index])`` (split into independent streams per augmentation), so a sample does
not depend on worker count, worker assignment or iteration order; resuming at epoch ``e`` or sharding across DDP
ranks reproduces it exactly.
"""

from __future__ import annotations

import contextlib
import io
import logging
import operator
import os
import re
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from .. import geometry
from ..codec import HeatmapCodec
from ..errors import ConfigError, DataError
from ..io_utils import gc_paused, read_image, read_json
from ..keypoints import COCO17, KeypointSet, get_keypoint_set
from ..keypoints.category import keypoint_categories, select_keypoint_category
from .augment import AugmentConfig, color_jitter, half_body_transform, random_flip, random_scale_rotation
from .detections import read_detections

__all__ = ["TopDownDataset", "CocoKeypoints"]

logger = logging.getLogger(__name__)

# HRNet reads with IGNORE_ORIENTATION: COCO/MPII annotations refer to the stored pixel grid, and applying an EXIF
# rotation would silently misalign them.
IMREAD_FLAGS = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION


class TopDownDataset(Dataset):
    """Shared top-down sample pipeline: read, augment, crop, encode.

    Subclasses fill the per-sample arrays in ``__init__`` (then call :meth:`_finish_init`):
    ``_sample_image`` ``(N,)`` int32 index into ``_image_files`` (list of paths relative to ``image_root``),
    ``_image_ids`` / ``_ann_ids`` ``(N,)`` int64, ``_centers`` / ``_scales`` ``(N, 2)`` float32,
    ``_box_scores`` / ``_areas`` ``(N,)`` float32 and ``_keypoints`` ``(N, K, 3)`` float32 (image pixels).

    Each sample is a dict:

    * ``"image"``: ``(3, H, W)`` float32 tensor, RGB, ImageNet-normalised;
    * ``"target"``: ``(K, h, w)`` float32 tensor, Gaussian heatmaps (``codec.encode``);
    * ``"target_weight"``: ``(K,)`` float32 tensor;
    * ``"meta"``: ``image_id`` (int), ``ann_id`` (int, -1 for detector boxes), ``index`` (int), ``center`` and
      ``scale`` ``(2,)`` float32 (the region actually cropped, after augmentation; when ``flipped`` they are in
      the mirrored image's coordinates), ``box_score``, ``rotation`` (degrees), ``area`` (box ``w * h``) as
      numpy float32, ``flipped`` (bool), ``keypoints`` ``(K, 3)`` float32 ground truth in original (unflipped)
      image pixels (zeros for detector boxes).
    """

    def __init__(self, keypoint_set: KeypointSet | str, input_size: tuple[int, int], codec: HeatmapCodec | None,
                 train: bool, augment: AugmentConfig | None, seed: int, padding: float) -> None:
        super().__init__()
        self.channel_order = "rgb"  # what the evaluated model expects (PoseSpec.channel_order)
        self.keypoint_set = get_keypoint_set(keypoint_set) if isinstance(keypoint_set, str) else keypoint_set
        try:
            h, w = (int(v) for v in input_size)
        except (TypeError, ValueError):
            raise ConfigError(f"input_size must be (height, width), got {input_size!r}") from None
        self.input_size = (h, w)
        self.codec = codec if codec is not None else HeatmapCodec(self.input_size)
        if tuple(self.codec.input_size) != self.input_size:
            raise ConfigError(f"codec.input_size {tuple(self.codec.input_size)} differs from the dataset's input_size "
                              f"{self.input_size}; build the codec with the same input size")
        self.train = bool(train)
        self.augment = augment if augment is not None else (AugmentConfig() if self.train else None)
        self.seed = int(seed)
        self.padding = float(padding)
        self.epoch = 0
        self.num_skipped = 0
        self.flip_pairs = self.keypoint_set.flip_pairs
        self.flip_index = self.keypoint_set.flip_index
        self.aspect_ratio = w / h
        self.image_root = Path(".")
        self._image_files: list[str] = []

    # ------------------------------------------------------------------ public helpers

    @property
    def udp(self) -> bool:
        """Whether crops use the UDP transform (follows ``codec.unbiased``)."""
        return bool(self.codec.unbiased)

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation of ``epoch`` (call before iterating, in every process/worker's dataset copy)."""
        self.epoch = int(epoch)

    def sample_rng(self, index: int, epoch: int | None = None) -> np.random.Generator:
        """The generator all randomness of sample ``index`` in ``epoch`` (default: current) comes from."""
        return np.random.default_rng([self.seed, self.epoch if epoch is None else int(epoch), int(index)])

    def image_path(self, index: int) -> Path:
        """Path of the image of sample ``index``."""
        return self.image_root / self._image_files[self._sample_image[index]]

    def __len__(self) -> int:
        return len(self._image_ids)

    # ------------------------------------------------------------------ pipeline

    def _read_image(self, index: int) -> np.ndarray:
        path = self.image_path(index)
        img = read_image(path, IMREAD_FLAGS)
        if img is None:
            if not path.is_file():
                raise DataError(f"image {path} (sample {index}, image_id {int(self._image_ids[index])}) does not "
                                f"exist; check image_root ({self.image_root}) and the file_name in {self.source}")
            raise DataError(f"image {path} (sample {index}) could not be decoded by OpenCV (corrupt or not an image); "
                            "replace the file or remove its annotations")
        return img

    @property
    def source(self) -> str:
        """The annotation file (for messages)."""
        return str(getattr(self, "ann_file", "the annotation file"))

    def __getitem__(self, index: int | tuple[int, int]) -> dict[str, Any]:
        """Sample ``index``, augmented as in the current epoch; or, for a key ``(epoch, index)``, as in ``epoch``: a
        training sampler that names the epoch in its keys reaches DataLoader workers that persist across epochs,
        whose dataset copies never see :meth:`set_epoch`."""
        epoch = None
        if isinstance(index, tuple):
            epoch, index = index
        index = operator.index(index)
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"sample index {index} out of range for a dataset of {n} samples")
        img = self._read_image(index)
        center = self._centers[index].astype(np.float64)
        scale = self._scales[index].astype(np.float64)
        kpts = self._keypoints[index]
        xy = kpts[:, :2]
        vis = kpts[:, 2]
        rotation = 0.0
        flipped = False
        cfg = self.augment
        rng_color = None
        if self.train and cfg is not None:
            # Independent streams: switching one augmentation on/off leaves the others' draws unchanged.
            rng_half, rng_scale, rng_flip, rng_color = self.sample_rng(index, epoch).spawn(4)
            u_half = rng_half.random()
            if (cfg.half_body_prob > 0 and u_half < cfg.half_body_prob and self.keypoint_set.upper_body
                    and int((vis > 0).sum()) > cfg.half_body_min_keypoints):
                half = half_body_transform(xy, vis, self.keypoint_set, self.aspect_ratio, rng_half,
                                           padding=cfg.half_body_padding, upper_prob=cfg.half_body_upper_prob)
                if half is not None:
                    center, scale = half[0].astype(np.float64), half[1].astype(np.float64)
            scale, rotation = random_scale_rotation(scale, cfg, rng_scale)
            scale = scale.astype(np.float64)
            flipped = random_flip(cfg, rng_flip)

        out_h, out_w = self.input_size
        if flipped:
            # The flip is baked into the affine matrix (crop of the mirrored image = crop with a mirrored centre,
            # composed with x -> W - 1 - x): no full-image copy, bit-identical to flipping the image first.
            width = img.shape[1]
            center = geometry.flip_center(center, width)
            xy, vis = geometry.flip_keypoints(xy, vis, width, self.flip_index)
            matrix = geometry.get_warp_matrix(center, scale, self.input_size, rot=rotation, udp=self.udp)
            mirror = np.array([[-1.0, 0.0, width - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
            crop = cv2.warpAffine(img, matrix @ mirror, (out_w, out_h), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0, 0))
        else:
            crop, matrix = geometry.crop_person(img, center, scale, self.input_size, rot=rotation, udp=self.udp)
        if rng_color is not None and cfg.color_jitter:
            crop = color_jitter(crop, rng_color, cfg.brightness, cfg.contrast, cfg.saturation)

        crop_xy = geometry.transform_points(np.asarray(xy, dtype=np.float64), matrix)
        target, target_weight = self.codec.encode(crop_xy, vis)

        meta = {
            "image_id": int(self._image_ids[index]),
            "ann_id": int(self._ann_ids[index]),
            "index": index,
            "center": center.astype(np.float32),
            "scale": scale.astype(np.float32),
            "box_score": np.float32(self._box_scores[index]),
            "rotation": np.float32(rotation),
            "flipped": flipped,
            "area": np.float32(self._areas[index]),
            "keypoints": kpts.copy(),
        }
        return {
            "image": torch.from_numpy(geometry.normalize_crop(crop, self.channel_order)),
            "target": torch.from_numpy(target),
            "target_weight": torch.from_numpy(target_weight),
            "meta": meta,
        }

    def _finish_init(self) -> None:
        """Shared checks once the subclass filled the arrays."""
        n = len(self._image_ids)
        k = self.keypoint_set.num_keypoints
        assert self._keypoints.shape == (n, k, 3), self._keypoints.shape
        for name in ("_ann_ids", "_sample_image", "_box_scores", "_areas"):
            assert len(getattr(self, name)) == n, name
        assert self._centers.shape == self._scales.shape == (n, 2)


def default_image_root(ann_file: Path, first_image: str | None) -> Path:
    """Default image folder: the json's folder, then ``<folder>/images``, then COCO's ``../<split>`` layout."""
    folder = ann_file.parent
    candidates = [folder, folder / "images"]
    m = re.match(r"(?:person_keypoints|instances)_(\w+)\.json$", ann_file.name)
    if m:
        candidates += [folder.parent / m.group(1), folder.parent / "images" / m.group(1)]
    if first_image is not None:
        for c in candidates:
            if (c / first_image).is_file():
                return c
    return folder


class CocoKeypoints(TopDownDataset):
    """COCO-format keypoint dataset (COCO, OCHuman, CrowdPose-style files), one sample per person box.

    Args:
        ann_file: COCO keypoint annotation json (``images``, ``annotations``, ``categories``).
        image_root: image folder; default: the json's folder if the first image is there, else ``<folder>/images``,
            else (for ``person_keypoints_<split>.json``) ``<folder>/../<split>``.
        input_size: model input ``(height, width)``.
        codec: heatmap codec (default ``HeatmapCodec(input_size)``); ``codec.unbiased`` selects UDP crops.
        train: enable augmentation.
        augment: augmentation settings (default :class:`AugmentConfig` when ``train``, else none).
        boxes: ``"gt"`` for ground-truth boxes, or the path of a person detection json (evaluation with detector
            boxes).
        det_score_thr: with a detection json, keep boxes with ``score >= det_score_thr``.
        keypoint_set: keypoint layout (``COCO17`` or its name).
        seed: augmentation seed; see the module docstring.
        padding: box enlargement after fixing the aspect ratio (1.25).

    GT boxes (``boxes="gt"``, training and evaluation, as HRNet's ``_load_coco_keypoint_annotation_kernal``):
    non-crowd person annotations with at least one labelled keypoint; boxes clipped to the image
    (``x1 = max(0, x)``, ``x2 = min(W - 1, x1 + max(0, w - 1))``, same for y); boxes whose width or height is <= 0
    before or after clipping are skipped and counted in :attr:`num_skipped`. GT samples have ``box_score`` 1.

    Detector boxes: every person box with ``score >= det_score_thr`` of every image of the annotation file; a
    detection for an image id that is not in the annotations raises :class:`DataError`. Boxes with zero or negative
    size are skipped and counted.

    Attributes:
        ann_file, image_root, input_size, codec, keypoint_set, flip_pairs, flip_index, num_skipped, train, augment.
        coco: the ``pycocotools.coco.COCO`` object, loaded on first access (evaluation needs it, training does not).
    """

    def __init__(self, ann_file: str | os.PathLike, image_root: str | os.PathLike | None = None,
                 input_size: tuple[int, int] = (256, 192), codec: HeatmapCodec | None = None, train: bool = False,
                 augment: AugmentConfig | None = None, boxes: str | os.PathLike = "gt", det_score_thr: float = 0.0,
                 keypoint_set: KeypointSet | str = COCO17, seed: int = 0, padding: float = 1.25,
                 category: str | None = None) -> None:
        super().__init__(keypoint_set, input_size, codec, train, augment, seed, padding)
        self.ann_file = Path(ann_file)
        self.category = category
        self.boxes = boxes if boxes == "gt" else Path(boxes)
        self.det_score_thr = float(det_score_thr)
        self._coco = None
        hint = "pass a COCO keypoint annotation file (e.g. person_keypoints_val2017.json)"
        data = read_json(self.ann_file, "annotation", hint, pause_gc=True)
        if not isinstance(data, dict) or not isinstance(data.get("images"), list) \
                or not isinstance(data.get("annotations"), list):
            found = sorted(data)[:8] if isinstance(data, dict) else f"a json {type(data).__name__}"
            raise DataError(f"{self.ann_file}: not a COCO annotation file (needs 'images' and 'annotations' lists; "
                            f"found {found}); {hint}")
        with gc_paused():
            person_id = self.category_id = self._person_category(data)
            images = self._parse_images(data["images"])
            anns = self._parse_annotations(data["annotations"], person_id, images)
            del data

        if boxes == "gt":
            self._select_gt(anns, images)
        else:
            self._select_detections(images)
        first = self._image_files[self._sample_image[0]] if len(self._sample_image) else None
        self.image_root = Path(image_root) if image_root is not None else default_image_root(self.ann_file, first)
        self._finish_init()
        logger.info("%s: %d samples (%s boxes) from %d images", self.ann_file, len(self),
                    "GT" if boxes == "gt" else "detector", len(images["ids"]))

    # ------------------------------------------------------------------ parsing

    def _person_category(self, data: dict) -> int:
        """Id of the keypoint category whose annotations are read (checked against the keypoint set's names)."""
        cats = data.get("categories") or []
        if not isinstance(cats, list):
            raise DataError(f"{self.ann_file}: 'categories' must be a list")
        if not keypoint_categories(data):  # no keypoint names declared: COCO's person (id 1), unchecked
            person = [c for c in cats if isinstance(c, dict) and c.get("name") == "person"]
            return int(person[0].get("id", 1)) if person else 1
        cat = select_keypoint_category(data, self.ann_file, self.category)
        names = tuple(str(n) for n in cat["keypoints"])
        kset = self.keypoint_set
        if names != kset.names:
            diff = next((i for i, (a, b) in enumerate(zip(names, kset.names)) if a != b),
                        min(len(names), len(kset.names)))
            raise DataError(f"{self.ann_file}: category '{cat.get('name')}' has {len(names)} keypoints "
                            f"({', '.join(names[:4])}{' ...' if len(names) > 4 else ''}) but the keypoint set "
                            f"{kset.name!r} has {kset.num_keypoints}, and they first differ at index {diff}; use the "
                            "model or config made for this file's keypoints (data.keypoint_set: auto reads them)")
        if "id" not in cat:
            raise DataError(f"{self.ann_file}: the keypoint category '{cat.get('name')}' has no 'id' field")
        return int(cat["id"])

    def _parse_images(self, images: list) -> dict[str, Any]:
        n = len(images)
        ids = np.empty(n, dtype=np.int64)
        sizes = np.empty((n, 2), dtype=np.float64)  # (width, height)
        files: list[str] = []
        for i, img in enumerate(images):
            try:
                ids[i] = img["id"]
                sizes[i] = img["width"], img["height"]
                files.append(str(img["file_name"]))
            except (KeyError, TypeError, ValueError) as e:
                field = e.args[0] if isinstance(e, KeyError) else "id/width/height"
                raise DataError(f"{self.ann_file}: images[{i}] has a missing or invalid '{field}' field; every image "
                                "needs id, file_name, width and height") from None
        order = np.argsort(ids, kind="stable")
        if n > 1 and np.any(np.diff(ids[order]) == 0):
            dup = ids[order][np.flatnonzero(np.diff(ids[order]) == 0)[0]]
            raise DataError(f"{self.ann_file}: image id {int(dup)} appears more than once in 'images'")
        return {"ids": ids, "sizes": sizes, "files": files, "order": order}

    def _image_index(self, image_ids: np.ndarray, images: dict[str, Any], what: str) -> np.ndarray:
        """Index into ``images`` for each id; unknown ids raise DataError naming the first ones."""
        ids, order = images["ids"], images["order"]
        sorted_ids = ids[order]
        pos = np.searchsorted(sorted_ids, image_ids)
        pos_c = np.minimum(pos, max(len(sorted_ids) - 1, 0))
        ok = (pos < len(sorted_ids)) & (sorted_ids[pos_c] == image_ids) if len(sorted_ids) else np.zeros(
            len(image_ids), dtype=bool)
        if not np.all(ok):
            bad = np.unique(image_ids[~ok])
            raise DataError(f"{self.ann_file}: {len(bad)} {what} refer to image ids not in 'images' (first: "
                            f"{', '.join(str(int(b)) for b in bad[:5])})")
        return order[pos_c].astype(np.int32)

    def _parse_annotations(self, annotations: list, person_id: int, images: dict[str, Any]) -> dict[str, np.ndarray]:
        k = self.keypoint_set.num_keypoints
        anns = [a for a in annotations if isinstance(a, dict) and a.get("category_id", person_id) == person_id]
        if len(anns) != len(annotations):
            bad = next((i for i, a in enumerate(annotations) if not isinstance(a, dict)), None)
            if bad is not None:
                raise DataError(f"{self.ann_file}: annotations[{bad}] is not an object")
        n = len(anns)
        ann_ids = np.empty(n, dtype=np.int64)
        image_ids = np.empty(n, dtype=np.int64)
        crowd = np.zeros(n, dtype=bool)
        for i, a in enumerate(anns):
            for key in ("id", "image_id", "bbox", "keypoints"):
                if key not in a:
                    ref = f"annotation id {a['id']}" if "id" in a else f"person annotation #{i}"
                    raise DataError(f"{self.ann_file}: {ref} has no '{key}' field; COCO keypoint annotations need id, "
                                    "image_id, bbox [x, y, w, h] and keypoints [x1, y1, v1, ...]")
            try:
                ann_ids[i] = a["id"]
                image_ids[i] = a["image_id"]
            except (TypeError, ValueError):
                raise DataError(f"{self.ann_file}: annotation #{i}: id and image_id must be integers, got "
                                f"{a['id']!r}, {a['image_id']!r}") from None
            crowd[i] = bool(a.get("iscrowd", 0))
        bbox = self._stack(anns, "bbox", 4, ann_ids, "4 numbers [x, y, w, h]")
        kps = self._stack(anns, "keypoints", 3 * k, ann_ids,
                          f"{3 * k} numbers ({k} keypoints of {self.keypoint_set.name} as x, y, v)")
        image_index = self._image_index(image_ids, images, "annotations")
        return {"ann_ids": ann_ids, "image_ids": image_ids, "image_index": image_index, "crowd": crowd,
                "bbox": bbox, "keypoints": kps.reshape(n, k, 3)}

    def _stack(self, anns: list[dict], key: str, length: int, ann_ids: np.ndarray, expect: str) -> np.ndarray:
        """One ``(N, length)`` array from a list field, naming the first bad annotation on failure."""
        values = [a[key] for a in anns]
        try:
            arr = np.array(values, dtype=np.float32)
            if arr.shape == (len(anns), length) and np.isfinite(arr).all():
                return arr
        except (ValueError, TypeError):
            pass
        if not anns:
            return np.zeros((0, length), dtype=np.float32)
        for i, v in enumerate(values):
            ok = isinstance(v, list) and len(v) == length
            if ok:
                try:
                    ok = bool(np.isfinite(np.asarray(v, dtype=np.float64)).all())
                except (ValueError, TypeError):
                    ok = False
            if not ok:
                desc = f"{len(v)} values" if isinstance(v, list) else repr(v)[:60]
                raise DataError(f"{self.ann_file}: annotation id {int(ann_ids[i])}: '{key}' must be {expect}, "
                                f"got {desc}")
        raise AssertionError("unreachable")  # pragma: no cover

    # ------------------------------------------------------------------ sample selection

    def _set_samples(self, image_index: np.ndarray, image_ids: np.ndarray, ann_ids: np.ndarray, boxes: np.ndarray,
                     scores: np.ndarray, keypoints: np.ndarray, images: dict[str, Any]) -> None:
        center, scale = geometry.box_to_center_scale(boxes.astype(np.float64).reshape(-1, 4), self.aspect_ratio,
                                                     self.padding)
        self._sample_image = image_index.astype(np.int32)
        self._image_ids = image_ids.astype(np.int64)
        self._ann_ids = ann_ids.astype(np.int64)
        self._centers = center.astype(np.float32).reshape(-1, 2)
        self._scales = scale.astype(np.float32).reshape(-1, 2)
        self._box_scores = scores.astype(np.float32)
        self._areas = (boxes[:, 2] * boxes[:, 3]).astype(np.float32)
        self._box_sizes = np.maximum(boxes[:, 2], boxes[:, 3]).astype(np.float32)
        self._keypoints = np.ascontiguousarray(keypoints, dtype=np.float32)
        self._image_files = images["files"]
        self._image_sizes = images["sizes"].astype(np.int32)

    def _select_gt(self, anns: dict[str, np.ndarray], images: dict[str, Any]) -> None:
        kps = anns["keypoints"]
        labelled = (kps[:, :, 2] > 0).any(axis=1)
        candidate = ~anns["crowd"] & labelled
        bbox = anns["bbox"].astype(np.float64)
        x, y, w, h = bbox.T
        width, height = images["sizes"][anns["image_index"]].T
        # HRNet's clipping, verbatim (note that x2 is measured from the clipped x1).
        x1 = np.maximum(0.0, x)
        y1 = np.maximum(0.0, y)
        x2 = np.minimum(width - 1, x1 + np.maximum(0.0, w - 1))
        y2 = np.minimum(height - 1, y1 + np.maximum(0.0, h - 1))
        clean = np.stack([x1, y1, x2 - x1, y2 - y1], axis=1)
        valid = (w > 0) & (h > 0) & (clean[:, 2] > 0) & (clean[:, 3] > 0)
        keep = candidate & valid
        self.num_skipped = int((candidate & ~valid).sum())
        if self.num_skipped:
            bad = anns["ann_ids"][candidate & ~valid]
            logger.warning("%s: skipped %d person annotation(s) whose box has zero or negative width/height after "
                           "clipping to the image (first ids: %s)", self.ann_file, self.num_skipped,
                           ", ".join(str(int(b)) for b in bad[:5]))
        n_crowd = int(anns["crowd"].sum())
        n_empty = int((~anns["crowd"] & ~labelled).sum())
        logger.info("%s: %d person annotations -> %d GT samples (%d crowd and %d without keypoints excluded, %d "
                    "invalid boxes skipped)", self.ann_file, len(kps), int(keep.sum()), n_crowd, n_empty,
                    self.num_skipped)
        self._set_samples(anns["image_index"][keep], anns["image_ids"][keep], anns["ann_ids"][keep], clean[keep],
                          np.ones(int(keep.sum()), dtype=np.float32), kps[keep], images)

    def _select_detections(self, images: dict[str, Any]) -> None:
        det = read_detections(self.boxes, image_ids=images["ids"], score_thr=self.det_score_thr,
                              category_id=self.category_id)
        if det.num_other_category:
            logger.warning("%s: %d boxes of categories other than %d (the keypoint category of %s) are ignored",
                           self.boxes, det.num_other_category, self.category_id, self.ann_file.name)
        self.num_skipped = det.num_skipped
        image_index, image_ids, rows = [], [], []
        # Images in annotation-file order, boxes by descending score.
        for idx, image_id in enumerate(images["ids"]):
            b = det.boxes.get(int(image_id))
            if b is None or not len(b):
                continue
            rows.append(b)
            image_index.append(np.full(len(b), idx, dtype=np.int32))
            image_ids.append(np.full(len(b), image_id, dtype=np.int64))
        boxes = np.concatenate(rows) if rows else np.zeros((0, 5), dtype=np.float32)
        n = len(boxes)
        logger.info("%s: %d person boxes with score >= %g (%d below, %d invalid skipped)", self.boxes, n,
                    self.det_score_thr, det.num_below_threshold, det.num_skipped)
        k = self.keypoint_set.num_keypoints
        self._set_samples(np.concatenate(image_index) if rows else np.zeros(0, np.int32),
                          np.concatenate(image_ids) if rows else np.zeros(0, np.int64),
                          np.full(n, -1, dtype=np.int64), boxes[:, :4].astype(np.float64), boxes[:, 4],
                          np.zeros((n, k, 3), dtype=np.float32), images)

    # ------------------------------------------------------------------ evaluation helpers

    @property
    def coco(self):  # -> pycocotools.coco.COCO
        """``pycocotools.coco.COCO`` of :attr:`ann_file`, loaded (quietly) on first access and cached.

        Fields COCOeval reads but training does not (``area``, ``num_keypoints``, ``iscrowd``) are filled in where a
        keypoint annotation lacks them (``area`` = box ``w * h``, as files without segmentations are scored), so a
        file that trains also evaluates; ``fasterpose check-data`` lists such annotations.
        """
        if self._coco is None:
            from pycocotools.coco import COCO

            from ..evaluation.coco import fill_eval_fields

            data = read_json(self.ann_file, "annotation", "pass a COCO keypoint annotation file", pause_gc=True)
            filled = len(fill_eval_fields(data, {getattr(self, "category_id", 1)}))
            if filled:
                logger.info("%s: %d keypoint annotations lack area/num_keypoints/iscrowd; evaluated with area = box "
                            "w*h, num_keypoints = labelled count, iscrowd = 0", self.ann_file, filled)
            coco = COCO()
            coco.dataset = data
            with contextlib.redirect_stdout(io.StringIO()):  # createIndex() prints progress lines
                coco.createIndex()
            self._coco = coco
        return self._coco

    @property
    def gt_keypoints(self) -> np.ndarray:
        """``(N, K, 3)`` ground-truth x, y, v of each sample in image pixels (zeros for detector boxes)."""
        return self._keypoints

    @property
    def box_sizes(self) -> np.ndarray:
        """``(N,)`` ``max(w, h)`` of each sample's box (the PCK normaliser with ground-truth boxes)."""
        return self._box_sizes

    def __getstate__(self) -> dict[str, Any]:
        # Spawned DataLoader workers get the compact arrays only, never the (large) COCO index.
        state = self.__dict__.copy()
        state["_coco"] = None
        return state
