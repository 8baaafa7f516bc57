"""Latency benchmark: PyTorch fp32 vs onnxruntime fp32 vs onnxruntime int8, plus pre/post-processing per person.

Method (so that ratios hold on a noisy, shared machine):

* every row of one call lives in one process and is measured **interleaved**: each repetition runs every session
  once (round robin, the starting session rotating per repetition), after ``warmup`` untimed rounds;
* latency = wall time of one forward call on a fixed random input of shape ``(batch, 3, H, W)``; reported as the
  median and the 90th percentile over ``repeats`` calls;
* threads: ``torch.set_num_threads(threads)`` and onnxruntime ``intra_op_num_threads=threads``, sequential execution;
* models get random weights (or ``checkpoint``); exported with :func:`fasterpose.deploy.export.export_onnx` (parity
  checked) into a temporary folder; **int8 is calibrated on random inputs** unless ``calib`` gives real data, which
  does not change latency but makes the int8 accuracy meaningless (use ``fasterpose export --int8`` for that);
* GMACs from :func:`fasterpose.models.complexity.count_gmacs` (per image); achieved GFLOP/s
  ``= 2 * GMACs * batch / median seconds``;
* pre-processing per person = ``box_to_center_scale`` + ``crop_person`` + ``normalize_crop`` on a 640x480 image;
  post-processing per person = ``sigmoid`` + ``HeatmapCodec.decode`` + ``crop_to_image`` (no flip test), both in the
  same round robin.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..cpu import check_threads, cpu_info
from ..errors import ConfigError
from ..io_utils import temp_folder

logger = logging.getLogger(__name__)

__all__ = ["run_benchmark", "format_table", "ROW_KEYS"]

ROW_KEYS = ("model", "backend", "precision", "threads", "batch", "input_size", "median_ms", "p90_ms", "params",
            "gmacs", "gflops_per_s", "speedup_vs_torch", "preprocess_ms_per_person", "postprocess_ms_per_person",
            "calibration")


def _prepost_runners(input_size: tuple[int, int], num_keypoints: int) -> tuple[Callable[[], Any], Callable[[], Any]]:
    from ..codec import HeatmapCodec, sigmoid
    from ..geometry import box_to_center_scale, crop_person, crop_to_image, normalize_crop

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    box = np.array([[200.0, 60.0, 150.0, 380.0]])
    h, w = input_size
    codec = HeatmapCodec(input_size=input_size)
    logits = rng.normal(-4, 1, (1, num_keypoints, *codec.heatmap_size)).astype(np.float32)
    center, scale = box_to_center_scale(box, aspect_ratio=w / h)

    def pre() -> Any:
        c, s = box_to_center_scale(box, aspect_ratio=w / h)
        crop, _ = crop_person(image, c[0], s[0], (h, w))
        return normalize_crop(crop[None])

    def post() -> Any:
        pts, scores = codec.decode(sigmoid(logits))
        return crop_to_image(pts, center, scale, input_size)

    return pre, post


def run_benchmark(
    models: Sequence[str],
    input_size: tuple[int, int] = (256, 192),
    batch: int = 1,
    threads: int = 1,
    int8: bool = False,
    backends: Sequence[str] = ("torch", "onnxruntime"),
    repeats: int = 50,
    warmup: int = 10,
    checkpoint: str | os.PathLike | None = None,
    calib: str | os.PathLike | None = None,
    calib_size: int = 32,
    int8_scheme: str = "u8s8_7bit",
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Measure every (model, backend, precision) combination interleaved in this process.

    Args:
        models: registered model names (ignored when ``checkpoint`` is given: its model is used).
        input_size: ``(H, W)``.
        batch: batch size of every call.
        threads: intra-op threads for both frameworks.
        int8: add an onnxruntime int8 row per model (needs ``"onnxruntime"`` in ``backends``).
        backends: subset of ``("torch", "onnxruntime")``.
        repeats: timed repetitions (each runs every session once).
        warmup: untimed rounds first.
        checkpoint: benchmark this checkpoint's model instead of random-init ``models``.
        calib: real calibration data for int8 (COCO keypoints json or image folder); default random inputs.
        calib_size: number of calibration inputs.
        int8_scheme: int8 scheme (:data:`fasterpose.deploy.quantize.SCHEMES`).
        seed: seed of weights and inputs.

    Returns:
        One dict per row with the keys in :data:`ROW_KEYS` (and ``cpu``, ``cpu_class``, ``cpu_isa``: the
        instruction sets that decide onnxruntime's and PyTorch's kernels, see :mod:`fasterpose.cpu`; ``versions``).
    """
    import onnxruntime as ort
    import torch

    from ..models import count_gmacs, count_params, create_model
    from ..spec import PoseSpec
    from .crops import collect_crops
    from .export import export_onnx
    from .onnx_io import ort_session
    from .quantize import quantize_onnx

    backends = tuple(backends)
    unknown = set(backends) - {"torch", "onnxruntime"}
    if unknown or not backends:
        raise ConfigError(f"--backends must be a subset of torch,onnxruntime; got {','.join(backends) or 'nothing'}")
    if int8 and "onnxruntime" not in backends:
        raise ConfigError("--int8 rows run on onnxruntime; add onnxruntime to --backends")
    if batch < 1 or threads < 1 or repeats < 1 or warmup < 0:
        raise ConfigError("--batch, --threads and --repeats must be >= 1 and --warmup >= 0")
    check_threads(threads, "--threads")
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    torch.set_flush_denormal(True)  # as the Predictor does (subnormal floats are slow on x86)
    rng = np.random.default_rng(seed)
    h, w = input_size
    x_np = rng.normal(0, 1, (batch, 3, h, w)).astype(np.float32)
    x_t = torch.from_numpy(x_np)

    entries: list[dict[str, Any]] = []  # row metadata + runner
    with temp_folder("fasterpose_bench_") as tmpdir:
        if checkpoint is not None:
            from ..models import model_from_checkpoint

            net, spec0 = model_from_checkpoint(checkpoint)
            if tuple(spec0.input_size) != tuple(input_size):
                logger.warning("checkpoint input size %s differs from --input-size %s; benchmarking at %s",
                               spec0.input_size, input_size, input_size)
            todo = [(spec0.model_name, net, spec0.keypoint_set)]
        else:
            todo = [(name, None, "coco17") for name in models]
        for name, net, kset in todo:
            if net is None:
                net = create_model(name)
            net = net.eval()
            spec = PoseSpec(model_name=name, input_size=input_size, keypoint_set=kset,  # a set or a name
                            codec={"input_size": list(input_size)})
            info = {"model": name, "threads": threads, "batch": batch, "input_size": [h, w],
                    "params": int(count_params(net)), "gmacs": round(float(count_gmacs(net, input_size)), 4)}
            if "torch" in backends:

                def run_torch(net: Any = net) -> Any:
                    with torch.inference_mode():
                        return net(x_t)

                entries.append({**info, "backend": "torch", "precision": "fp32", "run": run_torch})
            if "onnxruntime" in backends:
                fp32 = Path(tmpdir) / f"{name}_fp32.onnx"
                export_onnx(net, fp32, spec=spec, dynamic_batch=batch > 1, parity_inputs=x_np[:2],
                            parity_source="random inputs")
                sess = ort_session(fp32, threads=threads)
                entries.append({**info, "backend": "onnxruntime", "precision": "fp32",
                                "run": lambda s=sess: s.run(None, {"images": x_np})})
                if int8:
                    if calib is not None:
                        crops, desc = collect_crops(calib, spec, max_crops=calib_size)
                        cal_note = "real crops"
                    else:
                        crops = rng.normal(0, 1, (calib_size, 3, h, w)).astype(np.float32)
                        desc = cal_note = "random inputs"
                    q = Path(tmpdir) / f"{name}_int8.onnx"
                    quantize_onnx(fp32, q, crops, scheme=int8_scheme, calib_description=desc)
                    qs = ort_session(q, threads=threads)
                    entries.append({**info, "backend": "onnxruntime", "precision": "int8", "calibration": cal_note,
                                    "run": lambda s=qs: s.run(None, {"images": x_np})})
            logger.info("prepared %s", name)

        pre, post = _prepost_runners(input_size, spec.keypoint_set.num_keypoints)  # the (last) model's set
        runners = [e["run"] for e in entries] + [pre, post]
        times = [[] for _ in runners]
        n = len(runners)
        for _ in range(warmup):
            for r in runners:
                r()
        for i in range(repeats):
            for j in range(n):
                k = (i + j) % n  # rotate the starting session
                t0 = time.perf_counter()
                runners[k]()
                times[k].append(time.perf_counter() - t0)

    pre_ms = 1e3 * float(np.median(times[-2]))
    post_ms = 1e3 * float(np.median(times[-1]))
    versions = {"torch": torch.__version__, "onnxruntime": ort.__version__}
    rows = []
    torch_median: dict[str, float] = {}
    cpu = cpu_info()
    for e, t in zip(entries, times):
        ms = 1e3 * np.asarray(t)
        row = {k: v for k, v in e.items() if k != "run"}
        row["median_ms"] = round(float(np.median(ms)), 3)
        row["p90_ms"] = round(float(np.percentile(ms, 90)), 3)
        row["gflops_per_s"] = round(2 * row["gmacs"] * batch / (row["median_ms"] / 1e3), 2)
        row["preprocess_ms_per_person"] = round(pre_ms, 3)
        row["postprocess_ms_per_person"] = round(post_ms, 3)
        row.setdefault("calibration", None)
        row["repeats"] = repeats
        row["cpu"] = cpu["model"]
        row["cpu_class"] = cpu["class"]
        row["cpu_isa"] = {k: cpu[k] for k in ("avx2", "avx512", "vnni", "native_bf16", "amx")}
        row["versions"] = versions
        if row["backend"] == "torch":
            torch_median[row["model"]] = row["median_ms"]
        rows.append(row)
    for row in rows:
        ref = torch_median.get(row["model"])
        row["speedup_vs_torch"] = round(ref / row["median_ms"], 3) if ref else None
    return rows


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """Markdown table of benchmark rows, then a line with the pre/post-processing times."""
    head = ("| model | backend | precision | threads | batch | input | params (M) | GMACs | median ms | p90 ms | "
            "GFLOP/s | speed-up vs torch |")
    lines = [head, "|" + "|".join(["---"] * (head.count("|") - 1)) + "|"]
    for r in rows:
        speed = f"{r['speedup_vs_torch']:.2f}x" if r.get("speedup_vs_torch") else "-"
        prec = r["precision"] + (" (random calib)" if r.get("calibration") == "random inputs" else "")
        lines.append(f"| {r['model']} | {r['backend']} | {prec} | {r['threads']} | {r['batch']} | "
                     f"{r['input_size'][0]}x{r['input_size'][1]} | {r['params'] / 1e6:.2f} | {r['gmacs']:.3f} | "
                     f"{r['median_ms']:.2f} | {r['p90_ms']:.2f} | {r['gflops_per_s']:.1f} | {speed} |")
    if rows:
        r = rows[0]
        lines.append("")
        lines.append(f"Per person at {r['input_size'][0]}x{r['input_size'][1]}: pre-processing (crop + normalize) "
                     f"{r['preprocess_ms_per_person']:.3f} ms, post-processing (sigmoid + decode + map back) "
                     f"{r['postprocess_ms_per_person']:.3f} ms. {r['repeats']} interleaved repetitions on "
                     f"{r['cpu']} [{r.get('cpu_class', '?')}]; torch {r['versions']['torch']}, onnxruntime "
                     f"{r['versions']['onnxruntime']}.")
    return "\n".join(lines)
