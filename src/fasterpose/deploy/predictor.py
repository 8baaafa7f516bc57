"""``Predictor``: image + person boxes -> keypoints in image pixels, with PyTorch or onnxruntime.

Pre- and post-processing are the functions training and evaluation use (:mod:`fasterpose.geometry`,
:mod:`fasterpose.codec`), so a deployed model decodes exactly like it was evaluated:

1. boxes are clipped to the image, then ``box_to_center_scale`` (aspect ratio of the model input, padding 1.25);
2. ``crop_person`` (UDP when ``spec.codec["unbiased"]``) and ``normalize_crop``; all persons of one image form one
   batch; with flip test the mirrored crops (``flip_image``) are appended to the same batch;
3. the model returns heatmap logits ``(N, K, h, w)``; ``sigmoid`` is applied when
   ``spec.heatmap_activation == "sigmoid"``; flipped heatmaps go through ``flip_back`` (one-pixel shift for the
   classic transform, none for UDP) and are averaged with the plain ones;
4. ``HeatmapCodec.decode`` -> crop-input pixels -> ``crop_to_image`` -> image pixels.

The onnxruntime backend imports no torch: an exported ``.onnx`` file carries its :class:`~fasterpose.spec.PoseSpec`
in the metadata (key ``fasterpose_spec``), and onnxruntime reads it without the ``onnx`` package.

Decisions:

* **Output alignment.** The result list has one entry per input box, in order. A box that lies wholly outside the
  image (or has no area) cannot be cropped: its entry has all-zero keypoints and scores (and ``"valid": False``),
  and a warning is logged. Boxes partly outside the image are clipped to it first.
* **Batching.** All crops of one image go through the model in one call. An ONNX model exported with a fixed batch
  (``fasterpose export`` default: batch 1) is run in chunks of its batch size (the last chunk zero-padded); export
  with ``--dynamic-batch`` for a single call per image. On CPU the per-crop cost is nearly the same either way.
* **Threads.** ``threads`` sets ``torch.set_num_threads`` (process wide) for the torch backend and
  ``intra_op_num_threads`` for onnxruntime; ``None`` keeps the library defaults.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..codec import HeatmapCodec, flip_back, sigmoid
from ..errors import CheckpointError, DataError, check_argument
from ..geometry import box_to_center_scale, crop_person, crop_to_image, flip_image, normalize_crop
from ..keypoints import KeypointSet
from ..spec import PoseSpec
from .onnx_io import SPEC_METADATA_KEY, ort_session, read_onnx_spec, run_session

logger = logging.getLogger(__name__)

__all__ = ["Predictor", "SPEC_METADATA_KEY", "read_onnx_spec", "run_session", "clip_boxes", "BACKENDS"]

BACKENDS = ("torch", "onnxruntime")
_PADDING = 1.25


def clip_boxes(boxes: np.ndarray, image_shape: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Clip ``(M, 4)`` xywh boxes to an image of shape ``(H, W, ...)``.

    Returns:
        ``clipped`` ``(M, 4)`` xywh boxes and ``valid`` ``(M,)`` bool: the clipped box is at least one pixel wide
        and high (a box wholly outside the image is not valid).
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    h, w = float(image_shape[0]), float(image_shape[1])
    x1 = np.clip(boxes[:, 0], 0.0, w)
    y1 = np.clip(boxes[:, 1], 0.0, h)
    x2 = np.clip(boxes[:, 0] + boxes[:, 2], 0.0, w)
    y2 = np.clip(boxes[:, 1] + boxes[:, 3], 0.0, h)
    clipped = np.stack([x1, y1, x2 - x1, y2 - y1], axis=1)
    valid = np.isfinite(boxes).all(axis=1) & (clipped[:, 2] >= 1.0) & (clipped[:, 3] >= 1.0)
    return clipped, valid


class Predictor:
    """Top-down pose estimation for one image and its person boxes.

    Args:
        model: a fasterpose checkpoint (``.pth``/``.pt``), a ``.safetensors`` or ONNX file written by
            ``fasterpose export``, published weights by name, an MMPose or official SimpleBaseline file, or an
            ``nn.Module`` (then ``spec`` is required). Files are opened without running code from them
            (:func:`fasterpose.checkpoint.read_torch_file`).
        backend: ``"torch"`` or ``"onnxruntime"``; default: ``"onnxruntime"`` for ``.onnx`` files, else ``"torch"``.
            A checkpoint with ``backend="onnxruntime"`` is exported to a temporary ONNX file (dynamic batch) first.
        threads: intra-op threads (``None``: library default).
        flip_test: average with the horizontally flipped crop; default ``spec.flip_test``.
        device: torch device for the torch backend (``"cpu"``, ``"cuda"``); onnxruntime uses the CPU provider
            (or CUDA when ``device`` starts with ``"cuda"`` and the provider is available).
        keypoint_set: the keypoint set the caller expects (e.g. ``"coco17"``); a model for another set raises
            :class:`~fasterpose.errors.CheckpointError`.
        spec: the :class:`PoseSpec` when ``model`` is an ``nn.Module``.
        max_batch: most persons per model call: an image with more goes through the model in batches of this size
            (memory stays bounded for a crowd; with the flip test a batch holds twice as many crops).

    Attributes:
        spec: the model's :class:`PoseSpec`.
        keypoint_set: its :class:`KeypointSet`, read from the file (names, flip pairs, skeleton, sigmas, sides).
        codec: the :class:`HeatmapCodec` built from ``spec.codec``.
        backend: the backend in use.
        last_timing: ``{"preprocess_ms", "model_ms", "postprocess_ms", "persons"}`` of the last call.

    Calling ``predictor(image_bgr, boxes)`` returns one dict per box: ``{"keypoints": (K, 3) float64 (x, y, score)
    in image pixels, "box": (4,) xywh as given, "box_score": float (1.0 without a score column), "valid": bool}``.
    """

    def __init__(
        self,
        model: Any,
        backend: str | None = None,
        threads: int | None = None,
        flip_test: bool | None = None,
        device: str = "cpu",
        keypoint_set: str | None = None,
        spec: PoseSpec | None = None,
        max_batch: int = 32,
    ) -> None:
        check_argument(model is not None and not isinstance(model, (bool, int, float)), "Predictor(model)", model,
                       "a checkpoint or ONNX file, the name of published weights, or an nn.Module with spec=")
        if isinstance(model, str) and not Path(model).exists() and Path(model).suffix.lower() != ".onnx":
            from ..models.loading import load_pose_checkpoint

            model = load_pose_checkpoint(model)  # published weights by name (or "does not exist", said there)
        is_path = isinstance(model, (str, os.PathLike))
        path = Path(model) if is_path else None
        is_onnx = path is not None and path.suffix.lower() == ".onnx"
        if backend is None:
            backend = "onnxruntime" if is_onnx else "torch"
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be >= 1 or None, got {threads}")
        if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1:
            raise ValueError(f"max_batch must be an integer >= 1, got {max_batch!r}")
        self.backend = backend
        self.threads = threads
        self.max_batch = max_batch
        self.device = device
        self._session: Any = None
        self._torch_model: Any = None
        self._tmpdir: Any = None

        if path is not None and not path.is_file():
            from ..io_utils import not_a_file

            raise CheckpointError(f"model file {path} {not_a_file(path)}")
        if backend == "onnxruntime":
            if not is_onnx:
                path = self._export_for_ort(model, spec)
            self.spec = self._init_ort(path)
        else:
            if is_onnx:
                raise CheckpointError(f"{path} is an ONNX model; use backend='onnxruntime' (or pass the checkpoint "
                                      "it was exported from to use backend='torch')")
            self.spec = self._init_torch(model, spec)

        self.keypoint_set: KeypointSet = self.spec.keypoint_set
        if keypoint_set is not None and keypoint_set != self.keypoint_set.name:
            raise CheckpointError(
                f"model {model} predicts keypoint set {self.keypoint_set.name!r} "
                f"({self.keypoint_set.num_keypoints} keypoints) but {keypoint_set!r} was requested; "
                "use a checkpoint trained for that keypoint set")
        codec_kwargs = dict(self.spec.codec)
        codec_kwargs.setdefault("input_size", list(self.spec.input_size))
        self.codec = HeatmapCodec(**codec_kwargs)
        if tuple(self.codec.input_size) != tuple(self.spec.input_size):
            raise CheckpointError(f"model {model}: codec input_size {self.codec.input_size} disagrees with the spec "
                                  f"input_size {self.spec.input_size}; re-export or fix the checkpoint spec")
        self.udp = bool(self.codec.unbiased)
        self.flip_test = self.spec.flip_test if flip_test is None else bool(flip_test)
        self.input_size = tuple(self.spec.input_size)
        self.last_timing: dict[str, float] = {"preprocess_ms": 0.0, "model_ms": 0.0, "postprocess_ms": 0.0,
                                              "persons": 0}
        if backend == "onnxruntime":
            self._check_ort_shapes(path)

    # ------------------------------------------------------------------ backends

    def _init_torch(self, model: Any, spec: PoseSpec | None) -> PoseSpec:
        import torch

        from ..models import model_from_checkpoint

        if isinstance(model, torch.nn.Module):
            if spec is None:
                raise ValueError("Predictor(nn.Module) needs spec=PoseSpec(...)")
            net = model
        else:
            try:
                net, spec = model_from_checkpoint(model)
            except RuntimeError as e:  # load_state_dict size mismatch: e.g. weights for another keypoint set
                raise CheckpointError(f"checkpoint {model}: its weights do not fit the model its spec describes "
                                      f"({str(e).splitlines()[0]} ...); was the spec edited, or the checkpoint "
                                      "trained for another keypoint set?") from e
        if self.threads is not None:
            torch.set_num_threads(self.threads)
        torch.set_flush_denormal(True)  # subnormal floats are slow on x86 CPUs
        self._torch_model = net.to(self.device).eval()
        return spec

    def _export_for_ort(self, model: Any, spec: PoseSpec | None) -> Path:
        from ..io_utils import temp_folder
        from .export import export_onnx

        self._tmpdir = temp_folder("fasterpose_predictor_")
        out = Path(self._tmpdir.name) / "model.onnx"
        export_onnx(model, out, spec=spec, dynamic_batch=True)
        return out

    def _init_ort(self, path: Path) -> PoseSpec:
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise CheckpointError("the onnxruntime backend needs onnxruntime: pip install 'fasterpose[deploy]'") from e
        providers = ["CPUExecutionProvider"]
        if self.device.startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        try:
            self._session = ort_session(path, threads=self.threads, providers=providers)
        except CheckpointError:
            raise
        except Exception as e:  # noqa: BLE001 - onnxruntime raises its own exception types for unreadable models
            raise CheckpointError(f"onnxruntime could not load {path} ({type(e).__name__}: {e}); "
                                  "is it a complete ONNX file written by `fasterpose export`?") from e
        return read_onnx_spec(self._session.get_modelmeta().custom_metadata_map, path)

    def _check_ort_shapes(self, path: Path) -> None:
        shape = self._session.get_inputs()[0].shape
        if len(shape) != 4:
            raise CheckpointError(f"ONNX model {path}: input must be (N, 3, H, W), got shape {shape}")
        h, w = shape[2], shape[3]
        if isinstance(h, int) and isinstance(w, int) and (h, w) != self.input_size:
            raise CheckpointError(f"ONNX model {path}: its input is {h}x{w} but its spec says input_size "
                                  f"{self.input_size[0]}x{self.input_size[1]}; the metadata does not belong to this "
                                  "graph. Re-export the checkpoint with `fasterpose export`")
        out_shape = self._session.get_outputs()[0].shape
        k = self.keypoint_set.num_keypoints
        if len(out_shape) == 4 and isinstance(out_shape[1], int) and out_shape[1] != k:
            raise CheckpointError(f"ONNX model {path}: it outputs {out_shape[1]} heatmaps but its spec says keypoint "
                                  f"set {self.keypoint_set.name!r} with {k} keypoints; re-export the checkpoint")
        hm = tuple(out_shape[2:4])
        if all(isinstance(s, int) for s in hm) and hm != tuple(self.codec.heatmap_size):
            raise CheckpointError(
                f"ONNX model {path}: heatmaps are {hm[0]}x{hm[1]} but the codec expects "
                                  f"{self.codec.heatmap_size[0]}x{self.codec.heatmap_size[1]}; re-export the checkpoint"
            )

    # ------------------------------------------------------------------ model

    def infer(self, inputs: np.ndarray) -> np.ndarray:
        """Run the network on normalised crops.

        Args:
            inputs: ``(N, 3, H, W)`` float32 network input (:func:`fasterpose.geometry.normalize_crop`).

        Returns:
            ``(N, K, h, w)`` float32 heatmap logits.
        """
        inputs = np.ascontiguousarray(inputs, dtype=np.float32)
        if self.backend == "torch":
            import torch

            with torch.inference_mode():
                out = self._torch_model(torch.from_numpy(inputs).to(self.device))
            return out.float().cpu().numpy()
        return run_session(self._session, inputs)

    # ------------------------------------------------------------------ full pipeline

    def preprocess(self, image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Crops for ``(M, 4)`` clipped, valid boxes: returns ``inputs`` ``(M, 3, H, W)``, ``center``, ``scale``."""
        h, w = self.input_size
        center, scale = box_to_center_scale(boxes, aspect_ratio=w / h, padding=_PADDING)
        crops = np.stack([crop_person(image, c, s, (h, w), udp=self.udp)[0] for c, s in zip(center, scale)])
        if self.flip_test:
            crops = np.concatenate([crops, np.stack([flip_image(c) for c in crops])])
        return normalize_crop(crops, self.spec.channel_order), center, scale

    def postprocess(self, logits: np.ndarray, center: np.ndarray, scale: np.ndarray) -> np.ndarray:
        """Heatmap logits (``2M`` rows with flip test) -> ``(M, K, 3)`` keypoints ``(x, y, score)`` in image pixels."""
        heatmaps = sigmoid(logits) if self.spec.heatmap_activation == "sigmoid" else logits
        if self.flip_test:
            m = len(center)
            flipped = flip_back(heatmaps[m:], self.keypoint_set.flip_index, shift=not self.udp)
            heatmaps = 0.5 * (heatmaps[:m] + flipped)
        points, scores = self.codec.decode(heatmaps)
        points = crop_to_image(points, center, scale, self.input_size, udp=self.udp)
        return np.concatenate([points, scores[..., None].astype(np.float64)], axis=-1)

    def __call__(self, image: np.ndarray, boxes: np.ndarray | Sequence[Sequence[float]]) -> list[dict[str, Any]]:
        """Predict the keypoints of every person box.

        Args:
            image: ``(H, W, 3)`` BGR uint8 image.
            boxes: ``(M, 4)`` boxes ``(x, y, w, h)`` in image pixels, or ``(M, 5)`` with a detection score.

        Returns:
            One dict per box (see the class docstring); ``[]`` for no boxes.
        """
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise DataError(f"image must be an (H, W, 3) BGR uint8 array, got shape {image.shape} {image.dtype}")
        boxes = np.asarray(boxes, dtype=np.float64)
        if boxes.size == 0:
            self.last_timing = {"preprocess_ms": 0.0, "model_ms": 0.0, "postprocess_ms": 0.0, "persons": 0}
            return []
        if boxes.ndim == 1:
            boxes = boxes[None]
        if boxes.ndim != 2 or boxes.shape[1] not in (4, 5):
            raise DataError(f"boxes must be (M, 4) xywh or (M, 5) xywh+score, got shape {boxes.shape}")
        box_scores = boxes[:, 4] if boxes.shape[1] == 5 else np.ones(len(boxes))
        t0 = time.perf_counter()
        clipped, valid = clip_boxes(boxes[:, :4], image.shape)
        if not valid.all():
            logger.warning("%d of %d boxes have less than one pixel inside the %dx%d image (outside it, or too "
                           "small); they get zero keypoint scores: %s", int((~valid).sum()), len(boxes),
                           image.shape[1], image.shape[0], boxes[~valid, :4].round(1).tolist())
        k = self.keypoint_set.num_keypoints
        keypoints = np.zeros((len(boxes), k, 3))
        rows = np.flatnonzero(valid)
        ms = np.array([1e3 * (time.perf_counter() - t0), 0.0, 0.0])  # checks and clipping count as preprocessing
        for start in range(0, len(rows), self.max_batch):  # a crowd goes through in batches: bounded memory
            chunk = rows[start:start + self.max_batch]
            t1 = time.perf_counter()
            inputs, center, scale = self.preprocess(image, clipped[chunk])
            t2 = time.perf_counter()
            logits = self.infer(inputs)
            t3 = time.perf_counter()
            keypoints[chunk] = self.postprocess(logits, center, scale)
            ms += 1e3 * np.diff([t1, t2, t3, time.perf_counter()])
        self.last_timing = {"preprocess_ms": float(ms[0]), "model_ms": float(ms[1]), "postprocess_ms": float(ms[2]),
                            "persons": int(valid.sum())}
        return [{"keypoints": keypoints[i], "box": boxes[i, :4].copy(), "box_score": float(box_scores[i]),
                 "valid": bool(valid[i])} for i in range(len(boxes))]

    def __repr__(self) -> str:
        return (f"Predictor(model={self.spec.model_name}, backend={self.backend}, input_size={self.input_size}, "
                f"keypoint_set={self.keypoint_set.name}, flip_test={self.flip_test}, threads={self.threads})")
