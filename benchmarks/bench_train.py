"""Training throughput, model-only and end to end side by side, on the CPU or a CUDA GPU (and CPU peak memory).

Both columns run the training loop's own step (:func:`fasterpose.engine.state.train_step`: forward under the
precision training chooses, loss (RCE for FasterPose, MSE for SimpleBaseline), backward, Adam step):

- model-only: random input and target tensors already on the device; nothing else limits the step.
- end to end: the same step fed by the training DataLoader (:func:`fasterpose.engine.trainer.build_train_loader`:
  workers that persist across epochs, pinned memory on CUDA) over a synthetic COCO-format training set made by the
  synthetic writer (``--images`` images: several hundred iterations an epoch at the default batch), with the training
  augmentation, the crop and the heatmap targets. Where it is well below model-only, the data pipeline is what limits
  training: raise ``--workers``.

Precision is what training picks (:mod:`fasterpose.engine.precision`): bf16 autocast on GPUs that compute bfloat16,
fp16 with a GradScaler on other GPUs, fp32 on the CPU unless ``--cpu-amp``. Each model runs in its own subprocess, so
``ru_maxrss`` after the model-only steps is that model's peak training memory (``training_rss_mb``: what training adds
to the built model); on CUDA it says little, and the GPU's peak memory is reported instead.

    python benchmarks/bench_train.py                       # CPU, FasterPose-R50 vs SimpleBaseline-R50, batch 32
    python benchmarks/bench_train.py --device cuda --batch 64 --workers 8 --images 12000 --iters 100
    python benchmarks/bench_train.py --iters 2 --warmup 1 --batch 4 --size 64x64 --images 24 --models fasterpose_r18 \
        --workers 1 --out /tmp/train.json                  # a few seconds: checks that it runs
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
MODELS = ("fasterpose_r50", "simplebaseline_r50")


def _data_config(images: int, image_size: int, size: tuple[int, int], cache: str | None) -> list[str]:
    """Overrides of ``synthetic_fasterpose_r18``: only its data section is used (the synthetic set and pipeline)."""
    return [f"data.synthetic.train_images={images}", f"data.synthetic.image_size=[{image_size},{image_size}]",
            f"data.input_size=[{size[0]},{size[1]}]", "data.synthetic.difficulty=default",
            *([f"data.synthetic.cache_dir={cache}"] if cache else [])]


def worker(model_name: str, args: argparse.Namespace, size: tuple[int, int]) -> dict:
    """Measure one model in this process; returns a JSON-friendly dict."""
    import torch

    from fasterpose.engine import distributed as D
    from fasterpose.engine.config import load_config
    from fasterpose.engine.precision import choose_precision
    from fasterpose.engine.state import TrainState, train_step
    from fasterpose.engine.trainer import build_dataset, build_train_loader
    from fasterpose.losses import create_loss
    from fasterpose.models import count_gmacs, count_params, create_model

    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    precision = choose_precision(dev.type, amp=True, cpu_amp=args.cpu_amp)
    torch.manual_seed(0)
    model = create_model(model_name)
    gmacs = float(count_gmacs(model, size))
    model = model.to(dev).train()
    criterion = create_loss("mse" if model_name.startswith("simplebaseline") else "rce")
    state = TrainState(model, torch.optim.Adam(model.parameters(), lr=1e-4), precision.grad_scaler(), precision)
    idle_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize()

    # model-only: tensors already on the device
    x = torch.randn(args.batch, 3, *size, device=dev)
    targets = (torch.rand(args.batch, 17, size[0] // 4, size[1] // 4, device=dev),
               torch.ones(args.batch, 17, device=dev))
    step_times, cpu_times = [], []
    for i in range(args.warmup + args.iters):
        sync()
        t0, c0 = time.perf_counter(), time.process_time()
        train_step(state, model, x, criterion, targets, 1e-4)
        sync()
        if i >= args.warmup:
            step_times.append(time.perf_counter() - t0)
            cpu_times.append(time.process_time() - c0)
    step = sorted(step_times)[len(step_times) // 2]
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # before any data is loaded

    # end to end: the training DataLoader over the synthetic set
    cfg = load_config("synthetic_fasterpose_r18", _data_config(args.images, args.image_size, size, args.cache))
    dataset = build_dataset(cfg, "train")
    sampler = D.ShardedBatchSampler(len(dataset), args.batch, seed=0, shuffle=True, drop_last=True, with_epoch=True)
    if sampler.batches_per_epoch < args.warmup + args.iters:
        raise SystemExit(f"--images {args.images} gives {len(dataset)} persons, {sampler.batches_per_epoch} batches of "
                         f"{args.batch}: fewer than --warmup + --iters ({args.warmup + args.iters}); raise --images")
    loader = build_train_loader(dataset, sampler, args.workers, dev)
    t_start, done = 0.0, 0
    for i, batch in enumerate(loader):
        if i == args.warmup:
            sync()
            t_start = time.perf_counter()
        images = batch["image"].to(dev, non_blocking=True)
        batch_targets = [batch[k].to(dev, non_blocking=True) for k in ("target", "target_weight")]
        train_step(state, model, images, criterion, batch_targets, 1e-4)
        if i >= args.warmup:
            done += 1
        if done == args.iters:
            break
    sync()
    end_to_end = done * args.batch / (time.perf_counter() - t_start)
    model_only = args.batch / step
    return {
        "model": model_name, "params_m": round(count_params(model) / 1e6, 3), "gmacs_per_sample": round(gmacs, 3),
        "precision": precision.name, "precision_reason": precision.reason,
        "step_seconds_median": round(step, 4), "model_only_images_per_s": round(model_only, 2),
        "end_to_end_images_per_s": round(end_to_end, 2),
        "end_to_end_over_model_only": round(end_to_end / model_only, 3),
        "persons": len(dataset), "iterations_per_epoch": sampler.batches_per_epoch,
        "cpu_seconds_per_step": round(sum(cpu_times) / len(cpu_times), 3),
        "idle_rss_mb": round(idle_rss_mb, 1), "peak_rss_mb": round(peak_rss_mb, 1),
        "training_rss_mb": round(peak_rss_mb - idle_rss_mb, 1),
        "gpu_peak_memory_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1) if dev.type == "cuda" else None,
        "threads": torch.get_num_threads(), "torch": torch.__version__,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", default="256x192", help="input HxW (default 256x192)")
    parser.add_argument("--iters", type=int, default=5, help="timed steps per model and column")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first (cudnn autotuning, worker start)")
    parser.add_argument("--workers", type=int, default=4, help="DataLoader workers of the end-to-end column")
    parser.add_argument("--images", type=int, default=6000,
                        help="synthetic training images (about 1.9 persons each; default 6000: ~360 batches of 32)")
    parser.add_argument("--image-size", type=int, default=256, help="side of the synthetic images (default 256)")
    parser.add_argument("--cache", default=None, help="synthetic data cache folder (default: the package's)")
    parser.add_argument("--cpu-amp", choices=("off", "bf16", "auto"), default="off", help="CPU precision")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--out", default=None,
                        help="JSON output (atomic; default benchmarks/results/train.json, train_cuda.json on CUDA)")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.lower().split("x"))
    if args.worker:
        print(json.dumps(worker(args.worker, args, size)))
        return 0
    out = args.out or str(ROOT / "results" / ("train_cuda.json" if args.device == "cuda" else "train.json"))

    # the synthetic set is generated once, here, before any model is timed
    from fasterpose.engine.config import load_config
    from fasterpose.engine.trainer import synthetic_split

    t0 = time.perf_counter()
    info = synthetic_split(load_config("synthetic_fasterpose_r18",
                                       _data_config(args.images, args.image_size, size, args.cache)), "train")
    print(f"synthetic training set: {info['num_images']} images, {info['num_persons']} persons "
          f"({time.perf_counter() - t0:.0f} s, {Path(info['root']).parent})", file=sys.stderr)

    rows = []
    for name in args.models:
        proc = subprocess.run([sys.executable, __file__, *sys.argv[1:], "--worker", name], capture_output=True,
                              text=True)
        if proc.returncode != 0:
            print(proc.stderr, file=sys.stderr)
            return proc.returncode
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))

    import torch

    from fasterpose.cpu import cpu_info, format_cpu
    from fasterpose.io_utils import atomic_write_json

    by_name = {r["model"]: r for r in rows}
    ratio = None
    if {"fasterpose_r50", "simplebaseline_r50"} <= by_name.keys():
        fp, sb = by_name["fasterpose_r50"], by_name["simplebaseline_r50"]
        ratio = {f"{column}_fasterpose_over_simplebaseline": round(fp[column] / sb[column], 2)
                 for column in ("model_only_images_per_s", "end_to_end_images_per_s", "peak_rss_mb",
                                "training_rss_mb")}
    device_label = torch.cuda.get_device_name() if args.device == "cuda" else format_cpu()
    print(f"Training step (forward + loss + backward + Adam) on {device_label}, batch {args.batch}, {args.size}, "
          f"{rows[0]['threads']} thread(s), {args.workers} DataLoader worker(s), {args.iters} timed steps\n")
    print("| model | precision | params (M) | GMACs/sample | model-only images/s | end-to-end images/s | "
          "end-to-end / model-only | iterations/epoch | peak RSS (MB) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['model']} | {r['precision']} | {r['params_m']:.1f} | {r['gmacs_per_sample']:.2f} | "
              f"{r['model_only_images_per_s']:.1f} | {r['end_to_end_images_per_s']:.1f} | "
              f"{r['end_to_end_over_model_only']:.2f} | {r['iterations_per_epoch']} | {r['peak_rss_mb']:.0f} |")
    if ratio:
        model_only, end_to_end, rss = (ratio[f"{c}_fasterpose_over_simplebaseline"]
                                       for c in ("model_only_images_per_s", "end_to_end_images_per_s", "peak_rss_mb"))
        print(f"\nFasterPose-R50 / SimpleBaseline-R50: {model_only}x model-only, {end_to_end}x end-to-end throughput, "
              f"{rss}x peak RSS")
    atomic_write_json(out, {
        "benchmark": "train_throughput", "device": args.device, "device_label": device_label,
        "cpu": cpu_info(), "cpu_label": format_cpu(), "batch": args.batch, "input_size": list(size),
        "iters": args.iters, "warmup": args.warmup, "workers": args.workers, "synthetic_images": info["num_images"],
        "synthetic_persons": info["num_persons"], "results": rows, "ratio": ratio, "torch": rows[0]["torch"],
        "python": platform.python_version(), "machine": platform.machine(), "cpu_count": os.cpu_count(),
    }, indent=2)
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
