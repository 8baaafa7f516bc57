"""Writing a synthetic COCO dataset to a folder (images, keypoints json written last, detections json) and finding
it again in the cache by its parameters."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ...errors import DataError
from ...io_utils import WRITTEN_MANIFEST, atomic_write_json, claim_outputs, remove_stale_temporaries, written_here
from ...keypoints import COCO17
from .config import SynthConfig
from .detector import _detections
from .scene import render_sample

logger = logging.getLogger(__name__)

GENERATOR_VERSION = 2  # bump whenever the output changes: part of the parameters, so caches are invalidated
KEYPOINTS_FILE = "person_keypoints.json"
DETECTIONS_FILE = "person_detections.json"
IMAGES_DIR = "images"
SPLIT_SEEDS: dict[str, int] = {"train": 0, "val": 1, "test": 2}
IMAGE_ID_STRIDE = 1_000_000
ANNOTATION_ID_STRIDE = 10_000_000
INFO_KEY = "fasterpose_synthetic"
STATS_KEY = "fasterpose_synthetic_stats"


def dataset_params(num_images: int, seed: int, size: tuple[int, int], config: SynthConfig | None = None
                   ) -> dict[str, Any]:
    """The parameters that determine a dataset's bytes (stored in ``info`` and hashed for the cache)."""
    cfg = config or SynthConfig()
    return {"generator_version": GENERATOR_VERSION, "num_images": int(num_images), "seed": int(seed),
            "size": [int(size[0]), int(size[1])], "config": cfg.to_dict()}


def params_hash(params: dict[str, Any]) -> str:
    """Short stable hash of :func:`dataset_params` output."""
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]


def _paths(out_dir: Path) -> dict[str, Path]:
    return {"root": out_dir, "images": out_dir / IMAGES_DIR, "annotations": out_dir / KEYPOINTS_FILE,
            "detections": out_dir / DETECTIONS_FILE}


def _file_name(index: int) -> str:
    return f"{index:06d}.jpg"


def _load_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _params_of(gt: Any) -> dict[str, Any] | None:
    info = gt.get("info") if isinstance(gt, dict) else None
    return info.get(INFO_KEY) if isinstance(info, dict) else None


def _complete_stats(out_dir: Path, params: dict[str, Any]) -> dict[str, Any] | None:
    """The stored statistics if ``out_dir`` holds a complete dataset made with ``params``, else ``None``."""
    p = _paths(out_dir)
    if not p["annotations"].is_file() or not p["detections"].is_file():
        return None
    gt = _load_json(p["annotations"])
    if _params_of(gt) != params:
        return None
    if not all((p["images"] / _file_name(i)).is_file() for i in range(params["num_images"])):
        return None
    return gt["info"].get(STATS_KEY)


def _earlier_dataset_files(out_dir: Path) -> set[str]:
    """The files of a dataset written into ``out_dir`` by a version without a manifest (its keypoints json is a
    synthetic one): its json files and its numbered images."""
    names = {KEYPOINTS_FILE, DETECTIONS_FILE}
    images = out_dir / IMAGES_DIR
    if images.is_dir():
        names |= {f"{IMAGES_DIR}/{p.name}" for p in images.glob("*.jpg") if len(p.stem) == 6 and p.stem.isdigit()}
    return names


def _write_image(path: Path, img: np.ndarray, quality: int) -> None:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise OSError(f"could not encode {path}")
    # the writer's pid in the name (as io_utils does): a temporary of a killed run is removed by the next one
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.tmp.{os.getpid()}.", suffix=".jpg", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(buf.tobytes())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(e, OSError) and not e.filename:
            e.filename = str(path)
        raise


def _categories() -> list[dict[str, Any]]:
    return [{"supercategory": "person", "id": 1, "name": "person", "keypoints": list(COCO17.names),
             "skeleton": [[a + 1, b + 1] for a, b in COCO17.skeleton]}]


