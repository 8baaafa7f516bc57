"""Benchmark of the COCO evaluation path: OKS-NMS (hard and soft) and pycocotools COCOeval on ~10k results.

The ground truth is the real COCO val2017 sample of ``tests/data`` (4 images, 14 persons, 12 with keypoints)
replicated ``--copies`` times under new image ids (500 copies = 2000 images, 6000 labelled persons). The results
are noisy versions of every labelled person plus near-duplicates (what a detector + pose model produce before
NMS) and some false positives, ``--num-results`` in all.

    python benchmarks/bench_eval.py --out benchmarks/results/eval.json

Prints a markdown table and writes the numbers as JSON (atomically).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pycocotools

from fasterpose.cpu import cpu_info, format_cpu
from fasterpose.evaluation import evaluate_keypoints, load_coco, make_results
from fasterpose.io_utils import atomic_write_json

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "tests" / "data" / "coco_val2017_samples" / "person_keypoints.json"


def build_annotations(copies: int) -> dict:
    """The real sample replicated ``copies`` times with fresh image / annotation ids."""
    base = json.loads(SAMPLE.read_text())
    images, anns = [], []
    for c in range(copies):
        id_map = {}
        for img in base["images"]:
            new_id = c * 1_000_000 + img["id"]
            id_map[img["id"]] = new_id
            images.append({**img, "id": new_id})
        for a in base["annotations"]:
            anns.append({**a, "id": len(anns) + 1, "image_id": id_map[a["image_id"]]})
    return {**base, "images": images, "annotations": anns}


def build_predictions(gt: dict, num_results: int, seed: int) -> tuple[np.ndarray, ...]:
    """``num_results`` poses: one noisy copy of every labelled person, then near-duplicates and false positives."""
    rng = np.random.default_rng(seed)
    persons = [a for a in gt["annotations"] if a["num_keypoints"] > 0]
    kp = np.array([a["keypoints"] for a in persons], dtype=np.float64).reshape(len(persons), -1, 3)
    boxes = np.array([a["bbox"] for a in persons], dtype=np.float64)
    image_ids = np.array([a["image_id"] for a in persons])
    # fill the unlabelled keypoints with the labelled ones' centre (a model always predicts something)
    labelled = kp[:, :, 2] > 0
    centre = (kp[:, :, :2] * labelled[..., None]).sum(1) / labelled.sum(1)[:, None]
    kp[:, :, :2] = np.where(labelled[..., None], kp[:, :, :2], centre[:, None, :])
    src = np.concatenate([np.arange(len(persons)), rng.integers(0, len(persons), max(0, num_results - len(persons)))])
    src = src[:num_results]
    extra = np.arange(len(src)) >= len(persons)
    size = np.sqrt(boxes[src, 2] * boxes[src, 3])[:, None, None]
    noise = rng.normal(0.0, 1.0, (len(src), kp.shape[1], 2)) * size * np.where(extra, 0.03, 0.02)[:, None, None]
    fp = extra & (rng.random(len(src)) < 0.25)  # false positives: shifted by a person width
    noise[fp] += (boxes[src[fp], 2])[:, None, None] * np.array([1.0, 0.0])
    poses = np.concatenate([kp[src, :, :2] + noise, rng.uniform(0.05, 1.0, (len(src), kp.shape[1], 1))], axis=2)
    box_scores = np.where(extra, rng.uniform(0.3, 0.8, len(src)), rng.uniform(0.7, 1.0, len(src)))
    areas = boxes[src, 2] * boxes[src, 3] * 1.25**2  # the padded box, as HRNet
    return image_ids[src], poses, box_scores, areas


def best_of(repeat: int, fn) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=500, help="replicas of the 4 sample images (default 500)")
    parser.add_argument("--num-results", type=int, default=10_000, help="poses before NMS (default 10000)")
    parser.add_argument("--repeat", type=int, default=3, help="best of N runs (default 3)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="write the numbers as JSON here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    gt = build_annotations(args.copies)
    image_ids, poses, box_scores, areas = build_predictions(gt, args.num_results, args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        ann_path = Path(tmp) / "person_keypoints.json"
        ann_path.write_text(json.dumps(gt))
        t_load, coco = best_of(1, lambda: load_coco(ann_path))

    def results(nms):
        return make_results(image_ids, poses, box_scores, areas, rescore=True, nms=nms)

    t_none, res_none = best_of(args.repeat, lambda: results(None))
    t_oks, res_oks = best_of(args.repeat, lambda: results("oks"))
    t_soft, res_soft = best_of(args.repeat, lambda: results("soft"))
    t_eval, stats = best_of(args.repeat, lambda: evaluate_keypoints(coco, res_oks))
    t_eval_all, stats_all = best_of(1, lambda: evaluate_keypoints(coco, res_none))

    rows = [
        ("load_coco (validate + index)", len(gt["annotations"]), t_load, ""),
        ("make_results, rescore only", len(res_none), t_none, ""),
        ("OKS-NMS 0.9 per image (make_results - rescore only)", len(res_oks), t_oks - t_none,
         f"{len(poses)} -> {len(res_oks)} poses"),
        ("soft OKS-NMS 0.9 per image", len(res_soft), t_soft - t_none, f"{len(poses)} -> {len(res_soft)} poses"),
        ("COCOeval on OKS-NMS results", len(res_oks), t_eval, f"AP {stats['AP']:.3f}"),
        ("COCOeval on all results (no NMS)", len(res_none), t_eval_all, f"AP {stats_all['AP']:.3f}"),
    ]
    lines = ["| step | n | time (s) | note |", "|---|---:|---:|---|"]
    lines += [f"| {name} | {n} | {t:.3f} | {note} |" for name, n, t, note in rows]
    print(f"{len(gt['images'])} images, {len(gt['annotations'])} GT annotations, {len(poses)} poses; "
          f"best of {args.repeat}\n")
    print("\n".join(lines))
    if args.out is not None:
        atomic_write_json(args.out, {
            "images": len(gt["images"]),
            "gt_annotations": len(gt["annotations"]),
            "poses": len(poses),
            "repeat": args.repeat,
            "steps": [{"step": name, "n": n, "seconds": round(t, 4), "note": note} for name, n, t, note in rows],
            "stats_oks_nms": stats,
            "stats_no_nms": stats_all,
            "cpu": cpu_info(), "cpu_label": format_cpu(),
            "env": {"python": platform.python_version(), "numpy": np.__version__,
                    "pycocotools": getattr(pycocotools, "__version__", "unknown"), "cpus": os.cpu_count(),
                    "machine": platform.machine()},
        }, indent=2)
        print(f"CPU: {format_cpu()}")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
