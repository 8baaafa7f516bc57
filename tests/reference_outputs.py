"""Behaviour unchanged, shown: run the ``fasterpose`` command on fixed inputs, then compare two such runs file by file.

Not a pytest module (pytest collects ``test_*.py`` only): a script for a change that must not change what the package
computes. It drives the package only through its command line, in subprocesses, so the same script runs on the code
before and after a change (whichever ``fasterpose`` the ``PYTHONPATH`` selects)::

    PYTHONPATH=/path/to/old/src python3 tests/reference_outputs.py capture /tmp/before
    PYTHONPATH=$PWD/src        python3 tests/reference_outputs.py capture /tmp/after --checkpoint-from /tmp/before
    python3 tests/reference_outputs.py compare /tmp/before /tmp/after

``capture OUT`` writes into a new folder OUT (every command runs with OUT as its working directory and relative paths,
so no output names the folder): a synthetic train and val split (``fasterpose synth``, fixed seeds), a short
deterministic training run (``fasterpose train``, one thread; its weights and losses are compared too), ``model.pt``
(that run's checkpoint, or with ``--checkpoint-from DIR`` a copy of ``DIR/model.pt``, so both sides predict with the
same file even when training changed), predictions on ``tests/data/people`` (detections file, HOG, whole image) and on
``vtest_short.avi`` (given boxes on every frame; HOG every 5 frames; given boxes every 5 frames with tracking and
smoothing), ``fasterpose eval`` on the val split (ground-truth and detector boxes), ``fasterpose export`` (fp32 and
int8) and predictions with the ONNX file. ``logs/`` keeps each command's output, ``manifest.json`` its exit status.

``compare BEFORE AFTER`` says per file: identical bytes, or equal within float rounding (JSON numbers within 1e-4
relative, keypoint and box coordinates within 0.01 px; images and video frames: the largest pixel difference and how
many pixels differ; ONNX files: their outputs on the same inputs; checkpoints: their tensors), or different, and exits
1 when anything differs (``--verbose`` lists the identical files too). About three minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
PEOPLE = REPO / "tests" / "data" / "people"

# JSON keys whose values are timings or otherwise vary from run to run: not compared.
VOLATILE_KEYS = {"seconds", "train_seconds", "time", "timestamp", "fasterpose_version"}
REL_TOL = 1e-4  # JSON numbers, relative
PX_TOL = 0.01  # keypoint and box coordinates, pixels
ABS_TOL = 1e-6  # numbers near zero
IMAGE_NOISE = 2  # pixel differences up to this are rounding noise
IMAGE_FRACTION = 1e-3  # at most this share of pixels may differ by more than IMAGE_NOISE
ONNX_TOL = 1e-4  # outputs, relative to their largest magnitude


def _train_args() -> list[str]:
    """A short deterministic run of the shipped synthetic config: the demo's model and augmentation at 128x96, one
    thread, 150 updates (AP a few hundredths: heatmaps with peaks, so decoding is not a coin toss between ties)."""
    opts = [
        "model.name=fasterpose_r18_l3", "model.kwargs={}", "data.dataset=coco",
        "data.augment.rotation_prob=0", "data.augment.scale_factor=0.15",
        "data.train_ann=data/train/person_keypoints.json", "data.train_images=data/train/images",
        "data.val_ann=data/val/person_keypoints.json", "data.val_images=data/val/images",
        "data.input_size=[128,96]", "train.epochs=10", "train.batch_size=8", "train.threads=1",
        "train.deterministic=true", "train.cpu_amp=off", "train.val_every=0", "train.progress=never",
        "train.plot=false", "train.seed=0", "train.checkpoint_every_iters=0", "optim.warmup_iters=5",
    ]
    args = ["train", "synthetic_fasterpose_r18", "--out", "train", "--device", "cpu", "--json"]
    for opt in opts:
        args += ["--opt", opt]
    return args


EVAL_DATA = ["--opt", "data.val_ann=data/val/person_keypoints.json", "--opt", "data.val_images=data/val/images"]
IMAGE_BOXES = ["--boxes", "people/person_detections.json"]
VIDEO = "people/vtest_short.avi"
VIDEO_BOXES = ["--boxes", "people/vtest_detections.json"]
COMMON = ["--threads", "1"]

# (name, fasterpose arguments, file that receives stdout or None); "@MODEL" is replaced by the checkpoint.
STEPS: list[tuple[str, list[str], str | None]] = [
    ("synth_train", ["synth", "data/train", "--images", "64", "--seed", "0", "--size", "128x128"], None),
    ("synth_val", ["synth", "data/val", "--images", "24", "--seed", "1", "--size", "128x128"], None),
    ("train", _train_args(), "train_summary.json"),
    ("predict_images", ["predict", "people", "--checkpoint", "model.pt", *IMAGE_BOXES, "--out",
                        "predict_images", *COMMON], None),
    ("predict_images_hog", ["predict", "people", "--checkpoint", "model.pt", "--hog", "--no-flip", "--show-boxes",
                            "--out", "predict_images_hog", *COMMON], None),
    ("predict_image_full", ["predict", "people/messi5.jpg", "--checkpoint", "model.pt", "--full-image", "--out",
                            "predict_image_full", *COMMON], None),
    ("predict_video", ["predict", VIDEO, "--checkpoint", "model.pt", *VIDEO_BOXES, "--video-format", "avi",
                       "--out", "predict_video", *COMMON], None),
    ("predict_video_hog", ["predict", VIDEO, "--checkpoint", "model.pt", "--hog", "--det-every", "5",
                           "--max-frames", "12", "--video-format", "avi", "--out", "predict_video_hog", *COMMON], None),
    ("predict_video_track", ["predict", VIDEO, "--checkpoint", "model.pt", *VIDEO_BOXES, "--det-every", "5",
                             "--smooth", "--video-format", "avi", "--out", "predict_video_track", *COMMON], None),
    ("eval_gt", ["eval", "--checkpoint", "model.pt", *EVAL_DATA, "--boxes", "gt", "--device", "cpu",
                 "--results", "eval/results_gt.json", "--json"], "eval/report_gt.json"),
    ("eval_dets", ["eval", "--checkpoint", "model.pt", *EVAL_DATA, "--boxes", "data/val/person_detections.json",
                   "--device", "cpu", "--results", "eval/results_dets.json", "--json"], "eval/report_dets.json"),
    ("export", ["export", "--checkpoint", "model.pt", "--out", "export/model.onnx", "--parity-data",
                "data/val/person_keypoints.json", "--json"], "export/report.json"),
    ("export_int8", ["export", "--checkpoint", "model.pt", "--out", "export/model_int8.onnx", "--int8", "--calib",
                     "data/val/person_keypoints.json", "--calib-size", "16", "--json"], "export/report_int8.json"),
    ("predict_onnx", ["predict", "people", "--onnx", "export/model.onnx", *IMAGE_BOXES, "--out", "predict_onnx",
                      *COMMON], None),
    ("predict_onnx_video", ["predict", VIDEO, "--onnx", "export/model.onnx", *VIDEO_BOXES, "--det-every", "5",
                            "--video-format", "avi", "--out", "predict_onnx_video", *COMMON], None),
    ("predict_onnx_int8", ["predict", "people", "--onnx", "export/model_int8.onnx", *IMAGE_BOXES, "--out",
                           "predict_onnx_int8", *COMMON], None),
]

# logs hold timings; the inputs are checked by their hashes (people/) or their own comparison (data/ is synth's output)
NOT_COMPARED = ("logs/", "manifest.json", "people/", "train/train.log")


# ---------------------------------------------------------------------------------------------------------- capture


def _env() -> dict[str, str]:
    """One thread everywhere: sums are then added in the same order on both sides."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONHASHSEED="0", PYTHONUNBUFFERED="1")
    env.pop("FASTERPOSE_DEVICE", None)
    return env


