"""Static int8 quantisation of exported models with onnxruntime, calibrated on real person crops.

``quantize_onnx`` runs ``onnxruntime.quantization.quantize_static`` with:

* **QDQ format**, per-channel symmetric **int8 weights** (``QInt8``), per-tensor **uint8 activations**
  (``QUInt8``, asymmetric) -- "U8S8". On x86-64 with AVX512-VNNI (this project's reference CPU, AMD EPYC) this is the
  combination onnxruntime's MLAS kernels run fastest (``vpdpbusd`` multiplies u8 x s8 natively; S8S8 activations are
  converted/handled through slower paths on x86), and asymmetric uint8 fits post-ReLU activations better. The
  ``activation_type="qint8"`` option is kept for ARM, where S8S8 is the fast path.
* **MinMax calibration** over a few hundred real crops (percentile/entropy calibration was not better for these
  heatmap networks in our runs and needs far more memory).
* The fp32 model is first run through ``quant_pre_process`` (symbolic shape inference + graph optimisation, e.g.
  BN folding). Without it the int8 model is *not* faster than fp32 (measured on fasterpose_r50 256x192, 1 thread,
  interleaved: fp32 396 ms, U8S8 without pre-processing 438 ms, S8S8 with 260 ms, U8S8 with 118 ms; the machine was
  loaded, the ratios are what matters).
* The last convolution (heatmap logits) stays fp32 (``keep_last_conv_fp32``): 8-bit logits lose the small
  differences between neighbouring heatmap pixels that decide the peak; it is < 0.5% of the MACs.

Calibration crops (:func:`collect_crops`) come from a COCO keypoints json (person crops from the ground-truth boxes,
the same ``geometry`` crop as evaluation) or a folder of images (HOG person boxes, or the whole image when HOG finds
nobody). When a small source gives fewer crops than requested, mirrored, rescaled and rotated crops of the same
photos are added (still real pixels).

This module imports no torch.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from ..geometry import box_to_center_scale, crop_person, normalize_crop
from ..io_utils import atomic_path
from ..spec import PoseSpec

logger = logging.getLogger(__name__)

__all__ = [
    "IMAGE_SUFFIXES",
    "collect_crops",
    "coco_person_boxes",
    "default_parity_crops",
    "hog_people_boxes",
    "quantize_onnx",
    "peak_agreement",
    "compare_heatmaps",
]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
_PADDING = 1.25
# (flip, scale factor, rotation) variants used to enlarge small calibration sources.
_VARIANTS = ((False, 1.0, 0.0), (True, 1.0, 0.0), (False, 0.85, 0.0), (True, 1.15, 0.0), (False, 1.0, 20.0),
             (True, 1.0, -20.0), (False, 1.25, 10.0), (True, 0.75, -10.0))


def hog_people_boxes(image: np.ndarray, max_side: int = 640) -> np.ndarray:
    """OpenCV's HOG + linear SVM people detector (Dalal & Triggs), run on the image shrunk to ``max_side``.

    Args:
        image: ``(H, W, 3)`` BGR uint8.
        max_side: longer image side used for detection (speed); boxes are mapped back to the full image.

    Returns:
        ``(M, 5)`` boxes ``(x, y, w, h, score)`` in image pixels; the score is the SVM margin (not a probability).

    Raises:
        DataError: this OpenCV build has no HOG people detector (OpenCV >= 5 removed it).
    """
    import cv2

    if not hasattr(cv2, "HOGDescriptor") or not hasattr(cv2, "HOGDescriptor_getDefaultPeopleDetector"):
        raise DataError(f"this OpenCV ({cv2.__version__}) has no HOG people detector (removed in OpenCV 5); "
                        "pass person boxes with --boxes DETECTIONS.json or use --full-image, or install "
                        "'opencv-python-headless<5'")
    hog = cv2.HOGDescriptor()
    hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
    factor = min(1.0, max_side / max(image.shape[:2]))
    small = cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA) if factor < 1 else image
    rects, weights = hog.detectMultiScale(small, winStride=(8, 8), padding=(8, 8), scale=1.05)
    if len(rects) == 0:
        return np.zeros((0, 5))
    boxes = np.asarray(rects, dtype=np.float64).reshape(-1, 4) / factor
    return np.concatenate([boxes, np.asarray(weights, dtype=np.float64).reshape(-1, 1)], axis=1)


def _read_image(path: Path) -> np.ndarray:
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DataError(f"cannot read image {path} (missing, unreadable or not an image)")
    return image


def coco_person_boxes(ann_file: str | os.PathLike, image_root: str | os.PathLike | None = None
                      ) -> list[tuple[int, Path, np.ndarray]]:
    """``[(image id, image path, (M, 4) GT person boxes)]`` from a COCO keypoints json.

    Only non-crowd person annotations with keypoints (``num_keypoints > 0`` when the field exists) and a box of at
    least 1x1 pixel are used; images default to the json's folder.
    """
    ann_file = Path(ann_file)
    image_root = Path(image_root) if image_root is not None else None
    try:
        data = json.loads(ann_file.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise DataError(f"cannot read COCO annotations {ann_file}: {e}") from e
    if not isinstance(data, dict) or "images" not in data or "annotations" not in data:
        raise DataError(f"{ann_file} is not a COCO keypoints json (needs 'images' and 'annotations'); pass a COCO "
                        "person_keypoints json or a folder of images as --calib")
    root = image_root if image_root is not None else ann_file.parent
    if image_root is None and data["images"] and not (root / data["images"][0]["file_name"]).exists() \
            and (root / "images" / data["images"][0]["file_name"]).exists():
        root = root / "images"  # the other common layout: <folder>/annotations.json + <folder>/images/
    boxes: dict[int, list] = {}
    for ann in data["annotations"]:
        if ann.get("iscrowd", 0) or ann.get("category_id", 1) != 1 or ann.get("num_keypoints", 1) == 0:
            continue
        x, y, w, h = (float(v) for v in ann["bbox"])
        if w > 1 and h > 1:
            boxes.setdefault(ann["image_id"], []).append([x, y, w, h])
    out = []
    for img in data["images"]:
        if img["id"] in boxes:
            out.append((img["id"], root / img["file_name"], np.asarray(boxes[img["id"]])))
    if not out:
        raise DataError(f"{ann_file} has no usable person boxes (non-crowd, category 1, with keypoints)")
    return out


def _image_boxes(source: Path) -> list[tuple[Path, np.ndarray | None]]:
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DataError(f"folder {source} contains no images ({', '.join(IMAGE_SUFFIXES)})")
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
) -> tuple[np.ndarray, str]:
    """Real person crops for calibration or parity checks.

    Args:
        source: a COCO keypoints json (crops from the ground-truth person boxes), a folder of images or one image
            (HOG person boxes; the whole image when HOG finds nobody).
        spec: the model spec (input size, UDP or classic crop from ``spec.codec``).
        max_crops: number of crops returned (a random subset of the boxes when there are more).
        image_root: image folder for a COCO json (default: the json's folder).
        seed: random seed for the subset.
        augment: add mirrored / rescaled / rotated variants when the source has fewer boxes than ``max_crops``.

    Returns:
        ``inputs`` ``(N, 3, H, W)`` float32 normalised crops and a short description of the source.
    """
    source = Path(source)
    if not source.exists():
        raise DataError(f"calibration source {source} does not exist; pass a COCO keypoints json or an image folder")
    if source.suffix.lower() == ".json":
        items: list[tuple[Path, np.ndarray | None]] = [(p, b) for _, p, b in coco_person_boxes(source, image_root)]
        kind = "GT boxes"
    else:
        items = _image_boxes(source)
        kind = "HOG boxes"
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
                found = hog_people_boxes(image)
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


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """onnxruntime.quantization logs one INFO line per copied bias on the root logger; hide them unless debugging."""
    root = logging.getLogger()
    level = root.level
    if root.getEffectiveLevel() > logging.DEBUG:
        root.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        root.setLevel(level)


class _CropReader:
    """``CalibrationDataReader`` over normalised crops, in batches matching the model's batch dimension."""

    def __init__(self, input_name: str, inputs: np.ndarray, batch: int) -> None:
        self.input_name = input_name
        self.inputs = np.ascontiguousarray(inputs, dtype=np.float32)
        self.batch = batch
        self._it: Iterator[dict[str, np.ndarray]] | None = None

    def _batches(self) -> Iterator[dict[str, np.ndarray]]:
        for start in range(0, len(self.inputs) - self.batch + 1, self.batch):
            yield {self.input_name: self.inputs[start:start + self.batch]}

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._it is None:
            self._it = self._batches()
        return next(self._it, None)

    def rewind(self) -> None:
        self._it = None


def quantize_onnx(
    fp32_path: str | os.PathLike,
    out_path: str | os.PathLike,
    calib_inputs: np.ndarray,
    activation_type: str = "quint8",
    per_channel: bool = True,
    preprocess: bool = True,
    calib_description: str = "",
    keep_last_conv_fp32: bool = True,
) -> dict[str, Any]:
    """Statically quantise an exported fp32 model to int8 (QDQ), calibrated on ``calib_inputs``.

    Args:
        fp32_path: model written by :func:`fasterpose.deploy.export.export_onnx`.
        out_path: destination of the int8 model (written atomically; metadata copied, ``precision=int8``).
        calib_inputs: ``(N, 3, H, W)`` float32 normalised crops (a few hundred real ones).
        activation_type: ``"quint8"`` (default, U8S8; fastest on x86 VNNI) or ``"qint8"`` (S8S8).
        per_channel: per-output-channel weight scales.
        preprocess: run ``quant_pre_process`` on the fp32 model first.
        calib_description: where the crops came from (stored in the metadata).
        keep_last_conv_fp32: leave the final convolution (the heatmap logits) in fp32: its output quantised to 8 bits
            would round away the small logit differences between neighbouring heatmap pixels that decide the peak,
            and it costs < 0.5% of the MACs.

    Returns:
        Report dict: ``path``, ``calibration_crops``, ``activation_type``, ``weight_type``, ``per_channel``.
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    from .export import add_metadata
    from .predictor import SPEC_METADATA_KEY, read_onnx_spec

    act = {"quint8": QuantType.QUInt8, "qint8": QuantType.QInt8}.get(activation_type)
    if act is None:
        raise ValueError(f"activation_type must be 'quint8' or 'qint8', got {activation_type!r}")
    fp32_path = Path(fp32_path)
    src = onnx.load(str(fp32_path), load_external_data=False)
    meta = {p.key: p.value for p in src.metadata_props}
    spec = read_onnx_spec(meta, fp32_path)
    input_name = src.graph.input[0].name
    dim0 = src.graph.input[0].type.tensor_type.shape.dim[0]
    batch = dim0.dim_value if dim0.HasField("dim_value") and dim0.dim_value > 0 else 8
    if len(calib_inputs) < batch:
        raise ValueError(f"need at least {batch} calibration crops, got {len(calib_inputs)}")
    with tempfile.TemporaryDirectory(prefix="fasterpose_quant_") as tmpdir:
        model_in = fp32_path
        with atomic_path(out_path, suffix=".onnx") as tmp, _quiet_root_logger():
            if preprocess:
                from onnxruntime.quantization.shape_inference import quant_pre_process

                model_in = Path(tmpdir) / "preprocessed.onnx"
                try:
                    quant_pre_process(str(fp32_path), str(model_in), skip_symbolic_shape=False)
                except Exception as e:  # noqa: BLE001 - symbolic shape inference chokes on some graphs
                    # (ShuffleNet's channel shuffle: Reshape to a computed shape); ONNX shape inference suffices.
                    logger.debug("symbolic shape inference failed (%s); using ONNX shape inference", e)
                    quant_pre_process(str(fp32_path), str(model_in), skip_symbolic_shape=True)
            convs = [n.name for n in onnx.load(str(model_in)).graph.node if n.op_type == "Conv"]
            exclude = convs[-1:] if keep_last_conv_fp32 else []  # nodes are stored in topological order
            quantize_static(
                str(model_in), str(tmp), _CropReader(input_name, calib_inputs, batch),
                quant_format=QuantFormat.QDQ, per_channel=per_channel, weight_type=QuantType.QInt8,
                activation_type=act, calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=exclude,
            )
            proto = onnx.load(str(tmp))
            add_metadata(proto, spec, precision="int8", extra={
                "quantization": json.dumps({"format": "QDQ", "weight_type": "QInt8 per-channel" if per_channel else
                                            "QInt8", "activation_type": act.name, "calibration": "MinMax",
                                            "calibration_crops": int(len(calib_inputs)),
                                            "fp32_nodes": exclude,
                                            "calibration_source": calib_description}),
            })
            assert any(p.key == SPEC_METADATA_KEY for p in proto.metadata_props)
            onnx.save(proto, str(tmp))
    return {"path": str(out_path), "calibration_crops": int(len(calib_inputs)), "activation_type": act.name,
            "weight_type": "QInt8", "per_channel": per_channel, "calibration_source": calib_description,
            "fp32_nodes": exclude}


def peak_agreement(reference: np.ndarray, other: np.ndarray, tolerance: int = 0) -> float:
    """Fraction of ``(n, k)`` heatmaps whose argmax lies within ``tolerance`` heatmap pixels (Chebyshev) of the
    reference's.

    Args:
        reference: ``(N, K, h, w)`` heatmaps (logits or probabilities).
        other: same shape.
        tolerance: allowed peak distance in heatmap pixels (0 = identical peak).
    """
    if reference.shape != other.shape:
        raise ValueError(f"heatmap shapes differ: {reference.shape} vs {other.shape}")
    n, k, _, w = reference.shape
    a = reference.reshape(n, k, -1).argmax(-1)
    b = other.reshape(n, k, -1).argmax(-1)
    dist = np.maximum(np.abs(a % w - b % w), np.abs(a // w - b // w))
    return float(np.mean(dist <= tolerance))


def compare_heatmaps(reference: np.ndarray, other: np.ndarray) -> dict[str, float]:
    """Agreement statistics between fp32 and int8 heatmap logits ``(N, K, h, w)``.

    Returns:
        ``peak_agreement`` (identical argmax), ``peak_agreement_1px`` (within one heatmap pixel), ``correlation``
        (Pearson over all logits) and ``max_abs_diff``.
    """
    a = reference.astype(np.float64).ravel()
    b = other.astype(np.float64).ravel()
    corr = float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else float("nan")
    return {"peak_agreement": peak_agreement(reference, other), "peak_agreement_1px": peak_agreement(
        reference, other, tolerance=1), "correlation": corr, "max_abs_diff": float(np.max(np.abs(a - b)))}
