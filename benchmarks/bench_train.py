"""CPU training throughput and peak memory: FasterPose-R50 vs SimpleBaseline-R50 (batch 32, 256x192).

One training step = forward + loss (RCE for FasterPose, MSE for SimpleBaseline, as each is trained) + backward +
Adam step, on random inputs/targets (the data pipeline is measured by ``bench_data.py``). Each model runs in its
own subprocess, so ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` is that model's peak resident memory
(``tracemalloc`` does not see torch's allocations); the RSS after building the model and before training is
reported too, so ``peak - idle`` is what training adds (activations, gradients, optimizer state). Both models run
in the same invocation, so their ratio is comparable even on a shared machine (CPU time per step is reported as
well: it is less sensitive to other load than wall time).

    python benchmarks/bench_train.py                          # markdown table + benchmarks/results/train.json
    python benchmarks/bench_train.py --iters 3 --threads 2 --out /tmp/train.json
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


def worker(model_name: str, batch: int, size: tuple[int, int], iters: int, warmup: int, threads: int | None) -> dict:
    """Measure one model in this process; returns a JSON-friendly dict."""
    import torch

    from fasterpose.losses import MSELoss, RCELoss
    from fasterpose.models import count_gmacs, count_params, create_model

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = create_model(model_name)
    gmacs = float(count_gmacs(model, size))
    model.train()
    criterion = MSELoss() if model_name.startswith("simplebaseline") else RCELoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randn(batch, 3, *size)
    h, w = size[0] // 4, size[1] // 4
    target = torch.rand(batch, 17, h, w)
    weight = torch.ones(batch, 17)
    idle_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    wall, cpu = [], []
    for i in range(warmup + iters):
        t0, c0 = time.perf_counter(), time.process_time()
        loss = criterion(model(x), target, weight)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if i >= warmup:
            wall.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    step = sorted(wall)[len(wall) // 2]
    return {
        "model": model_name, "params_m": round(count_params(model) / 1e6, 3), "gmacs_per_sample": round(gmacs, 3),
        "step_seconds_median": round(step, 3), "samples_per_s": round(batch / step, 2),
        "cpu_seconds_per_step": round(sum(cpu) / len(cpu), 3),
        "idle_rss_mb": round(idle_rss_mb, 1), "peak_rss_mb": round(peak_rss_mb, 1),
        "training_rss_mb": round(peak_rss_mb - idle_rss_mb, 1), "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", default="256x192", help="input HxW (default 256x192)")
    parser.add_argument("--iters", type=int, default=5, help="timed steps per model (median reported)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--out", default=str(ROOT / "results" / "train.json"), help="JSON output (atomic)")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.lower().split("x"))
    if args.worker:
        print(json.dumps(worker(args.worker, args.batch, size, args.iters, args.warmup, args.threads)))
        return 0

    rows = []
    for name in args.models:
        cmd = [sys.executable, __file__, "--worker", name, "--batch", str(args.batch), "--size", args.size,
               "--iters", str(args.iters), "--warmup", str(args.warmup)]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            print(proc.stderr, file=sys.stderr)
            return proc.returncode
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))

    by_name = {r["model"]: r for r in rows}
    ratio = None
    if {"fasterpose_r50", "simplebaseline_r50"} <= by_name.keys():
        fp, sb = by_name["fasterpose_r50"], by_name["simplebaseline_r50"]
        ratio = {"throughput_fasterpose_over_simplebaseline": round(fp["samples_per_s"] / sb["samples_per_s"], 2),
                 "cpu_time_simplebaseline_over_fasterpose": round(sb["cpu_seconds_per_step"]
                                                                  / fp["cpu_seconds_per_step"], 2),
                 "peak_rss_fasterpose_over_simplebaseline": round(fp["peak_rss_mb"] / sb["peak_rss_mb"], 2),
                 "training_rss_fasterpose_over_simplebaseline": round(fp["training_rss_mb"] / sb["training_rss_mb"],
                                                                      2)}
    print(f"CPU training step (forward + backward + Adam), batch {args.batch}, {args.size}, "
          f"{rows[0]['threads']} thread(s), median of {args.iters} steps\n")
    print("| model | params (M) | GMACs/sample | samples/s | s/step | CPU s/step | peak RSS (MB) | training RSS (MB) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['model']} | {r['params_m']:.1f} | {r['gmacs_per_sample']:.2f} | {r['samples_per_s']:.2f} | "
              f"{r['step_seconds_median']:.2f} | {r['cpu_seconds_per_step']:.2f} | {r['peak_rss_mb']:.0f} | "
              f"{r['training_rss_mb']:.0f} |")
    if ratio:
        print(f"\nFasterPose-R50 / SimpleBaseline-R50: {ratio['throughput_fasterpose_over_simplebaseline']:.2f}x "
              f"throughput, {ratio['peak_rss_fasterpose_over_simplebaseline']:.2f}x peak RSS, "
              f"{ratio['training_rss_fasterpose_over_simplebaseline']:.2f}x training memory")

    from fasterpose.cpu import cpu_info, format_cpu
    from fasterpose.io_utils import atomic_write_json

    print(f"CPU: {format_cpu()}")
    atomic_write_json(args.out, {
        "cpu": cpu_info(), "cpu_label": format_cpu(),
        "benchmark": "train_step_cpu", "batch": args.batch, "input_size": list(size), "iters": args.iters,
        "warmup": args.warmup, "results": rows, "ratio": ratio, "torch": rows[0]["torch"],
        "python": platform.python_version(), "machine": platform.machine(), "cpu_count": os.cpu_count(),
    }, indent=2)
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