def _versions(env: dict[str, str]) -> dict[str, Any]:
    """Which fasterpose (file, git commit) and which libraries ran: a difference there explains many others."""
    code = ("import json, fasterpose, torch, cv2, numpy\n"
            "try:\n import onnxruntime as o; ort = o.__version__\nexcept ImportError:\n ort = None\n"
            "print(json.dumps({'fasterpose_file': fasterpose.__file__, 'fasterpose': fasterpose.__version__,"
            " 'torch': torch.__version__, 'opencv': cv2.__version__, 'numpy': numpy.__version__,"
            " 'onnxruntime': ort}))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    info = json.loads(out)
    src = Path(info["fasterpose_file"]).resolve().parent
    git = subprocess.run(["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(src), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True)
    info["git_commit"] = git.stdout.strip() or None
    info["git_dirty"] = bool(dirty.stdout.strip()) if git.returncode == 0 else None
    return info


def capture(out: Path, checkpoint_from: Path | None) -> int:
    if out.exists() and any(out.iterdir()):
        print(f"capture: {out} is not empty; give a new folder (nothing was written)", file=sys.stderr)
        return 2
    if checkpoint_from is not None and not (checkpoint_from / "model.pt").is_file():
        print(f"capture: {checkpoint_from}/model.pt not found; --checkpoint-from takes a folder written by capture",
              file=sys.stderr)
        return 2
    env = _env()
    (out / "logs").mkdir(parents=True, exist_ok=True)
    shutil.copytree(PEOPLE, out / "people")
    manifest: dict[str, Any] = {"versions": _versions(env), "checkpoint_from": str(checkpoint_from or ""),
                                "inputs": {p.name: _sha256(p) for p in sorted((out / "people").iterdir())},
                                "steps": {}}
    print(f"fasterpose from {manifest['versions']['fasterpose_file']} (commit {manifest['versions']['git_commit']})")
    failed = []
    for name, args, stdout_file in STEPS:
        if name == "predict_images":  # the model every later step uses
            source = checkpoint_from / "model.pt" if checkpoint_from else out / "train" / "last.pt"
            if source.is_file():
                shutil.copyfile(source, out / "model.pt")
        cmd = [sys.executable, "-m", "fasterpose", *args]
        print(f"[{name}] fasterpose {' '.join(args)}", flush=True)
        proc = subprocess.run(cmd, cwd=out, env=env, capture_output=True, text=True)
        (out / "logs" / f"{name}.out").write_text(proc.stdout)
        (out / "logs" / f"{name}.err").write_text(proc.stderr)
        if stdout_file:
            (out / stdout_file).parent.mkdir(parents=True, exist_ok=True)
            (out / stdout_file).write_text(proc.stdout)
        manifest["steps"][name] = {"args": args, "returncode": proc.returncode}
        if proc.returncode != 0:
            failed.append(name)
            print(f"  exit {proc.returncode}: {proc.stderr.strip().splitlines()[-1:]}", flush=True)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"wrote {out}" + (f"; failed steps: {', '.join(failed)} (see {out}/logs)" if failed else ""))
    return 1 if failed else 0


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------------------------------------------------- compare


@dataclass
class Verdict:
    status: str  # "identical", "close" (equal within float rounding) or "DIFFERENT"
    detail: str = ""


def _normalise(text: str) -> str:
    """Temporary folders carry a process id and random letters; the package's own path depends on the checkout."""
    text = re.sub(re.escape(tempfile.gettempdir()) + r"/[^\s\"',)]+", "<tmp>", text)
    return re.sub(r"/[^\s\"',)]*/src/fasterpose", "<fasterpose>", text)


class _JsonDiff:
    """Walks two JSON values side by side, collecting differences and the largest numeric deviation."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.max_abs = 0.0
        self.max_rel = 0.0

    def walk(self, a: Any, b: Any, where: str, coord: bool = False) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b)):
                if key in VOLATILE_KEYS:
                    continue
                if key not in a or key not in b:
                    self._problem(f"{where}.{key}: only in {'AFTER' if key not in a else 'BEFORE'}")
                    continue
                self.walk(a[key], b[key], f"{where}.{key}", coord or key in ("keypoints", "bbox", "box"))
        elif isinstance(a, list) and isinstance(b, list):
            if len(a) != len(b):
                self._problem(f"{where}: {len(a)} items before, {len(b)} after")
            for i, (x, y) in enumerate(zip(a, b)):
                self.walk(x, y, f"{where}[{i}]", coord)
        elif _is_number(a) and _is_number(b):
            self._numbers(float(a), float(b), where, coord)
        elif isinstance(a, str) and isinstance(b, str):
            if _normalise(a) != _normalise(b):
                self._problem(f"{where}: {a!r} before, {b!r} after")
        elif a != b:
            self._problem(f"{where}: {a!r} before, {b!r} after")

    def _numbers(self, a: float, b: float, where: str, coord: bool) -> None:
        if a == b or (math.isnan(a) and math.isnan(b)):
            return
        d = abs(a - b)
        rel = d / max(abs(a), abs(b))
        self.max_abs, self.max_rel = max(self.max_abs, d), max(self.max_rel, rel)
        if not (rel <= REL_TOL or d <= ABS_TOL or (coord and d <= PX_TOL)):
            self._problem(f"{where}: {a!r} before, {b!r} after")

    def _problem(self, text: str) -> None:
        self.problems.append(text)


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _json_verdict(a: Any, b: Any) -> Verdict:
    diff = _JsonDiff()
    diff.walk(a, b, "$")
    if diff.problems:
        return Verdict("DIFFERENT", f"{len(diff.problems)} values differ, e.g. " + "; ".join(diff.problems[:3]))
    if diff.max_abs == 0.0:
        return Verdict("identical", "same values (bytes differ only in volatile fields or formatting)")
    return Verdict("close", f"numbers within rounding: max |d| {diff.max_abs:.3g}, max relative {diff.max_rel:.3g}")


def _compare_json(a: Path, b: Path) -> Verdict:
    return _json_verdict(json.loads(a.read_text()), json.loads(b.read_text()))


def _compare_jsonl(a: Path, b: Path) -> Verdict:
    def rows(p: Path) -> list[Any]:
        return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]

    return _json_verdict(rows(a), rows(b))


def _compare_csv(a: Path, b: Path) -> Verdict:
    import csv

    def rows(p: Path) -> list[dict[str, Any]]:
        with p.open(newline="") as f:
            return [{k: _maybe_float(v) for k, v in row.items()} for row in csv.DictReader(f)]

    return _json_verdict(rows(a), rows(b))


def _maybe_float(v: str) -> Any:
    try:
        return float(v)
    except ValueError:
        return v


def _compare_text(a: Path, b: Path) -> Verdict:
    if _normalise(a.read_text()) == _normalise(b.read_text()):
        return Verdict("identical", "same text once temporary and package paths are masked")
    return Verdict("DIFFERENT", "text differs")


def _pixel_verdict(diffs: list[np.ndarray], what: str) -> Verdict:
    worst = max((int(d.max()) for d in diffs if d.size), default=0)
    total = sum(d.size for d in diffs)
    over = sum(int((d > IMAGE_NOISE).sum()) for d in diffs)
    detail = f"{what}: max |pixel diff| {worst}, {over} of {total} values differ by more than {IMAGE_NOISE}"
    if worst == 0:
        return Verdict("identical", f"{what}: same pixels (encoded bytes differ)")
    return Verdict("close" if over <= IMAGE_FRACTION * total else "DIFFERENT", detail)


def _compare_image(a: Path, b: Path) -> Verdict:
    import cv2

    x, y = cv2.imread(str(a), cv2.IMREAD_UNCHANGED), cv2.imread(str(b), cv2.IMREAD_UNCHANGED)
    if x is None or y is None or x.shape != y.shape:
        return Verdict("DIFFERENT", f"shapes {getattr(x, 'shape', None)} vs {getattr(y, 'shape', None)}")
    return _pixel_verdict([np.abs(x.astype(np.int16) - y.astype(np.int16))], "image")


def _frames(path: Path) -> list[np.ndarray]:
    import cv2

    cap, frames = cv2.VideoCapture(str(path)), []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames


def _compare_video(a: Path, b: Path) -> Verdict:
    fa, fb = _frames(a), _frames(b)
    if len(fa) != len(fb) or any(x.shape != y.shape for x, y in zip(fa, fb)):
        return Verdict("DIFFERENT", f"{len(fa)} frames before, {len(fb)} after (or their sizes differ)")
    return _pixel_verdict([np.abs(x.astype(np.int16) - y.astype(np.int16)) for x, y in zip(fa, fb)],
                          f"{len(fa)} frames")


def _onnx_inputs(session: Any) -> dict[str, np.ndarray]:
    """A fixed random batch of two (one for a fixed-batch model) at the model's input size."""
    rng = np.random.default_rng(0)
    feeds = {}
    for inp in session.get_inputs():
        shape = [d if isinstance(d, int) else 2 for d in inp.shape]
        feeds[inp.name] = rng.standard_normal(shape).astype(np.float32)
    return feeds


def _compare_onnx(a: Path, b: Path) -> Verdict:
    import onnx
    import onnxruntime as ort

    meta = [{p.key: _maybe_json(p.value) for p in onnx.load(str(p), load_external_data=False).metadata_props}
            for p in (a, b)]
    meta_verdict = _json_verdict(meta[0], meta[1])
    if meta_verdict.status == "DIFFERENT":
        return Verdict("DIFFERENT", f"metadata: {meta_verdict.detail}")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    sa, sb = (ort.InferenceSession(str(p), opts, providers=["CPUExecutionProvider"]) for p in (a, b))
    ia, ib = ([(i.name, i.shape) for i in s.get_inputs()] for s in (sa, sb))
    if ia != ib:
        return Verdict("DIFFERENT", f"inputs differ: {ia} vs {ib}")
    feeds = _onnx_inputs(sa)
    oa, ob = sa.run(None, feeds), sb.run(None, feeds)
    if [o.shape for o in oa] != [o.shape for o in ob]:
        return Verdict("DIFFERENT", f"output shapes {[o.shape for o in oa]} vs {[o.shape for o in ob]}")
    worst = max(float(np.abs(x - y).max()) for x, y in zip(oa, ob))
    scale = max(float(np.abs(x).max()) for x in oa) or 1.0
    detail = f"outputs on a fixed input: max |diff| {worst:.3g} (largest output {scale:.3g}); metadata equal"
    if worst == 0.0:
        return Verdict("identical", detail)
    return Verdict("close" if worst <= ONNX_TOL * scale else "DIFFERENT", detail)


def _maybe_json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _compare_checkpoint(a: Path, b: Path) -> Verdict:
    """Tensors (model, optimizer) within rounding; everything else as JSON. The files are ours, so pickles are fine."""
    import torch

    def flat(obj: Any, prefix: str, out: dict[str, Any]) -> dict[str, Any]:
        if isinstance(obj, dict):
            for k, v in obj.items():
                flat(v, f"{prefix}.{k}", out)
        elif isinstance(obj, (list, tuple)) and any(isinstance(v, (dict, torch.Tensor)) for v in obj):
            for i, v in enumerate(obj):
                flat(v, f"{prefix}[{i}]", out)
        else:
            out[prefix] = obj
        return out

    try:
        ca, cb = (torch.load(p, map_location="cpu", weights_only=False) for p in (a, b))
    except Exception as e:  # noqa: BLE001 - any unreadable file is a difference to report, not a crash
        return Verdict("DIFFERENT", f"could not load both: {type(e).__name__}: {e}")
    fa, fb = flat(ca, "$", {}), flat(cb, "$", {})
    problems, worst = [], 0.0
    for key in sorted(set(fa) | set(fb)):
        if key.rsplit(".", 1)[-1] in VOLATILE_KEYS or key.startswith(("$.rng", "$.config.train.output_dir")):
            continue  # the RNG state is checked through what it produces: the weights
        if key not in fa or key not in fb:
            problems.append(f"{key}: only in {'AFTER' if key not in fa else 'BEFORE'}")
            continue
        x, y = fa[key], fb[key]
        if isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor):
            if x.shape != y.shape or x.dtype != y.dtype:
                problems.append(f"{key}: {tuple(x.shape)} {x.dtype} vs {tuple(y.shape)} {y.dtype}")
            elif x.numel() and not torch.equal(x, y):
                d = float((x.double() - y.double()).abs().max())
                worst = max(worst, d)
                if d > REL_TOL * max(float(x.double().abs().max()), 1.0):
                    problems.append(f"{key}: max |diff| {d:.3g}")
        else:
            v = _json_verdict(_jsonable(x), _jsonable(y))
            if v.status == "DIFFERENT":
                problems.append(f"{key}: {v.detail}")
    if problems:
        return Verdict("DIFFERENT", f"{len(problems)} entries differ, e.g. " + "; ".join(problems[:3]))
    return Verdict("close" if worst else "identical", f"same entries; tensors max |diff| {worst:.3g}")


def _jsonable(x: Any) -> Any:
    return json.loads(json.dumps(x, default=str))


COMPARERS = {".json": _compare_json, ".jsonl": _compare_jsonl, ".csv": _compare_csv, ".yaml": _compare_text,
             ".txt": _compare_text, ".log": _compare_text, ".jpg": _compare_image, ".png": _compare_image,
             ".avi": _compare_video, ".mp4": _compare_video, ".onnx": _compare_onnx, ".pt": _compare_checkpoint,
             ".pth": _compare_checkpoint}


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")
            if p.is_file() and not p.relative_to(root).as_posix().startswith(NOT_COMPARED)}


