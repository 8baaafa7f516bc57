"""``fasterpose demo``: the whole pipeline on a fresh CPU machine (or a GPU one), with no data and no weights.

1. generate the synthetic COCO-format dataset (cached; train split seed 0, held-out val split seed 1; the
   ``easy`` difficulty preset: 1-2 large figures per image, calm poses, little clutter);
2. train a small FasterPose (shipped config ``synthetic_fasterpose_r18`` with :data:`RECIPES`' overrides:
   ResNet-18 cut after layer3 from scratch, stride-16 feature, sub-pixel head, RCE loss, 192x128 input, bfloat16
   autocast where the CPU has native bf16, channels-last) for a fixed time budget (``--minutes``). The
   learning-rate schedule is defined over the *elapsed fraction of the budget* (linear warmup, then cosine to
   zero), so a short run still anneals and a longer one uses its time;
3. evaluate COCO keypoint AP on the val split with pycocotools (ground-truth boxes, and the simulated detector's
   boxes), flip test, rescoring and OKS-NMS as in the paper;
4. draw the model's poses beside the ground truth on held-out val images (``val_predictions.jpg``), and predict the
   real photos of ``tests/data/people`` (found next to the package in a clone), marked as outside the training
   domain;
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

from ..io_utils import atomic_path, atomic_write_json, check_writable_folder

logger = logging.getLogger(__name__)

DEMO_CONFIG = "synthetic_fasterpose_r18"
PEOPLE_IMAGES = ("messi5.jpg", "basketball1.png", "basketball2.png", "astronaut.png")
OUT_OF_DOMAIN = "outside the training domain: this model has seen only synthetic figures"

# The demo's recipes: config overrides on top of DEMO_CONFIG, chosen by what the CPU can do (``--recipe``). Both
# train fasterpose_r18_l3 (ResNet-18 cut after layer3: half the MACs of DEMO_CONFIG's stride-16 ResNet-18, about
# twice the updates in 5 minutes) with milder augmentation (no rotation, scale jitter 0.15): at the ~370 updates an
# AVX2-only 2-core CPU makes in 5 minutes that took AP from 0.669 to 0.722; 0.824 with 907 updates on an AVX-512 CPU
# (docs/results.md, "The demo's recipe on CPUs without bf16"). They differ in precision only:
# "bf16": CPUs with native bfloat16 (AVX512-BF16 / AMX): bf16 autocast, about 1.5x the updates of fp32;
# "fp32": every other CPU (AVX2-only, AVX-512 without BF16, ARM), where bf16 is emulated and 4x slower than fp32.
_DEMO_MODEL = ["model.name=fasterpose_r18_l3", "data.augment.rotation_prob=0.0", "data.augment.scale_factor=0.15"]
# "cuda": the same model on a GPU, whose precision follows the GPU (bf16 autocast where it computes bfloat16, else fp16
# with a GradScaler: fasterpose.engine.precision); the CPU recipes do not apply there.
RECIPES: dict[str, list[str]] = {
    "bf16": [*_DEMO_MODEL, "train.cpu_amp=bf16"],
    "fp32": [*_DEMO_MODEL, "train.cpu_amp=off"],
    "cuda": [*_DEMO_MODEL, "train.amp=true", "train.cpu_amp=off"],
}


def choose_device(device: str | None = None) -> str:
    """``"cuda"`` or ``"cpu"``: the one asked for (``None``: CUDA where torch sees a GPU, else the CPU)."""
    import torch

    from ..errors import ConfigError

    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cuda", "cpu"):
        raise ConfigError(f"--device must be cuda or cpu, got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device cuda: torch {torch.__version__} sees no CUDA GPU (built for CUDA "
                          f"{torch.version.cuda or 'none: a CPU-only build'}); run with --device cpu, or install a "
                          "CUDA build of torch on a machine with an NVIDIA GPU")
    return device


def choose_recipe(recipe: str = "auto", device: str = "cpu") -> tuple[str, str]:
    """``(recipe name, reason)``: on a CPU ``"bf16"`` where it executes bfloat16 natively, else ``"fp32"``; on a GPU
    ``"cuda"``."""
    from ..cpu import cpu_class, native_bf16
    from ..errors import ConfigError

    if device == "cuda":
        if recipe not in ("auto", "cuda"):
            raise ConfigError(f"--recipe {recipe} is a CPU recipe; with --device cuda the precision follows the GPU "
                              "(bf16 autocast where it computes bfloat16, else fp16): leave --recipe out")
        import torch

        return "cuda", f"GPU {torch.cuda.get_device_name()}"
    if recipe != "auto":
        if recipe not in RECIPES or recipe == "cuda":
            raise ConfigError(f"--recipe must be auto, bf16 or fp32 on a CPU; got {recipe!r}")
        return recipe, "chosen with --recipe"
    if native_bf16():
        return "bf16", f"this CPU has native bfloat16 ({cpu_class()})"
    return "fp32", f"this CPU has no native bfloat16 ({cpu_class()})"


def find_people_dir() -> Path | None:
    """``tests/data/people`` of a clone (next to ``src/``), or of the working directory; ``None`` if absent."""
    import fasterpose

    candidates = [Path(fasterpose.__file__).resolve().parents[2] / "tests" / "data" / "people",
                  Path.cwd() / "tests" / "data" / "people"]
    for c in candidates:
        if (c / "person_detections.json").is_file():
            return c
    return None


# The demo trains with this epoch count (the time budget ends it); a run folder whose config has it is a demo's.
_DEMO_EPOCHS = 100000


def _check_not_another_run(out: Path) -> None:
    """A demo replaces the previous demo in its folder, but never a training run of the user's (``--out runs/x``)."""
    from ..errors import FasterPoseError
    from ..io_utils import MAX_CONFIG_BYTES, check_input_file, load_yaml

    if not any((out / n).exists() for n in ("last.pt", "best.pt")) or (out / "report.json").is_file():
        return
    try:
        config = load_yaml(check_input_file(out / "config.yaml", "run config", MAX_CONFIG_BYTES).read_text(
            encoding="utf-8"), f"{out / 'config.yaml'}")
        demo = config["name"] == DEMO_CONFIG and config["train"]["epochs"] == _DEMO_EPOCHS
    except (OSError, ValueError, TypeError, KeyError, FasterPoseError):
        demo = False
    if not demo:
        from ..errors import ConfigError

        raise ConfigError(f"--out {out} holds a training run (last.pt/best.pt) that is not a demo; the demo would "
                          "replace it. Give the demo another --out folder")


