"""int8 schemes compared on a trained checkpoint: heatmap agreement with fp32, AP change and latency, per CPU class.

For each scheme of :data:`fasterpose.deploy.quantize.SCHEMES` the checkpoint's fp32 ONNX export is quantised
(calibrated on ``--calib``, default the ``--ann`` file itself, as in the README's export command) and compared with
fp32 on the ground-truth persons of ``--ann``:

* ``peak``: fraction of keypoints whose int8 heatmap argmax is the fp32 one; ``peak_confident``: the same over the
  keypoints the fp32 model is confident about (sigmoid peak >= 0.5);
* ``AP fp32`` / ``AP int8``: COCO keypoint AP on the GT boxes (flip test as the checkpoint's spec says);
* ``ms``: median latency of one crop, one thread, onnxruntime.

onnxruntime picks its int8 kernels from the CPU it runs on (VNNI or not), so the same file can be accurate on one
machine and not on another. ``--emulate-avx2`` also runs every model under Debian's ``qemu-x86_64 -cpu Haswell`` (an
AVX2 CPU without AVX-512 or VNNI; ``apt-get install qemu-user``) on the first ``--emulate-crops`` crops and reports
their agreement with the native fp32 heatmaps (qemu is some hundreds of times slower: about 15 s per int8 crop of
fasterpose_r18_l3 at 192x128, so AP and latency are not measured there).

    python benchmarks/bench_int8.py --checkpoint outputs/demo/last.pt --emulate-avx2 --out benchmarks/results/int8.json

Prints a markdown table and writes JSON (atomically), with the CPU it ran on.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
CONFIDENT = 0.5  # fp32 sigmoid peak above which a keypoint counts as confident


def agreement(ref: np.ndarray, got: np.ndarray, activation: str = "sigmoid") -> dict[str, float]:
    """Peak agreement on all keypoints and on the confident ones (fp32 peak >= 0.5 after the activation)."""
    from fasterpose.deploy.quantize import compare_heatmaps

    s = compare_heatmaps(ref, got, activation=activation, confident=CONFIDENT)
    return {"peak": s["peak_agreement"], "peak_1px": s["peak_agreement_1px"], "peak_confident":
            s["peak_agreement_confident"], "confident_keypoints": s["confident_keypoints"],
            "correlation": s["correlation"]}


def latency_ms(path: Path, crop: np.ndarray, repeats: int) -> float:
    from fasterpose.deploy.onnx_io import ort_session

    sess = ort_session(path, threads=1)
    name = sess.get_inputs()[0].name
    for _ in range(5):
        sess.run(None, {name: crop})
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        sess.run(None, {name: crop})
        times.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times))


def emulated_heatmaps(models: dict[str, Path], crops: np.ndarray, workdir: Path) -> dict[str, np.ndarray]:
    """Heatmaps of ``crops`` from each model, computed under ``qemu-x86_64 -cpu Haswell`` (AVX2, no AVX-512/VNNI)."""
    qemu = shutil.which("qemu-x86_64")
    if qemu is None:
        raise SystemExit("--emulate-avx2 needs qemu-user: apt-get install qemu-user")
    np.save(workdir / "crops.npy", crops)
    spec = {name: str(p) for name, p in models.items()}
    (workdir / "models.json").write_text(json.dumps(spec))
    cmd = [qemu, "-cpu", "Haswell", sys.executable, __file__, "--worker", str(workdir)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"emulated run failed:\n{proc.stderr[-3000:]}")
    out = {name: np.load(workdir / f"{name}.npy") for name in models}
    out["_cpu"] = json.loads((workdir / "cpu.json").read_text())
    return out


def worker(workdir: Path) -> None:
    """Inside qemu: run each model on the crops, one at a time, and save the heatmaps."""
    from fasterpose.cpu import cpu_info
    from fasterpose.deploy.onnx_io import ort_session, run_session

    crops = np.load(workdir / "crops.npy")
    for name, path in json.loads((workdir / "models.json").read_text()).items():
        np.save(workdir / f"{name}.npy", run_session(ort_session(path, threads=1), crops))
    (workdir / "cpu.json").write_text(json.dumps(cpu_info()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="outputs/demo/last.pt")
    parser.add_argument("--ann", help="COCO keypoints json with images (default: the checkpoint's synthetic val split)")
    parser.add_argument("--calib", help="calibration data (default: --ann)")
    parser.add_argument("--calib-size", type=int, default=300)
    parser.add_argument("--schemes", default=None, help="comma-separated (default: all)")
    parser.add_argument("--repeats", type=int, default=100, help="latency repetitions")
    parser.add_argument("--emulate-avx2", action="store_true", help="also run the models under qemu -cpu Haswell")
    parser.add_argument("--emulate-crops", type=int, default=8)
    parser.add_argument("--out", default=str(ROOT / "results" / "int8.json"))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(Path(args.worker))
        return

    from fasterpose.checkpoint import load_checkpoint
    from fasterpose.commands.export import _gt_predictions
    from fasterpose.cpu import cpu_info, format_cpu
    from fasterpose.deploy.crops import collect_crops
    from fasterpose.deploy.export import export_onnx
    from fasterpose.deploy.onnx_io import ort_session, run_session
    from fasterpose.deploy.quantize import SCHEMES, quantize_onnx
    from fasterpose.evaluation.coco import evaluate_keypoints
    from fasterpose.io_utils import atomic_write_json, check_writable
    from fasterpose.spec import PoseSpec

    check_writable(args.out, "--out")  # before the benchmark, not after it
    ckpt = load_checkpoint(args.checkpoint)
    spec = PoseSpec.from_dict(ckpt["spec"])
    ann = args.ann
    if ann is None:
        from fasterpose.engine.config import Config
        from fasterpose.engine.trainer import synthetic_split

        cfg = Config.from_dict(ckpt["config"])
        if cfg.data.dataset != "synthetic":
            raise SystemExit(f"{args.checkpoint} was not trained on the synthetic data: pass --ann VAL.json")
        ann = synthetic_split(cfg, "val")["annotations"]
    ann = Path(ann)
    schemes = args.schemes.split(",") if args.schemes else list(SCHEMES)
    calib, calib_desc = collect_crops(args.calib or ann, spec, max_crops=args.calib_size)
    check, check_desc = collect_crops(ann, spec, max_crops=10_000, augment=False)
    print(f"CPU: {format_cpu()}\ncalibration: {calib_desc}\nchecked on: {check_desc}", file=sys.stderr)

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_int8_") as tmp:
        tmp = Path(tmp)
        fp32 = tmp / "fp32.onnx"
        export_onnx(ckpt, fp32, parity_inputs=check[:8], parity_source="val crops")
        models = {"fp32": fp32}
        for s in schemes:
            models[s] = tmp / f"{s}.onnx"
            quantize_onnx(fp32, models[s], calib, scheme=s, calib_description=calib_desc)
        ref = run_session(ort_session(fp32), check)
        res, _ = _gt_predictions(fp32, ann, None)
        ap32 = evaluate_keypoints(ann, res)["AP"]
        # int8 models only: qemu runs fp32 convolutions even more slowly, and the native fp32 heatmaps are the
        # reference either way (fp32 kernels differ between CPU classes by round-off only)
        emulated = (emulated_heatmaps({k: v for k, v in models.items() if k != "fp32"}, check[:args.emulate_crops], tmp)
                    if args.emulate_avx2 else None)
        for name, path in models.items():
            row = {"scheme": name, "latency_ms": round(latency_ms(path, check[:1], args.repeats), 2)}
            if name == "fp32":
                row.update(ap=ap32)
            else:
                row.update(agreement(ref, run_session(ort_session(path), check), spec.heatmap_activation))
                res, _ = _gt_predictions(path, ann, None)
                row["ap"] = evaluate_keypoints(ann, res)["AP"]
                row["ap_change"] = row["ap"] - ap32
            if emulated is not None and name != "fp32":
                row["avx2_emulated"] = agreement(ref[:args.emulate_crops], emulated[name], spec.heatmap_activation)
            rows.append(row)

    report = {"cpu": cpu_info(), "cpu_label": format_cpu(), "checkpoint": str(args.checkpoint),
              "model": spec.model_name, "input_size": list(spec.input_size), "annotations": str(ann),
              "calibration": calib_desc, "checked_crops": len(check), "emulated_crops":
              args.emulate_crops if args.emulate_avx2 else 0,
              "emulated_cpu": emulated["_cpu"]["class"] if emulated else None, "rows": rows}
    atomic_write_json(args.out, report, indent=2)
    print(f"\n{spec.model_name} {spec.input_size[0]}x{spec.input_size[1]}, {len(check)} val crops; "
          f"CPU: {format_cpu()}\n")
    head = "| scheme | peak | peak (confident) | AP | AP change | ms (1 thread) |"
    if emulated:
        head += " AVX2 emulated: peak | peak (confident) |"
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for r in rows:
        line = (f"| {r['scheme']} | {r.get('peak', 1.0):.3f} | {r.get('peak_confident', 1.0):.3f} | {r['ap']:.4f} | "
                f"{r.get('ap_change', 0.0):+.4f} | {r['latency_ms']:.2f} |")
        if emulated:
            e = r.get("avx2_emulated", {"peak": 1.0, "peak_confident": 1.0})
            line += f" {e['peak']:.3f} | {e['peak_confident']:.3f} |"
        print(line)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    from fasterpose.errors import FasterPoseError

    try:
        main()
    except FasterPoseError as e:  # a bad path or file: the message, not a traceback
        raise SystemExit(f"bench_int8: error: {e}") from None