def compare_file(a: Path, b: Path) -> Verdict:
    if a.read_bytes() == b.read_bytes():
        return Verdict("identical", "same bytes")
    comparer = COMPARERS.get(a.suffix.lower())
    if comparer is None:
        return Verdict("DIFFERENT", "bytes differ (no finer comparison for this kind of file)")
    try:
        return comparer(a, b)
    except Exception as e:  # noqa: BLE001 - a file that cannot be parsed on one side differs
        return Verdict("DIFFERENT", f"could not compare: {type(e).__name__}: {e}")


def _compare_manifests(before: Path, after: Path) -> list[str]:
    ma, mb = (json.loads((d / "manifest.json").read_text()) for d in (before, after))
    notes = []
    if ma["inputs"] != mb["inputs"]:
        notes.append("DIFFERENT inputs: tests/data/people differs between the two captures")
    for name, step in ma["steps"].items():
        other = mb["steps"].get(name)
        if other is None:
            notes.append(f"DIFFERENT step {name}: not run AFTER")
        elif other["returncode"] != step["returncode"]:
            notes.append(f"DIFFERENT step {name}: exit {step['returncode']} before, {other['returncode']} after")
    for lib in ("torch", "opencv", "numpy", "onnxruntime"):
        if ma["versions"].get(lib) != mb["versions"].get(lib):
            notes.append(f"note: {lib} {ma['versions'].get(lib)} before, {mb['versions'].get(lib)} after")
    for label, m in (("BEFORE", ma), ("AFTER", mb)):
        v = m["versions"]
        dirty = " (uncommitted changes)" if v.get("git_dirty") else ""
        notes.append(f"note: {label} ran {v['fasterpose_file']} at commit {v.get('git_commit')}{dirty}")
    if mb.get("checkpoint_from") and Path(mb["checkpoint_from"]).resolve() != before.resolve():
        notes.append(f"note: AFTER predicted with {mb['checkpoint_from']}/model.pt, not BEFORE's model.pt")
    return notes


