"""Training data pipeline throughput on one core: read + augment + crop + targets, in samples/s.

Runs :class:`fasterpose.data.CocoKeypoints` on the real COCO val2017 samples in ``tests/data`` (repeated over
epochs, so every pass draws new augmentations), single-threaded (``torch.set_num_threads(1)``,
``cv2.setNumThreads(1)``), and times each stage separately as well. Optionally measures the start-up time on a
generated 150k-annotation file.

    python benchmarks/bench_data.py                      # markdown table + benchmarks/results/data.json
    python benchmarks/bench_data.py --samples 2000 --large-init 0 --out /tmp/data.json
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

import cv2
import numpy as np
import torch

from fasterpose import geometry
from fasterpose.codec import HeatmapCodec
from fasterpose.cpu import cpu_info, format_cpu
from fasterpose.data import AugmentConfig, CocoKeypoints
from fasterpose.data.coco import IMREAD_FLAGS
from fasterpose.io_utils import atomic_write_json

ROOT = Path(__file__).resolve().parents[1]
COCO_ANN = ROOT / "tests" / "data" / "coco_val2017_samples" / "person_keypoints.json"


def _run(ds: CocoKeypoints, samples: int) -> tuple[float, float]:
    """``(wall, cpu)`` samples/s over ``samples`` items (epochs cycle so augmentations differ).

    The CPU-time rate (``time.process_time``, this single-threaded process only) is the per-core throughput even on
    a machine shared with other jobs; the wall-clock rate equals it on an idle core.
    """
    n = len(ds)
    ds[0]  # warm-up: first imread / allocations
    t0, c0 = time.perf_counter(), time.process_time()
    for j in range(samples):
        if j % n == 0:
            ds.set_epoch(j // n)
        ds[j % n]
    return samples / (time.perf_counter() - t0), samples / (time.process_time() - c0)


def _stages(ds: CocoKeypoints, samples: int) -> dict[str, float]:
    """Mean CPU milliseconds per sample of each stage, re-implemented step by step with the same calls."""
    n = len(ds)
    times = dict.fromkeys(("imread", "augment+warp", "encode", "normalize"), 0.0)
    for j in range(samples):
        i = j % n
        t = time.process_time()
        img = cv2.imread(str(ds.image_path(i)), IMREAD_FLAGS)
        t1 = time.process_time()
        rng = ds.sample_rng(i, epoch=j // n)
        scale = ds._scales[i] * np.float32(np.clip(1 + rng.standard_normal() * 0.35, 0.65, 1.35))
        rot = float(np.clip(rng.standard_normal() * 45, -90, 90)) if rng.random() < 0.6 else 0.0
        crop, matrix = geometry.crop_person(img, ds._centers[i], scale, ds.input_size, rot=rot, udp=ds.udp)
        xy = geometry.transform_points(ds._keypoints[i, :, :2].astype(np.float64), matrix)
        t2 = time.process_time()
        ds.codec.encode(xy, ds._keypoints[i, :, 2])
        t3 = time.process_time()
        torch.from_numpy(geometry.normalize_crop(crop))
        t4 = time.process_time()
        times["imread"] += t1 - t
        times["augment+warp"] += t2 - t1
        times["encode"] += t3 - t2
        times["normalize"] += t4 - t3
    return {k: 1000.0 * v / samples for k, v in times.items()}


def _large_init(num_annotations: int) -> dict[str, float]:
    """Init seconds of CocoKeypoints on a generated file (3 annotations per image)."""
    rng = np.random.default_rng(0)
    n_img = max(1, num_annotations // 3)
    kps = rng.integers(0, 400, size=(num_annotations, 17, 3))
    kps[:, :, 2] = rng.integers(0, 3, size=(num_annotations, 17))
    boxes = rng.integers(2, 300, size=(num_annotations, 4)).tolist()
    kps_l = kps.reshape(num_annotations, 51).tolist()
    images = [{"id": i, "file_name": f"{i:012d}.jpg", "width": 640, "height": 480} for i in range(n_img)]
    anns = [{"id": j, "image_id": j % n_img, "category_id": 1, "iscrowd": 0, "bbox": boxes[j], "keypoints": kps_l[j],
             "num_keypoints": 17} for j in range(num_annotations)]
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "person_keypoints_big.json"
        p.write_text(json.dumps({"images": images, "annotations": anns, "categories": [{"id": 1, "name": "person"}]}))
        size_mb = p.stat().st_size / 1e6
        del anns, kps_l, images
        t0 = time.perf_counter()
        ds = CocoKeypoints(p, train=True)
        seconds = time.perf_counter() - t0
    return {"annotations": num_annotations, "images": n_img, "json_mb": round(size_mb, 1), "samples": len(ds),
            "init_seconds": round(seconds, 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1200, help="samples timed per configuration")
    parser.add_argument("--input-size", default="256x192", help="HxW model input")
    parser.add_argument("--large-init", type=int, default=150_000,
                        help="also time init on a generated file with this many annotations (0: skip)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "data.json"))
    args = parser.parse_args(argv)
    h, w = (int(v) for v in args.input_size.lower().split("x"))
    torch.set_num_threads(1)
    cv2.setNumThreads(1)

    configs = {
        "train, classic (SimpleBaseline augment)": dict(train=True, codec=HeatmapCodec((h, w))),
        "train, UDP": dict(train=True, codec=HeatmapCodec((h, w), unbiased=True)),
        "train, + colour jitter": dict(train=True, codec=HeatmapCodec((h, w)),
                                       augment=AugmentConfig(color_jitter=True)),
        "eval (GT boxes, no augment)": dict(train=False, codec=HeatmapCodec((h, w))),
    }
    rows = []
    for name, kw in configs.items():
        ds = CocoKeypoints(COCO_ANN, input_size=(h, w), **kw)
        wall, cpu = _run(ds, args.samples)
        rows.append({"config": name, "samples_per_s_cpu": round(cpu, 1), "samples_per_s_wall": round(wall, 1)})
    stages = _stages(CocoKeypoints(COCO_ANN, input_size=(h, w), train=True), min(args.samples, 600))

    print(f"## Data pipeline, one core, {h}x{w}, COCO val2017 samples ({len(ds)} persons, repeated)\n")
    print("| configuration | samples/s/core (CPU time) | samples/s (wall clock) |\n|---|---:|---:|")
    for r in rows:
        print(f"| {r['config']} | {r['samples_per_s_cpu']:.1f} | {r['samples_per_s_wall']:.1f} |")
    print("\n| stage (train, classic) | CPU ms/sample |\n|---|---:|")
    for k, v in stages.items():
        print(f"| {k} | {v:.3f} |")
    result = {
        "benchmark": "data_pipeline",
        "input_size": [h, w],
        "threads": 1,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "samples": args.samples,
        "dataset": str(COCO_ANN.relative_to(ROOT)),
        "results": rows,
        "stages_ms": {k: round(v, 4) for k, v in stages.items()},
        "cpu": cpu_info(), "cpu_label": format_cpu(),
        "machine": {"python": sys.version.split()[0], "platform": platform.platform(), "torch": torch.__version__,
                    "opencv": cv2.__version__, "numpy": np.__version__},
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if args.large_init > 0:
        result["large_init"] = _large_init(args.large_init)
        li = result["large_init"]
        print(f"\nInit with {li['annotations']} annotations over {li['images']} images ({li['json_mb']} MB json): "
              f"{li['init_seconds']:.2f} s")
    atomic_write_json(args.out, result, indent=2)
    print(f"CPU: {format_cpu()}")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
