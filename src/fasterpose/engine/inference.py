"""Dataset inference (batched forward, optional flip test, decoding, back to image pixels) and evaluation.

Under ``torch.distributed`` every rank predicts its contiguous share of the dataset; the per-rank arrays are
gathered with ``all_gather_object`` and put back in dataset order, then rank 0 computes the official COCO
keypoint AP (pycocotools, after rescoring and OKS-NMS) or MPII PCKh, and the numbers are broadcast to all ranks.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..codec import HeatmapCodec, flip_back
from ..evaluation.coco import evaluate_keypoints, make_results, oks_sigmas, write_results
from ..geometry import crop_to_image
from ..keypoints import KeypointSet
from . import distributed as D

logger = logging.getLogger(__name__)

__all__ = ["collate", "predict_heatmaps", "predict_dataset", "evaluate_dataset"]


def collate(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Stack the tensors of dataset samples; ``meta`` stays a list of per-sample dicts."""
    out: dict[str, Any] = {"meta": [s.get("meta", {}) for s in samples]}
    for key in samples[0]:
        if key != "meta":
            out[key] = torch.stack([torch.as_tensor(s[key]) for s in samples])
    return out


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The bare model inside DistributedDataParallel / DataParallel / torch.compile wrappers."""
    while True:
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if not isinstance(inner, torch.nn.Module):
            return model
        model = inner


@torch.no_grad()
def predict_heatmaps(model: torch.nn.Module, images: torch.Tensor, *, activation: str = "sigmoid",
                     flip_index: np.ndarray | None = None, flip_test: bool = False, shift: bool = False,
                     amp: bool | torch.dtype = False) -> np.ndarray:
    """Activated heatmaps ``(N, K, h, w)`` float32 for a batch of normalised crops ``(N, 3, H, W)``.

    Args:
        model: pose model returning logits (in eval mode).
        images: input batch on the model's device.
        activation: ``"sigmoid"`` (RCE models) or ``"identity"`` (MSE models), applied before averaging.
        flip_index: keypoint permutation of a horizontal flip (needed with ``flip_test``).
        flip_test: average with the flipped-back prediction of the mirrored crop.
        shift: shift the flipped-back heatmaps by one pixel (classic transform; not with UDP).
        amp: autocast on CUDA: ``True`` for CUDA's default (fp16), or the dtype (the training's, e.g. bfloat16).
    """
    dtype = amp if isinstance(amp, torch.dtype) else None

    def forward(x: torch.Tensor) -> np.ndarray:
        with torch.autocast(device_type=x.device.type, dtype=dtype, enabled=bool(amp) and x.device.type == "cuda"):
            logits = model(x)
        logits = logits.float()
        heat = torch.sigmoid(logits) if activation == "sigmoid" else logits
        return heat.cpu().numpy()

    heatmaps = forward(images)
    if flip_test:
        if flip_index is None:
            raise ValueError("flip_test needs the keypoint set's flip_index")
        flipped = flip_back(forward(torch.flip(images, dims=[3])), flip_index, shift=shift)
        heatmaps = 0.5 * (heatmaps + flipped)
    return heatmaps


def predict_dataset(model: torch.nn.Module, dataset: Dataset, codec: HeatmapCodec, keypoint_set: KeypointSet, *,
                    activation: str = "sigmoid", flip_test: bool = True, batch_size: int = 64, workers: int = 0,
                    device: torch.device | str = "cpu", amp: bool | torch.dtype = False,
                    progress: bool = False) -> dict[str, Any]:
    """Predict every sample of a top-down dataset (all ranks together when distributed).

    Args:
        model: pose model (DDP-wrapped or not; the bare module is used so that ranks need not stay in step).
        dataset: yields ``{"image", "meta": {"index", "image_id", "center", "scale", "box_score", ...}}``.
        codec: decodes heatmaps to crop-input pixels.
        keypoint_set: gives the flip permutation.
        activation: see :func:`predict_heatmaps`.
        flip_test: flip test.
        batch_size: per-rank batch.
        workers: DataLoader workers.
        device: where the model runs.
        amp: autocast on CUDA (``True``: fp16; or the autocast dtype).
        progress: tqdm bar (rank 0).

    Returns:
        Arrays in dataset order, on every rank: ``index (N,)``, ``image_id (N,)``, ``keypoints (N, K, 3)`` (x, y
        image pixels, score), ``box_score (N,)``, ``area (N,)`` (padded box w*h, for OKS-NMS), ``center (N, 2)``,
        ``scale (N, 2)``, plus ``seconds`` (rank 0's inference time).
    """
    bare = unwrap(model)
    was_training = bare.training
    bare.eval()
    rank, world = (torch.distributed.get_rank(), torch.distributed.get_world_size()) if D.is_distributed() else (0, 1)
    sampler = D.ShardedBatchSampler(len(dataset), batch_size, rank=rank, world_size=world, shuffle=False,
                                    drop_last=False)
    loader = DataLoader(dataset, batch_sampler=sampler, num_workers=workers, collate_fn=collate)
    shift = not codec.unbiased
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("index", "image_id", "keypoints", "box_score", "center",
                                                           "scale")}
    t0 = time.perf_counter()
    batches = loader
    if progress and rank == 0:
        from tqdm import tqdm

        batches = tqdm(loader, desc="eval", leave=False, dynamic_ncols=True)
    try:
        for batch in batches:
            images = batch["image"].to(device, non_blocking=True)
            heat = predict_heatmaps(bare, images, activation=activation, flip_index=keypoint_set.flip_index,
                                    flip_test=flip_test, shift=shift, amp=amp)
            coords, scores = codec.decode(heat)
            meta = batch["meta"]
            center = np.stack([np.asarray(m["center"], dtype=np.float64) for m in meta])
            scale = np.stack([np.asarray(m["scale"], dtype=np.float64) for m in meta])
            pts = crop_to_image(coords, center, scale, codec.input_size, udp=codec.unbiased)
            parts["keypoints"].append(np.concatenate([pts, scores[..., None]], axis=-1))
            parts["index"].append(np.array([int(m["index"]) for m in meta], dtype=np.int64))
            parts["image_id"].append(np.array([m["image_id"] for m in meta]))
            parts["box_score"].append(np.array([float(m.get("box_score", 1.0)) for m in meta], dtype=np.float64))
            parts["center"].append(center)
            parts["scale"].append(scale)
    finally:
        bare.train(was_training)
    seconds = time.perf_counter() - t0
    local = {k: np.concatenate(v) if v else None for k, v in parts.items()}
    gathered = [g for g in D.all_gather_object(local) if g["index"] is not None]
    if not gathered:
        raise ValueError("predict_dataset: the dataset is empty")
    out: dict[str, Any] = {k: np.concatenate([g[k] for g in gathered]) for k in parts}
    order = np.argsort(out["index"], kind="stable")
    out = {k: v[order] for k, v in out.items()}
    out["area"] = out["scale"][:, 0] * out["scale"][:, 1]
    out["seconds"] = seconds
    return out


def evaluate_dataset(model: torch.nn.Module, dataset: Dataset, codec: HeatmapCodec, keypoint_set: KeypointSet, *,
                     activation: str = "sigmoid", flip_test: bool = True, batch_size: int = 64, workers: int = 0,
                     device: torch.device | str = "cpu", amp: bool | torch.dtype = False, rescore: bool = True,
                     nms: str | None = "oks", nms_thr: float = 0.9, kpt_thr: float = 0.2,
                     results_path: str | os.PathLike | None = None, progress: bool = False) -> dict[str, Any]:
    """Predict a dataset and score it: COCO keypoint AP (datasets with ``.coco``), PCK, or MPII PCKh.

    COCO format: :func:`fasterpose.evaluation.make_results` (rescoring, OKS-NMS) then pycocotools' COCOeval through
    :func:`fasterpose.evaluation.evaluate_keypoints`, both with the set's OKS sigmas
    (:func:`fasterpose.evaluation.coco.oks_sigmas`); the results json is written to ``results_path`` (rank 0). A
    set without sigmas is scored with
    :data:`~fasterpose.evaluation.coco.DEFAULT_OKS_SIGMA` (``sigmas_source: "default"``) and, with ground-truth
    boxes, PCK@0.2 of the box size (:func:`fasterpose.evaluation.pck.pck`) becomes the headline.
    MPII: :func:`fasterpose.evaluation.pckh` against the dataset's ``gt_joints``/``gt_visible``/``head_sizes``.

    Returns:
        On every rank: the stats (``AP``, ``AP50``, ..., ``sigmas``, ``sigmas_source``, and ``PCK``, ``AUC``,
        ``EPE`` for sets without sigmas; or ``Head`` ... ``Mean``) plus ``metric`` (the headline name, ``"AP"``,
        ``"PCK"`` or ``"Mean"``), ``num_persons`` and ``seconds`` (inference time).
    """
    preds = predict_dataset(model, dataset, codec, keypoint_set, activation=activation, flip_test=flip_test,
                            batch_size=batch_size, workers=workers, device=device, amp=amp, progress=progress)
    stats: dict[str, Any] | None = None
    if not D.is_distributed() or torch.distributed.get_rank() == 0:
        if hasattr(dataset, "coco"):
            sigmas, default = oks_sigmas(keypoint_set)
            results = make_results(preds["image_id"], preds["keypoints"], preds["box_score"], preds["area"],
                                   rescore=rescore, nms=nms, nms_thr=nms_thr, kpt_thr=kpt_thr, sigmas=sigmas,
                                   category_id=getattr(dataset, "category_id", 1))
            if results_path is not None:
                write_results(results_path, results)
            stats = {**evaluate_keypoints(dataset.coco, results, sigmas=sigmas), "metric": "AP",
                     "sigmas": [float(s) for s in sigmas], "sigmas_source": "default" if default else "keypoint set"}
            if default and getattr(dataset, "boxes", None) == "gt":  # no meaningful sigmas: PCK is the headline
                stats.update(_pck_stats(dataset, preds, keypoint_set))
                stats["metric"] = "PCK"
        else:
            stats = {**_pckh_stats(dataset, preds), "metric": "Mean"}
        stats["num_persons"] = int(len(preds["index"]))
        stats["seconds"] = float(preds["seconds"])
    return D.broadcast_object(stats)


def _pck_stats(dataset: Any, preds: dict[str, Any], keypoint_set: KeypointSet) -> dict[str, Any]:
    """PCK@0.2 of the ground-truth box size, AUC and EPE of predictions on a dataset with ground-truth boxes."""
    from ..evaluation.pck import pck

    index = preds["index"]
    gt = np.asarray(dataset.gt_keypoints, dtype=np.float64)[index]
    out = pck(preds["keypoints"][:, :, :2], gt[:, :, :2], gt[:, :, 2] > 0, np.asarray(dataset.box_sizes)[index],
              names=keypoint_set.names)
    return {"PCK": out["PCK"], "AUC": out["AUC"], "EPE": out["EPE"], "pck_threshold": out["threshold"],
            "pck_per_keypoint": out["per_keypoint"]}


def _pckh_stats(dataset: Any, preds: dict[str, Any]) -> dict[str, Any]:
    """PCKh of MPII predictions against the dataset's ground truth (official head sizes when it has them)."""
    from ..evaluation.pckh import head_sizes_from_joints, pckh

    index = preds["index"]
    gt = np.asarray(dataset.gt_joints, dtype=np.float64)[index]
    visible = np.asarray(dataset.gt_visible)[index] > 0
    head_sizes = getattr(dataset, "head_sizes", None)
    if head_sizes is None:
        logger.warning("no official MPII head boxes (data.val_gt_mat): PCKh uses head sizes approximated from the "
                       "upper_neck-head_top segment, close to but not the official numbers")
        head_sizes = head_sizes_from_joints(gt, visible)
    else:
        head_sizes = np.asarray(head_sizes, dtype=np.float64)[index]
    ok = np.isfinite(head_sizes) & (head_sizes > 0)
    if not ok.all():
        logger.warning("PCKh: %d of %d persons have no head size and are left out", int((~ok).sum()), len(ok))
    return pckh(preds["keypoints"][ok, :, :2], gt[ok], visible[ok], head_sizes[ok])