def compare(before: Path, after: Path, verbose: bool = False) -> int:
    for d in (before, after):
        if not (d / "manifest.json").is_file():
            print(f"compare: {d} has no manifest.json; give two folders written by `capture`", file=sys.stderr)
            return 2
    notes = _compare_manifests(before, after)
    fa, fb = _files(before), _files(after)
    counts = {"identical": 0, "close": 0, "DIFFERENT": 0}
    differing = []
    for rel in sorted(fa | fb):
        if rel not in fb or rel not in fa:
            verdict = Verdict("DIFFERENT", "missing AFTER" if rel not in fb else "only AFTER")
        else:
            verdict = compare_file(before / rel, after / rel)
        counts[verdict.status] += 1
        if verbose or verdict.detail != "same bytes":
            print(f"{verdict.status:9}  {rel}: {verdict.detail}")
        if verdict.status == "DIFFERENT":
            differing.append(rel)
    for note in notes:
        print(note)
    step_problems = [n for n in notes if n.startswith("DIFFERENT")]
    print(f"\n{len(fa | fb)} files: {counts['identical']} identical, {counts['close']} equal within float rounding, "
          f"{counts['DIFFERENT']} different" + (f": {', '.join(differing)}" if differing else "")
          + (f"; {len(step_problems)} step/input differences" if step_problems else ""))
    return 1 if differing or step_problems else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    cap = sub.add_parser("capture", help="run the fasterpose CLI on the fixed inputs into a new folder")
    cap.add_argument("out", type=Path)
    cap.add_argument("--checkpoint-from", type=Path, default=None, metavar="DIR",
                     help="predict, evaluate and export with DIR/model.pt (an earlier capture's) instead of this "
                     "run's own training result")
    cmp = sub.add_parser("compare", help="compare two captures file by file")
    cmp.add_argument("before", type=Path)
    cmp.add_argument("after", type=Path)
    cmp.add_argument("--verbose", action="store_true", help="list the files with identical bytes too")
    args = parser.parse_args(argv)
    if args.mode == "capture":
        return capture(args.out, args.checkpoint_from)
    return compare(args.before, args.after, args.verbose)


if __name__ == "__main__":
    sys.exit(main())