def generate_dataset(out_dir: str | os.PathLike, num_images: int, seed: int = 0, size: tuple[int, int] = (256, 256),
                     config: SynthConfig | None = None, progress: bool | None = None,
                     overwrite: bool = False) -> dict[str, Any]:
    """Write (or find already written) a synthetic COCO person-keypoint dataset.

    Images go to ``out_dir/images/`` first, then ``person_detections.json``, then ``person_keypoints.json`` last
    (all atomically), so a folder with ``person_keypoints.json`` is complete. If ``out_dir`` already holds a
    complete dataset with the same parameters (stored under ``info["fasterpose_synthetic"]``), nothing is
    rendered and the call returns at once with ``cached=True``.

    Args:
        out_dir: destination folder (created).
        num_images: number of images (>= 1).
        seed: split seed (see :data:`SPLIT_SEEDS`); image ids are ``seed * 1_000_000 + index + 1``.
        size: ``(height, width)`` of every image.
        config: content/difficulty knobs (:class:`SynthConfig`).
        progress: show a tqdm bar; ``None`` = only when stderr is a terminal.
        overwrite: replace a complete dataset with *different* parameters in ``out_dir`` (otherwise that is an
            error, so that a typo cannot silently clobber a dataset).

    Returns:
        ``{"root", "images", "annotations", "detections"}`` paths plus ``num_images``, ``num_persons``,
        ``num_keypoints`` (labelled, ``v>0``), ``num_detections``, ``seed``, ``size``, ``params_hash``,
        ``cached`` and ``seconds``.

    Raises:
        DataError: invalid arguments, or a different dataset already in ``out_dir`` without ``overwrite``.
    """
    cfg = config or SynthConfig()
    if int(num_images) < 1:
        raise DataError(f"synthetic dataset: num_images must be >= 1, got {num_images}")
    if int(seed) < 0:
        raise DataError(f"synthetic dataset: seed must be >= 0, got {seed}")
    if len(size) != 2 or min(int(size[0]), int(size[1])) < 32:
        raise DataError(f"synthetic dataset: size must be (height, width) with both >= 32, got {size}")
    if int(num_images) > IMAGE_ID_STRIDE - 1:
        raise DataError(f"synthetic dataset: at most {IMAGE_ID_STRIDE - 1} images per seed, got {num_images}")
    size = (int(size[0]), int(size[1]))
    out = Path(out_dir)
    paths = _paths(out)
    params = dataset_params(num_images, seed, size, cfg)
    phash = params_hash(params)
    t0 = time.perf_counter()

    def summary(stats: dict[str, Any], cached: bool) -> dict[str, Any]:
        return {**paths, **stats, "seed": int(seed), "size": list(size), "params_hash": phash, "cached": cached,
                "seconds": round(time.perf_counter() - t0, 3)}

    stats = _complete_stats(out, params)
    if stats is not None:
        logger.info("synthetic dataset already complete in %s (%d images)", out, num_images)
        return summary(stats, True)
    old = _params_of(_load_json(paths["annotations"])) if paths["annotations"].is_file() else None
    if old is not None and old != params and not overwrite:
        raise DataError(f"{paths['annotations']} holds a synthetic dataset with other parameters "
                        f"({old.get('num_images')} images, seed {old.get('seed')}, size {old.get('size')}); "
                        f"choose another folder or pass overwrite=True (--overwrite)")
    # Only files this generator wrote are ever replaced or removed: a user's own images or json are refused.
    names = [KEYPOINTS_FILE, DETECTIONS_FILE, *(f"{IMAGES_DIR}/{_file_name(i)}" for i in range(int(num_images)))]
    # a dataset of a version that wrote no manifest: its json files and numbered images are its own
    legacy = _earlier_dataset_files(out) if old is not None and not (out / WRITTEN_MANIFEST).exists() else set()
    claim_outputs(out, names, f"synthetic dataset folder {out}", also_ours=legacy)
    ours = written_here(out)
    # Invalidate first: from here until the final json is written the folder is incomplete.
    if paths["annotations"].exists():
        paths["annotations"].unlink()
    paths["images"].mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(paths["images"])  # images half-written by a killed run

    if progress is None:
        progress = sys.stderr.isatty()
    indices: Any = range(int(num_images))
    if progress:
        from tqdm import tqdm

        indices = tqdm(indices, desc="synth", unit="img")
    images, annotations, detections = [], [], []
    ann_id = int(seed) * ANNOTATION_ID_STRIDE
    for i in indices:
        img, persons = render_sample(seed, i, size, cfg)
        name = _file_name(i)
        _write_image(paths["images"] / name, img, cfg.jpeg_quality)
        image_id = int(seed) * IMAGE_ID_STRIDE + i + 1
        images.append({"id": image_id, "file_name": name, "height": size[0], "width": size[1]})
        for p in persons:
            ann_id += 1
            kp = p["keypoints"]
            flat: list[float | int] = []
            for x, y, v in kp:
                flat += [float(x), float(y), int(v)]
            annotations.append({
                "id": ann_id, "image_id": image_id, "category_id": 1, "keypoints": flat,
                "num_keypoints": int((kp[:, 2] > 0).sum()), "bbox": p["bbox"], "area": p["area"], "iscrowd": 0,
                "segmentation": p["segmentation"],
                "synthetic": {"facing": p["facing"], "yaw": p["yaw"], "head_yaw": p["head_yaw"],
                              "depth_rank": p["depth_rank"], "truncated": p["truncated"],
                              "visible_frac": p["visible_frac"], "pose": p["pose"]},
            })
        det_rng = np.random.default_rng([int(seed), i, 1])
        detections += _detections(det_rng, persons, image_id, size, cfg)

    # Images of an earlier, larger set in the same folder (overwrite=True) would not be in the json: remove them.
    keep = {im["file_name"] for im in images}
    for f in paths["images"].glob("*.jpg"):
        if f.name not in keep and f"{IMAGES_DIR}/{f.name}" in ours:
            f.unlink()
    stats = {"num_images": len(images), "num_persons": len(annotations),
             "num_keypoints": int(sum(a["num_keypoints"] for a in annotations)), "num_detections": len(detections)}
    info = {"description": "fasterpose synthetic person keypoints", "version": str(GENERATOR_VERSION),
            "year": 2026, INFO_KEY: params, STATS_KEY: stats}
    gt = {"info": info, "licenses": [], "categories": _categories(), "images": images, "annotations": annotations}
    atomic_write_json(paths["detections"], detections)
    atomic_write_json(paths["annotations"], gt)
    res = summary(stats, False)
    logger.info("wrote %d images, %d persons to %s in %.1f s", len(images), len(annotations), out, res["seconds"])
    return res


