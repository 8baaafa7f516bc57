"""Distillation on the synthetic data: a SimpleBaseline teacher, a FasterPose student, no labels for the student.

1. teacher: ``simplebaseline_r18`` trained with labels on the synthetic ``easy`` train split (the demo's data, 400
   images) for a fixed number of epochs (the demo's milder augmentation, MSE loss, Adam 2e-3 cosine, batch 16);
2. student: ``fasterpose_r18`` (same ResNet-18 trunk, same stride) distilled with ``fasterpose distill`` on a separate,
   unlabeled synthetic split (its images and simulated detector boxes only; its keypoints are never read), starting
   from the teacher's backbone (phase 1: frozen backbone, cached features, sub-pixel head only), one run per seed;
3. both evaluated on the held-out val split (100 images, ground-truth boxes, flip test) with pycocotools;
4. latency of both (onnxruntime fp32, one thread, batch 1, median) and the distillation's wall and CPU time.

Same backbone weights, same features: only the head differs, so student vs teacher AP is also a direct test of the
paper's claim that heatmaps predicted from the low-resolution feature by a sub-pixel head lose no accuracy against
deconvolution upsampling (docs/results.md).

    python benchmarks/bench_distill.py                                  # table + benchmarks/results/distill.json
    python benchmarks/bench_distill.py --seeds 0 --teacher-epochs 10 --out /tmp/distill.json   # quick look

Timings are only meaningful on an otherwise idle machine (the JSON records the CPU).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent


def _eval(checkpoint: Path, cfg, val_boxes: str = "gt") -> dict:
    from fasterpose.codec import HeatmapCodec
    from fasterpose.engine.inference import evaluate_dataset
    from fasterpose.engine.trainer import build_dataset
    from fasterpose.models import model_from_checkpoint

    model, spec = model_from_checkpoint(checkpoint)
    codec = HeatmapCodec(**spec.codec)
    dataset = build_dataset(cfg, "val", codec, boxes=val_boxes, keypoint_set=spec.keypoint_set)
    dataset.channel_order = spec.channel_order
    stats = evaluate_dataset(model, dataset, codec, spec.keypoint_set,
                             activation=spec.heatmap_activation, flip_test=True, batch_size=32, rescore=True,
                             nms="oks", nms_thr=0.9, kpt_thr=0.2)
    return {k: round(float(v), 4) for k, v in stats.items() if k in ("AP", "AP50", "AP75", "AR")}


def _latency(models: list[str], input_size: tuple[int, int]) -> dict[str, float]:
    from fasterpose.deploy.bench import run_benchmark

    rows = run_benchmark(models, input_size=input_size, threads=1, backends=("onnxruntime",), repeats=50, warmup=10)
    return {r["model"]: round(float(r["median_ms"]), 3) for r in rows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--teacher-epochs", type=int, default=40, help="teacher epochs of 25 updates (default 40)")
    parser.add_argument("--epochs", type=int, default=20, help="distillation phase-1 epochs (default 20)")
    parser.add_argument("--finetune-epochs", type=int, default=0, help="distillation phase-2 epochs (default 0)")
    parser.add_argument("--unlabeled-images", type=int, default=1000, help="unlabeled synthetic images (default 1000)")
    parser.add_argument("--seeds", default="0,1,2", help="student seeds (default 0,1,2)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads for training (default 2)")
    parser.add_argument("--work", default=None, help="folder for the runs (default: a temporary folder)")
    parser.add_argument("--out", default=str(ROOT / "results" / "distill.json"), help="JSON output")
    args = parser.parse_args()

    import torch

    from fasterpose.cpu import cpu_info, format_cpu
    from fasterpose.data.synthetic import SynthConfig, ensure_synthetic_dataset
    from fasterpose.engine.config import load_config
    from fasterpose.engine.distill import DistillSettings, distill
    from fasterpose.engine.trainer import synthetic_split, train
    from fasterpose.io_utils import atomic_write_json, check_writable

    check_writable(args.out, "--out")
    torch.set_num_threads(args.threads)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="fasterpose_distill_"))
    seeds = [int(s) for s in args.seeds.split(",")]

    # 1. teacher, with labels
    cfg = load_config("synthetic_fasterpose_r18", [
        "model.name=simplebaseline_r18", "model.kwargs={}", "loss.name=mse", "data.augment.rotation_prob=0.0",
        "data.augment.scale_factor=0.15", f"train.epochs={args.teacher_epochs}", "train.val_every=0",
        "train.cpu_amp=off", f"train.threads={args.threads}", "train.plot=false", "train.progress=never",
        f"train.output_dir={work / 'teacher'}"])
    teacher_ckpt = work / "teacher" / "last.pt"
    t0 = time.perf_counter()
    if not teacher_ckpt.is_file():
        train(cfg, out=work / "teacher", device="cpu")
    teacher_seconds = time.perf_counter() - t0
    teacher_eval = _eval(teacher_ckpt, cfg)
    print(f"teacher simplebaseline_r18: AP {teacher_eval['AP']:.4f} ({teacher_seconds:.0f} s)", flush=True)

    # 2. unlabeled split: images and simulated detector boxes only (a detection file that names the images)
    s = cfg.data.synthetic
    unlabeled = ensure_synthetic_dataset(s.cache_dir, "train", num_images=args.unlabeled_images, seed=2,
                                         size=tuple(s.image_size), config=SynthConfig.preset(s.difficulty))
    images = json.loads(Path(unlabeled["annotations"]).read_text())["images"]
    boxes = work / "unlabeled_boxes.json"
    boxes.write_text(json.dumps({"images": [{"id": i["id"], "file_name": i["file_name"]} for i in images],
                                 "detections": json.loads(Path(unlabeled["detections"]).read_text())}))
    synthetic_split(cfg, "val")

    # 3. students
    students = []
    for seed in seeds:
        out = work / f"student_seed{seed}"
        report = distill(teacher_ckpt, [str(unlabeled["images"])], out,
                         DistillSettings(student="fasterpose_r18", epochs=args.epochs,
                                         finetune_epochs=args.finetune_epochs, seed=seed, threads=args.threads),
                         boxes=boxes, det_thr=0.3)
        ev = _eval(out / "student.pt", cfg)
        students.append({"seed": seed, **ev, "distill_seconds": report["seconds"],
                         "distill_cpu_seconds": report["cpu_seconds"], "crops": report["crops"],
                         "teacher_label_seconds": report["teacher_seconds"], "final_loss": report["final_loss"],
                         "backbone_from": report["backbone_from"]})
        print(f"student seed {seed}: AP {ev['AP']:.4f}, distillation {report['seconds']:.0f} s "
              f"({report['cpu_seconds']:.0f} s CPU)", flush=True)

    # 4. latency, onnxruntime fp32, one thread
    latency = _latency(["simplebaseline_r18", "fasterpose_r18"], tuple(cfg.data.input_size))
    aps = [r["AP"] for r in students]
    mean = sum(aps) / len(aps)
    spread = (max(aps) - min(aps)) if len(aps) > 1 else 0.0
    result = {
        "teacher": {"model": "simplebaseline_r18", **teacher_eval, "train_seconds": round(teacher_seconds, 1),
                    "epochs": args.teacher_epochs, "latency_ms": latency["simplebaseline_r18"]},
        "students": students, "student_ap_mean": round(mean, 4), "student_ap_spread": round(spread, 4),
        "student_latency_ms": latency["fasterpose_r18"],
        "latency_ratio": round(latency["fasterpose_r18"] / latency["simplebaseline_r18"], 3),
        "ap_gap_mean": round(mean - teacher_eval["AP"], 4),
        "input_size": list(cfg.data.input_size), "epochs": args.epochs, "finetune_epochs": args.finetune_epochs,
        "unlabeled_images": args.unlabeled_images, "threads": args.threads, "cpu": cpu_info(),
        "cpu_label": format_cpu(), "python": sys.version.split()[0], "torch": torch.__version__,
        "platform": platform.platform(), "work": str(work), "command": " ".join(sys.argv),
        "nproc": os.cpu_count(),
    }
    atomic_write_json(args.out, result, indent=2)
    print(f"\n| model | AP (val, GT boxes) | onnxruntime fp32 ms (1 thread) | distillation |\n|---|---|---|---|\n"
          f"| teacher simplebaseline_r18 | {teacher_eval['AP']:.3f} | {latency['simplebaseline_r18']:.2f} | "
          f"(trained with labels, {teacher_seconds:.0f} s) |")
    for r in students:
        print(f"| student fasterpose_r18, seed {r['seed']} | {r['AP']:.3f} | {latency['fasterpose_r18']:.2f} | "
              f"{r['distill_seconds']:.0f} s wall, {r['distill_cpu_seconds']:.0f} s CPU, {r['crops']} crops |")
    print(f"\nstudent - teacher AP: {result['ap_gap_mean']:+.4f} (mean of {len(aps)} seeds, spread {spread:.4f}); "
          f"latency ratio {result['latency_ratio']:.2f}; {format_cpu()}\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
