"""Evaluate a checkpoint on its (or a given) config's validation set: the engine behind ``fasterpose eval``."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from ..codec import HeatmapCodec
from ..errors import CheckpointError, DataError
from ..io_utils import load_yaml
from ..keypoints.config import flip_enabled
from ..models import load_pose_checkpoint, model_from_checkpoint
from . import distributed as D
from .config import load_config

logger = logging.getLogger(__name__)


def evaluate_checkpoint(checkpoint: str | os.PathLike, config: str | os.PathLike | None = None,
                        overrides: list[str] | None = None, device: str | None = None,
                        results_path: str | os.PathLike | None = None) -> dict[str, Any] | None:
    """Evaluate ``checkpoint`` with the official metric of its dataset.

    Args:
        checkpoint: a fasterpose checkpoint; its spec (model, input size, codec, activation) is always used.
        config: config for the dataset and evaluation settings; ``None`` uses the one stored in the checkpoint.
        overrides: ``key=value`` overrides (``eval.boxes``, ``eval.flip_test``, ``data.val_ann`` ...).
        device: ``"cpu"``, ``"cuda"`` or ``None``.
        results_path: also write the COCO results json.

    Returns:
        On rank 0 a JSON-friendly report; ``None`` on other ranks. Its keys: ``checkpoint``, ``model``,
        ``input_size``, ``dataset``, ``keypoint_set``, ``keypoint_names``, ``sigmas``, ``sigmas_source``, ``boxes``,
        ``flip_test``, ``metric`` (the headline's name in ``stats``: ``"AP"``, ``"PCK"`` for a set without OKS
        sigmas, ``"Mean"`` for MPII's PCKh), ``value`` (the headline), ``ap`` (COCO OKS AP; ``None`` for MPII),
        ``pck`` (PCK of the box size, sets without sigmas; else ``None``), ``pckh`` (MPII's mean PCKh; else
        ``None``), ``stats`` (every figure), ``num_persons`` and ``seconds``.
    """
    from .inference import evaluate_dataset
    from .trainer import build_dataset

    ckpt = load_pose_checkpoint(checkpoint)
    base = ckpt.get("config")
    if config is None and not base:
        raise CheckpointError(f"{checkpoint} stores no training config (exported for inference only); pass a CONFIG "
                              "that names the validation data")
    cfg = load_config(config, overrides or [], base=None if config is not None else base)
    dist_info = D.setup(device)
    model, spec = model_from_checkpoint(ckpt)
    model = model.to(dist_info.device)
    codec = HeatmapCodec(**_codec_for_eval(spec.codec, overrides or [], checkpoint))
    cfg.data.input_size = spec.input_size  # the checkpoint decides what the model needs and what it predicts
    kset = spec.keypoint_set
    if results_path is not None:  # before any work: an output that is one of the inputs
        from ..io_utils import check_not_an_input

        boxes = cfg.eval.boxes if cfg.eval.boxes != "gt" else None
        check_not_an_input(results_path, [checkpoint, cfg.data.val_ann, boxes], "--results")
    if dist_info.is_main:
        dataset = build_dataset(cfg, "val", codec, keypoint_set=kset)
    D.barrier()
    if not dist_info.is_main:
        dataset = build_dataset(cfg, "val", codec, keypoint_set=kset)
    dataset.channel_order = spec.channel_order
    ev = cfg.eval
    if len(dataset) == 0:
        source = "the synthetic val split" if cfg.data.dataset == "synthetic" else cfg.data.val_ann
        why = ("no annotations with keypoints" if ev.boxes == "gt" else
               f"no box in {ev.boxes} of its keypoint category with a score >= eval.det_score_thr")
        raise DataError(f"the validation set ({source}) has no persons to evaluate: {why}; fix data.val_ann or "
                        "--boxes")
    flip_test = ev.flip_test and flip_enabled(kset, cfg.data.flip)
    stats = evaluate_dataset(model, dataset, codec, kset,
                             activation=spec.heatmap_activation, flip_test=flip_test, batch_size=ev.batch_size,
                             workers=min(cfg.train.workers, 4), device=dist_info.device, rescore=ev.rescore,
                             nms=None if ev.nms == "none" else ev.nms, nms_thr=ev.nms_thr, kpt_thr=ev.kpt_thr,
                             results_path=results_path if dist_info.is_main else None)
    if not dist_info.is_main:
        return None
    metric = stats.pop("metric")
    num_persons = stats.pop("num_persons")
    seconds = stats.pop("seconds")
    return {"checkpoint": str(Path(checkpoint)), "model": spec.model_name, "input_size": list(spec.input_size),
            "dataset": cfg.data.dataset, "keypoint_set": kset.name, "keypoint_names": list(kset.names),
            "sigmas": stats.pop("sigmas", None), "sigmas_source": stats.pop("sigmas_source", None),
            "boxes": ev.boxes, "flip_test": flip_test, "metric": metric,
            "value": stats[metric], "ap": stats.get("AP"), "pck": stats.get("PCK"),
            "pckh": stats["Mean"] if metric == "Mean" else None,
            "stats": stats, "num_persons": num_persons, "seconds": seconds}


# Decoding settings can change at evaluation time; the encoding ones define what the model was trained to output.
_DECODE_KEYS = ("decode", "dark_kernel")


def _codec_for_eval(codec: dict[str, Any], overrides: list[str], checkpoint: str | os.PathLike) -> dict[str, Any]:
    """The checkpoint's codec with ``--opt data.codec.decode=...`` / ``dark_kernel`` applied.

    Overriding an encoding setting (``sigma``, ``unbiased``, sizes) would decode with a different geometry than
    the model learned, so it is refused instead of silently ignored.
    """
    codec = dict(codec)
    for item in overrides:
        key, _, value = item.partition("=")
        if not key.strip().startswith("data.codec."):
            continue
        field = key.strip()[len("data.codec."):]
        if field not in _DECODE_KEYS:
            raise CheckpointError(f"--opt {key.strip()}: {checkpoint} was trained with codec {codec}; only the "
                                  f"decoding settings ({', '.join('data.codec.' + k for k in _DECODE_KEYS)}) can "
                                  "change at evaluation")
        codec[field] = load_yaml(value, f"--opt {key.strip()}: the value")
    return codec