def run_demo(minutes: float = 5.0, out_dir: str | os.PathLike = "outputs/demo", threads: int | None = None,
             overrides: list[str] | None = None, device: str | None = None, recipe: str = "auto") -> dict[str, Any]:
    """Run the demo and return its report (also written to ``<out_dir>/report.json``).

    Args:
        minutes: training time budget in minutes.
        out_dir: output folder (checkpoint, metrics, curves, drawn skeletons, report).
        threads: torch threads (``None``: torch's default, one per physical core).
        overrides: extra ``key=value`` config overrides.
        device: ``"cpu"`` (the point of the demo), ``"cuda"``, or ``None``: CUDA where torch sees a GPU.
        recipe: ``"auto"`` (by the CPU or GPU, :func:`choose_recipe`), or a CPU recipe of :data:`RECIPES`.
    """
    import torch

    from ..cpu import cpu_info, format_cpu
    from ..models.complexity import count_gmacs, count_params
    from .config import load_config
    from .inference import evaluate_dataset
    from .trainer import build_codec, build_dataset, synthetic_split, train

    t_start = time.perf_counter()
    out = Path(out_dir).expanduser()
    check_writable_folder(out, f"--out {out}")  # before minutes of training, not after them
    _check_not_another_run(out)
    if threads:
        torch.set_num_threads(threads)
    threads = torch.get_num_threads()
    budget = max(float(minutes), 0.0) * 60.0
    device = choose_device(device)
    recipe, recipe_reason = choose_recipe(recipe, device)
    logger.info("CPU: %s; device %s; recipe %r (%s)", format_cpu(), device, recipe, recipe_reason)
    cfg = load_config(DEMO_CONFIG, [
        f"train.time_budget_s={budget}", f"train.epochs={_DEMO_EPOCHS}", "train.val_every=0",
        f"train.threads={threads}", "train.checkpoint_every_iters=100", f"train.output_dir={out}", "train.plot=true",
        *RECIPES[recipe], *(overrides or []),
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
    device_label = f"{threads} CPU thread(s)" if device == "cpu" else torch.cuda.get_device_name()
    logger.info("training %s at %dx%d for %.1f min on %s", cfg.model.name, *cfg.data.input_size, budget / 60,
                device_label)
    result = train(cfg, out=out, device=device)
    checkpoint = out / "last.pt"

    # 3. official COCO evaluation on the held-out split, GT boxes and simulated detector boxes
    from ..models import model_from_checkpoint

    model, spec = model_from_checkpoint(checkpoint)
    codec = build_codec(cfg)
    kset = spec.keypoint_set
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

    # 5. what the model learned: held-out val images, prediction beside the ground truth; then real photos, marked
    #    as outside the training domain
    val_picture = _draw_val_predictions(val_info, out / "val_results.json", kset, out / "val_predictions.jpg")
    drawn, people_note = _draw_people(checkpoint, out / "people", threads)

    report = {
        "ap": stats["AP"], "ap50": stats["AP50"], "ap75": stats["AP75"], "ar": stats["AR"],
        "ap_detector_boxes": evals["det"]["AP"],
        "stats": {k: v for k, v in stats.items() if k not in ("metric", "num_persons", "seconds")},
        "model": spec.model_name, "feature_stride": model.feature_stride, "input_size": [h, w],
        "loss": cfg.loss.name, "bf16_autocast": result.cpu_bf16, "device": result.device,
        "device_label": device_label, "precision": result.precision, "precision_reason": result.precision_reason,
        "recipe": recipe, "recipe_reason": recipe_reason, "cpu": cpu_info(), "cpu_label": format_cpu(),
        "params_m": round(params / 1e6, 3), "gmacs": round(float(gmacs), 3),
        "latency_ms_per_crop": round(latency_ms, 2),
        "threads": threads, "minutes": minutes, "train_seconds": round(result.train_seconds, 1),
        "iterations": result.iterations, "samples_seen": result.iterations * cfg.train.batch_size,
        "final_loss": result.history[-1]["loss"] if result.history else None,
        "data_seconds": round(data_seconds, 1), "total_seconds": round(time.perf_counter() - t_start, 1),
        "synthetic_difficulty": cfg.data.synthetic.difficulty,
        "train_images": train_info["num_images"], "train_persons": train_info["num_persons"],
        "val_images": val_info["num_images"], "val_persons": val_info["num_persons"],
        "val_annotations": str(val_info["annotations"]), "val_picture": str(val_picture),
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


def _draw_val_predictions(val_info: dict[str, Any], results_path: Path, kset: Any, path: Path,
                          num_images: int = 8, score_thr: float = 0.3) -> Path:
    """A grid of held-out val images: the model's poses (left) beside the ground truth (right), written to ``path``.

    Predictions are the evaluated results (GT boxes, flip test), persons with a score of at least ``score_thr``;
    keypoints are drawn above 0.3, the ground truth where labelled.
    """
    import json

    import cv2

    from ..visualize import draw_poses

    gt = json.loads(Path(val_info["annotations"]).read_text())
    results = json.loads(results_path.read_text())
    k = kset.num_keypoints
    tiles = []
    for img in gt["images"][:num_images]:
        image = cv2.imread(str(Path(val_info["images"]) / img["file_name"]), cv2.IMREAD_COLOR)
        if image is None:
            continue
        pred = [np.asarray(r["keypoints"], np.float64).reshape(k, 3) for r in results
                if r["image_id"] == img["id"] and r["score"] >= score_thr]
        true = [np.asarray(a["keypoints"], np.float64).reshape(k, 3) for a in gt["annotations"]
                if a["image_id"] == img["id"] and a.get("num_keypoints", 0) > 0]
        true = [np.concatenate([t[:, :2], (t[:, 2:] > 0).astype(np.float64)], 1) for t in true]
        pair = []
        for label, poses in (("prediction", pred), ("ground truth", true)):
            tile = draw_poses(image, np.stack(poses) if poses else np.zeros((0, k, 3)), kset, kpt_thr=0.3)
            cv2.rectangle(tile, (0, 0), (tile.shape[1], 18), (0, 0, 0), -1)
            cv2.putText(tile, label, (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
            pair.append(tile)
        tiles.append(np.concatenate(pair, axis=1))
    if not tiles:
        raise OSError(f"could not read the val images in {val_info['images']}")
    cols = 2
    while len(tiles) % cols:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [np.concatenate(tiles[i:i + cols], axis=1) for i in range(0, len(tiles), cols)]
    grid = np.concatenate(rows, axis=0)
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), grid):
            raise OSError(f"could not write {path}")
    return path


def _mark_out_of_domain(image: np.ndarray) -> np.ndarray:
    """A banner across the top of a drawn real photo saying that it lies outside the training domain."""
    import cv2

    font = cv2.FONT_HERSHEY_SIMPLEX
    (text_w, text_h), _ = cv2.getTextSize(OUT_OF_DOMAIN, font, 1.0, 1)
    scale = min(0.9, 0.96 * image.shape[1] / text_w)  # the whole sentence fits the width
    thick = max(1, int(round(scale * 1.5)))
    height = int(text_h * scale) + 10
    cv2.rectangle(image, (0, 0), (image.shape[1], height), (0, 0, 160), -1)
    cv2.putText(image, OUT_OF_DOMAIN, (6, height - 5), font, scale, (255, 255, 255), thick, cv2.LINE_AA)
    return image


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
        drawn = _mark_out_of_domain(draw_poses(image, kpts, predictor.keypoint_set, kpt_thr=0.3,
                                               boxes=boxes[:, :4] if len(boxes) else None))
        path = out_dir / f"{Path(name).stem}.jpg"
        with atomic_path(path) as tmp:
            if not cv2.imwrite(str(tmp), drawn):
                raise OSError(f"could not write {path}")
        written.append(path)
    note = (f"skeletons on {len(written)} real photos from {people}: {OUT_OF_DOMAIN} (expect missing and wrong "
            "limbs; the val picture shows what it learned)")
    return written, note


def _precision_words(precision: str) -> str:
    return {"bf16": "bfloat16 autocast", "fp16": "float16 autocast with loss scaling"}.get(precision, "fp32")


def format_report(report: dict[str, Any]) -> str:
    """The human-readable demo report."""
    h, w = report["input_size"]
    lines = [
        "",
        f"FasterPose demo: {report['model']} {h}x{w} (stride-{report.get('feature_stride', 32)} feature), "
        f"{report['loss'].upper()} loss, trained "
        f"{report['train_seconds']:.0f} s on {report.get('device_label', str(report['threads']) + ' CPU thread(s)')}"
        + f" ({_precision_words(report.get('precision', 'bf16' if report.get('bf16_autocast') else 'fp32'))})",
        f"  CPU                     : {report.get('cpu_label', '?')}",
        f"  recipe                  : {report.get('recipe', '?')!r} ({report.get('recipe_reason', '')})",
        f"  precision               : {report.get('precision', '?')} ({report.get('precision_reason', '')})",
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
    if report.get("val_picture"):
        lines.append(f"    val predictions       : {report['val_picture']} (prediction beside ground truth, "
                     "held-out synthetic val)")
    for p in report["drawn_images"]:
        lines.append(f"    real photos           : {p}")
    lines.append(f"    note                  : {report['people_note']}")
    lines += [
        "",
        "  next: fasterpose eval --checkpoint " + report["checkpoint"],
        "        fasterpose predict IMAGE --checkpoint " + report["checkpoint"],
        "        fasterpose export --checkpoint " + report["checkpoint"],
    ]
    return "\n".join(lines)
