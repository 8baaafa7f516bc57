"""Inference latency: PyTorch fp32 vs onnxruntime fp32 vs onnxruntime int8, measured interleaved in one process.

A thin wrapper around ``fasterpose bench`` (:mod:`fasterpose.deploy.bench`) with the project's reference settings:
the four main models at 256x192, batch 1, one thread, int8 included. Writes ``benchmarks/results/latency.json``.

    python benchmarks/bench_latency.py                   # markdown table + benchmarks/results/latency.json
    python benchmarks/bench_latency.py --repeats 10 --models fasterpose_mbv2 --out /tmp/latency.json
"""

from __future__ import annotations

import sys
from pathlib import Path

from fasterpose.cli import main

DEFAULTS = ["--models", "fasterpose_r50,simplebaseline_r50,fasterpose_mbv2,fasterpose_shufflev2",
            "--input-size", "256x192", "--batch", "1", "--threads", "1", "--int8",
            "--out", str(Path(__file__).parent / "results" / "latency.json")]

if __name__ == "__main__":
    # Later options win in argparse, so command-line arguments override the defaults.
    sys.exit(main(["bench", *DEFAULTS, *sys.argv[1:]]))