def default_cache_dir() -> Path:
    """``$FASTERPOSE_CACHE/synthetic`` or ``~/.cache/fasterpose/synthetic``."""
    base = os.environ.get("FASTERPOSE_CACHE")
    return (Path(base) if base else Path.home() / ".cache" / "fasterpose") / "synthetic"


def ensure_synthetic_dataset(cache_dir: str | os.PathLike | None = None, split: str = "train",
                             num_images: int = 1000, seed: int | None = None, size: tuple[int, int] = (256, 256),
                             config: SynthConfig | None = None, progress: bool | None = None) -> dict[str, Any]:
    """Return a cached synthetic dataset for ``split``, generating it once.

    The folder is ``cache_dir/<split>-<params-hash>/`` (``cache_dir`` defaults to :func:`default_cache_dir`), so
    different parameters never share a folder and an existing complete one is reused instantly.

    Args:
        cache_dir: cache root.
        split: ``"train"``, ``"val"`` or ``"test"``; picks the seed from :data:`SPLIT_SEEDS` unless ``seed`` is set.
        num_images: number of images.
        seed: explicit seed (overrides the split's).
        size: ``(height, width)``.
        config: knobs.
        progress: tqdm bar (``None`` = when stderr is a terminal).

    Returns:
        The :func:`generate_dataset` summary.
    """
    if seed is None:
        if split not in SPLIT_SEEDS:
            raise DataError(f"unknown synthetic split {split!r}; use one of {', '.join(SPLIT_SEEDS)} or pass a seed")
        seed = SPLIT_SEEDS[split]
    params = dataset_params(num_images, seed, size, config)
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return generate_dataset(root / f"{split}-{params_hash(params)}", num_images, seed, size, config, progress)


# Largest synthetic image side: a 4096x4096 image already needs ~200 MB of float buffers while it is drawn.
MAX_IMAGE_SIDE = 4096


def parse_size(text: str) -> tuple[int, int]:
    """``"256x192"`` -> ``(256, 192)``; ``"256"`` -> ``(256, 256)``."""
    try:
        parts = [int(p) for p in str(text).lower().replace("*", "x").split("x")]
    except ValueError:
        parts = []
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or min(parts) < 32 or max(parts) > MAX_IMAGE_SIDE:
        raise DataError(f"size must be HxW (height x width, each 32..{MAX_IMAGE_SIDE}), e.g. 256x256; got {text!r}")
    return parts[0], parts[1]
