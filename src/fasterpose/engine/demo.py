"""``fasterpose demo``: the whole pipeline on a fresh CPU machine, with no data and no weights.

1. generate the synthetic COCO-format dataset (cached; train split seed 0, held-out val split seed 1; the
   ``easy`` difficulty preset: 1-2 large figures per image, calm poses, little clutter);
2. train a small FasterPose (shipped config ``synthetic_fasterpose_r18``: ResNet-18 from scratch, stride-16
   feature, sub-pixel head, RCE loss, 192x128 input, bfloat16 autocast where the CPU has native bf16,
   channels-last) for a fixed time budget (``--minutes``). The learning-rate schedule is defined over the
   *elapsed fraction of the budget* (linear warmup, then cosine to zero), so a short run still anneals and a
   longer one uses its time;
3. evaluate COCO keypoint AP on the val split with pycocotools (ground-truth boxes, and the simulated detector's
   boxes), flip test, rescoring and OKS-NMS as in the paper;
4. predict and draw skeletons on the real photos of ``tests/data/people`` (found next to the package in a clone);
5. report AP, AP50, parameters, GMACs, latency per crop, training time, and where everything was written.

The output folder holds the trained checkpoint (``last.pt``), usable by ``fasterpose eval/predict/export
--checkpoint``.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..io_utils import atomic_path, atomic_write_json

logger = logging.getLogger(__name__)

DEMO_CONFIG = "synthetic_fasterpose_r18"
PEOPLE_IMAGES = ("messi5.jpg", "basketball1.png", "basketball2.png", "astronaut.png")


def find_people_dir() -> Path | None:
    """``tests/data/people`` of a clone (next to ``src/``), or of the working directory; ``None`` if absent."""
    import fasterpose

    candidates = [Path(fasterpose.__file__).resolve().parents[2] / "tests" / "data" / "people",
                  Path.cwd() / "tests" / "data" / "people"]
    for c in candidates:
        if (c / "person_detections.json").is_file():
            return c
    return None


def run_demo(minutes: float = 5.0, out_dir: str | os.PathLike = "outputs/demo", threads: int | None = None,
             overrides: list[str] | None = None, device: str = "cpu") -> dict[str, Any]:
    """Run the demo and return its report (also written to ``<out_dir>/report.json``).

    Args:
        minutes: training time budget in minutes.
        out_dir: output folder (checkpoint, metrics, curves, drawn skeletons, report).
        threads: torch threads (``None``: torch's default, one per physical core).
        overrides: extra ``key=value`` config overrides.
        device: ``"cpu"`` (the point of the demo) or ``"cuda"``.
    """
    import torch

    from ..evaluation.inference import evaluate_dataset
    from ..keypoints import get_keypoint_set
    from ..models.complexity import count_gmacs, count_params
    from .config import load_config
    from .trainer import build_codec, build_dataset, synthetic_split, train

    t_start = time.perf_counter()
    out = Path(out_dir).expanduser()
    if threads:
        torch.set_num_threads(threads)
    threads = torch.get_num_threads()
    budget = max(float(minutes), 0.0) * 60.0
    cfg = load_config(DEMO_CONFIG, [
        f"train.time_budget_s={budget}", "train.epochs=100000", "train.val_every=0", f"train.threads={threads}",
        "train.checkpoint_every_iters=100", f"train.output_dir={out}", "train.plot=true",
        *(overrides or []),
    ])

    # 1. data
    t0 = time.perf_counter()
    train_info = synthetic_split(cfg, "train")
    val_info = synthetic_split(cfg, "val")
    data_seconds = time.perf_counter() - t0
    logger.info("synthetic data: %d train images (%d persons), %d val images (%d persons) in %s (%.1f s)",
                train_info["num_images"], train_info["num_persons"], val_info["num_images"], val_info["num_persons"],
                Path(train_info["root"]).parent, data_seconds)

    # 2. train for the time budget
    logger.info("training %s at %dx%d for %.1f min on %d CPU thread(s)", cfg.model.name, *cfg.data.input_size,
                budget / 60, threads)
    result = train(cfg, out=out, device=device)
    checkpoint = out / "last.pt"

    # 3. official COCO evaluation on the held-out split, GT boxes and simulated detector boxes
    from ..checkpoint import model_from_checkpoint

    model, spec = model_from_checkpoint(checkpoint)
    codec = build_codec(cfg)
    kset = get_keypoint_set(spec.keypoint_set)
    ev = cfg.eval
    evals = {}
    for boxes in ("gt", str(val_info["detections"])):
        dataset = build_dataset(cfg, "val", codec, boxes=boxes)
        evals["gt" if boxes == "gt" else "det"] = evaluate_dataset(
            model, dataset, codec, kset, activation=spec.heatmap_activation, flip_test=ev.flip_test,
            batch_size=ev.batch_size, rescore=ev.rescore, nms=None if ev.nms == "none" else ev.nms,
            nms_thr=ev.nms_thr, kpt_thr=ev.kpt_thr,
            results_path=out / ("val_results.json" if boxes == "gt" else "val_results_det.json"))
    stats = evals["gt"]

    # 4. complexity and latency of one crop
    h, w = spec.input_size
    params = count_params(model)
    gmacs = count_gmacs(model, (h, w))
    latency_ms = _latency_ms(model, (h, w))

    # 5. skeletons on real photos
    drawn, people_note = _draw_people(checkpoint, out / "people", threads)

    report = {
        "ap": stats["AP"], "ap50": stats["AP50"], "ap75": stats["AP75"], "ar": stats["AR"],
        "ap_detector_boxes": evals["det"]["AP"],
        "stats": {k: v for k, v in stats.items() if k not in ("metric", "num_persons", "seconds")},
        "model": spec.model_name, "feature_stride": model.feature_stride, "input_size": [h, w],
        "loss": cfg.loss.name, "bf16_autocast": result.cpu_bf16,
        "params_m": round(params / 1e6, 3), "gmacs": round(float(gmacs), 3),
        "latency_ms_per_crop": round(latency_ms, 2),
        "threads": threads, "minutes": minutes, "train_seconds": round(result.train_seconds, 1),
        "iterations": result.iterations, "samples_seen": result.iterations * cfg.train.batch_size,
        "final_loss": result.history[-1]["loss"] if result.history else None,
        "data_seconds": round(data_seconds, 1), "total_seconds": round(time.perf_counter() - t_start, 1),
        "synthetic_difficulty": cfg.data.synthetic.difficulty,
        "train_images": train_info["num_images"], "train_persons": train_info["num_persons"],
        "val_images": val_info["num_images"], "val_persons": val_info["num_persons"],
        "output_dir": str(out), "checkpoint": str(checkpoint), "drawn_images": [str(p) for p in drawn],
        "people_note": people_note,
    }
    atomic_write_json(out / "report.json", report, indent=2)
    return report


def _latency_ms(model: Any, input_size: tuple[int, int], repeats: int = 20) -> float:
    """Median PyTorch CPU forward time of one crop, in milliseconds."""
    import torch

    torch.set_flush_denormal(True)
    x = torch.randn(1, 3, *input_size)
    model.eval()
    times = []
    with torch.inference_mode():
        for i in range(repeats + 3):
            t0 = time.perf_counter()
            model(x)
            if i >= 3:
                times.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times))


def _draw_people(checkpoint: Path, out_dir: Path, threads: int) -> tuple[list[Path], str]:
    """Predict and draw skeletons on ``tests/data/people``; returns the written files and a note."""
    import cv2

    from .. import Predictor
    from ..data.detections import read_detections
    from ..visualize import draw_poses

    people = find_people_dir()
    if people is None:
        note = ("tests/data/people not found (the demo looks next to the package, as in a git clone, and in the "
                "working directory): skipped drawing skeletons on real photos")
        logger.warning(note)
        return [], note
    dets = read_detections(people / "person_detections.json")
    predictor = Predictor(str(checkpoint), threads=threads)
    written = []
    for image_id, name in sorted(dets.file_names.items()):
        image = cv2.imread(str(people / name), cv2.IMREAD_COLOR)
        if image is None:
            logger.warning("could not read %s; skipped", people / name)
            continue
        boxes = dets.boxes.get(image_id, np.zeros((0, 5), np.float32))
        poses = predictor(image, boxes)
        k = predictor.keypoint_set.num_keypoints
        kpts = np.stack([p["keypoints"] for p in poses]) if poses else np.zeros((0, k, 3))
        drawn = draw_poses(image, kpts, predictor.keypoint_set, kpt_thr=0.3,
                           boxes=boxes[:, :4] if len(boxes) else None)
        path = out_dir / f"{Path(name).stem}.jpg"
        with atomic_path(path) as tmp:
            if not cv2.imwrite(str(tmp), drawn):
                raise OSError(f"could not write {path}")
        written.append(path)
    note = (f"skeletons predicted on {len(written)} real photos from {people} (a model trained only on synthetic "
            "figures: expect rough poses)")
    return written, note


def format_report(report: dict[str, Any]) -> str:
    """The human-readable demo report."""
    h, w = report["input_size"]
    lines = [
        "",
        f"FasterPose demo: {report['model']} {h}x{w} (stride-{report.get('feature_stride', 32)} feature), "
        f"{report['loss'].upper()} loss, trained "
        f"{report['train_seconds']:.0f} s on {report['threads']} CPU thread(s)"
        + (" (bfloat16 autocast)" if report.get("bf16_autocast") else ""),
        "",
        f"  COCO keypoint AP (held-out synthetic val, GT boxes) : {report['ap']:.3f}   AP50 {report['ap50']:.3f}   "
        f"AP75 {report['ap75']:.3f}   AR {report['ar']:.3f}",
        f"  COCO keypoint AP (simulated detector boxes)         : {report['ap_detector_boxes']:.3f}",
        f"  model                   : {report['params_m']:.2f} M params, {report['gmacs']:.2f} GMACs, "
        f"{report['latency_ms_per_crop']:.1f} ms per crop (PyTorch CPU)",
        f"  training                : {report['iterations']} iterations, {report['samples_seen']} samples, "
        f"final loss {report['final_loss']:.4g}" if report["final_loss"] is not None else "  training: no iterations",
        f"  data                    : {report['train_images']} train / {report['val_images']} val synthetic images "
        f"({report['train_persons']} / {report['val_persons']} persons), difficulty "
        f"{report.get('synthetic_difficulty', 'default')!r}",
        f"  total time              : {report['total_seconds']:.0f} s",
        "",
        f"  outputs                 : {report['output_dir']}",
        f"    checkpoint            : {report['checkpoint']}",
    ]
    for p in report["drawn_images"]:
        lines.append(f"    skeletons             : {p}")
    if not report["drawn_images"]:
        lines.append(f"    note                  : {report['people_note']}")
    lines += [
        "",
        "  next: fasterpose eval --checkpoint " + report["checkpoint"],
        "        fasterpose predict IMAGE --checkpoint " + report["checkpoint"],
        "        fasterpose export --checkpoint " + report["checkpoint"],
    ]
    return "\n".join(lines)
