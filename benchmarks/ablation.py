"""Ablation study of the FasterPose claims: head (deconv vs sub-pixel), loss (MSE vs RCE), feature stride, codec.

Every variant is built from ONE base config by overrides, so data, augmentation, schedule, epochs and the seed set
are identical; only the named factor changes:

========  =========================================================================================================
``a``     SimpleBaseline: same backbone + 3 deconvolutions (DeconvHead), MSE loss (final bias 0)
``b``     FasterPose sub-pixel head (stride-32 feature), **MSE** loss, final bias 0 (the RCE prior bias is for RCE)
``c``     FasterPose sub-pixel head (stride-32 feature), RCE loss (final bias -4.6: sigmoid prior 0.01)
``d16``   ``c`` with a stride-16 feature (last ResNet stage dilated)
``d16_l3`` ``c`` with a stride-16 feature from the trunk cut after layer3 (no layer4: ``fasterpose_r18_l3``)
``c_k1``  ``c`` with a 1x1 sub-pixel conv (``final_kernel=1``) instead of ESPCN's 3x3 (our head design choice)
``e_udp`` codec base + UDP (unbiased data processing: targets, crops and flip test); MSRA is the base itself
``e_dark`` codec base re-evaluated with DARK decoding instead of argmax + quarter shift (**no retraining**: the
          base variant's final checkpoints are decoded differently; the other decode is the base's own AP)
========  =========================================================================================================

The codec base (``--codec-base``) is ``c`` by default; ``auto`` picks the variant with the highest final mean AP
among the trained non-codec variants of the study (resolved after they finish, and recorded in the results).

Each training run is ``python -m fasterpose train CONFIG --opt ...`` in its own subprocess (``--jobs`` in
parallel, ``--threads`` torch threads each; a crash is recorded and the study goes on) with validation after every
epoch (``train.val_every=1``) and ``train.deterministic=true``. Runs are cached in ``--work-dir``: a run whose
``run.json`` matches the requested overrides and the fingerprint of the resolved config and model is skipped;
an interrupted run is resumed from its ``last.pt``.

Outputs in ``--out``: ``runs.json`` (one record per run: AP after every epoch, wall time, overrides),
``latency.json`` (``fasterpose.deploy.bench.run_benchmark`` rows: params, GMACs, torch and onnxruntime fp32
latency, one interleaved call for all architectures), ``summary.json`` (per-variant statistics and pairwise
comparisons), ``table.md``, ``ap_vs_epoch.png`` and ``ap_vs_latency.png``.

Synthetic benchmark (CPU)::

    python benchmarks/ablation.py --config ablation_synthetic_r18 --seeds 0,1,2 --jobs 2 --threads 1 \\
        --codec-base auto --out docs/results --work-dir runs/ablation

COCO (GPU; same study, the COCO schedule of the config)::

    python benchmarks/ablation.py --config coco_fasterpose_r50_256x192 --device cuda --jobs 1 --threads 8 \\
        --opt data.codec.decode=quarter --out results/coco_ablation --work-dir runs/coco_ablation
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger("ablation")

DEFAULT_VARIANTS = ("a", "b", "c", "c_k1", "d16", "d16_l3", "e_udp", "e_dark")
CODEC_VARIANTS = ("e_udp", "e_dark")


@dataclass(frozen=True)
class Variant:
    """One ablation variant: a description and the factors it sets (``None``: the base config's / codec base's).

    Attributes:
        key: short name (``a``, ``b``, ``c``, ``d16``, ``e_udp``, ``e_dark``).
        label: one-line description for tables and plots.
        family: ``"simplebaseline"`` or ``"fasterpose"``; ``None`` for codec variants (the codec base's).
        loss: ``"mse"`` or ``"rce"``; ``None`` for codec variants.
        output_stride: backbone feature stride; ``None`` for codec variants.
        final_kernel: kernel of the sub-pixel head's last conv (``None``: the model's default, 3).
        num_stages: ResNet stages kept (``None``: all four; 3 ends the trunk after layer3, stride 16).
        unbiased: UDP on/off (``None``: unchanged).
        decode: decoding override (``None``: unchanged).
        reeval: decode-only variant: re-evaluate the codec base's checkpoints instead of training.
    """

    key: str
    label: str
    family: str | None = None
    loss: str | None = None
    output_stride: int | None = None
    final_kernel: int | None = None
    num_stages: int | None = None
    unbiased: bool | None = None
    decode: str | None = None
    reeval: bool = False


VARIANTS: dict[str, Variant] = {v.key: v for v in (
    Variant("a", "SimpleBaseline deconv head + MSE", "simplebaseline", "mse", 32),
    Variant("b", "sub-pixel head + MSE", "fasterpose", "mse", 32),
    Variant("c", "sub-pixel head + RCE (FasterPose)", "fasterpose", "rce", 32),
    Variant("d16", "sub-pixel head + RCE, stride-16 feature", "fasterpose", "rce", 16),
    Variant("c_k1", "sub-pixel head (1x1 final conv) + RCE", "fasterpose", "rce", 32, final_kernel=1),
    Variant("d16_l3", "sub-pixel head + RCE, stride 16, trunk cut after layer3", "fasterpose", "rce", 16,
            num_stages=3),
    Variant("e_udp", "codec base + UDP", unbiased=True),
    Variant("e_dark", "codec base + DARK decoding (re-evaluated)", decode="dark", reeval=True),
)}


# ------------------------------------------------------------------------------------------------ overrides


def backbone_suffix(model_name: str) -> str:
    """``fasterpose_r50`` -> ``r50`` (the registry's ``<family>_<backbone>`` naming)."""
    if "_" not in model_name:
        raise ValueError(f"model name {model_name!r} is not of the form <family>_<backbone>")
    return model_name.split("_", 1)[1]


def variant_overrides(variant: Variant, base_model: str, base_kwargs: dict[str, Any] | None = None,
                      codec_base: Variant | None = None) -> list[str]:
    """Config overrides (``key=value``) that turn the base config into ``variant`` (seed and budget excluded).

    Args:
        variant: the variant.
        base_model: the base config's ``model.name`` (its backbone is kept, e.g. ``fasterpose_r18`` -> ResNet-18).
        base_kwargs: the base config's ``model.kwargs``; head options valid for the variant's family are kept.
        codec_base: for codec variants, the trained variant they modify.
    """
    from fasterpose.models import model_info

    if variant.family is None:
        if codec_base is None or codec_base.family is None:
            raise ValueError(f"variant {variant.key} needs a trained codec base variant (a, b, c, c_k1 or d16)")
        out = variant_overrides(codec_base, base_model, base_kwargs)
        if variant.unbiased is not None:
            out.append(f"data.codec.unbiased={str(variant.unbiased).lower()}")
        if variant.decode is not None:
            out.append(f"data.codec.decode={variant.decode}")
        return out
    model = f"{variant.family}_{backbone_suffix(base_model)}"
    valid = set(model_info(model).overrides)  # raises (with suggestions) if the family lacks this backbone
    kwargs = {k: v for k, v in (base_kwargs or {}).items() if k in valid and k not in ("output_stride", "final_bias")}
    if variant.output_stride != 32:
        kwargs["output_stride"] = variant.output_stride
    if variant.final_kernel is not None:
        kwargs["final_kernel"] = variant.final_kernel
    if variant.num_stages is not None:
        kwargs["num_stages"] = variant.num_stages
    if variant.family == "fasterpose" and variant.loss == "mse":
        kwargs["final_bias"] = 0.0  # the SubPixelHead default (-4.6) is the RCE prior; MSE regresses 0..1 from 0
    return [f"model.name={model}", f"model.kwargs={json.dumps(kwargs, sort_keys=True)}", f"loss.name={variant.loss}"]


def run_overrides(variant_ovr: list[str], seed: int, threads: int, epochs: int | None,
                  extra: Sequence[str] = (), device: str = "cpu") -> list[str]:
    """The full override list of one training run: variant + seed + protocol (+ user ``--opt``).

    On CPU runs are deterministic (``train.deterministic=true``); on CUDA the config's setting is kept (several
    CUDA backward kernels have no deterministic implementation, so GPU runs reproduce only within noise).
    """
    out = [*variant_ovr, f"train.seed={seed}", "train.val_every=1"]
    if device == "cpu":
        out.append("train.deterministic=true")
    out += [f"train.threads={threads}", "train.progress=never", "train.plot=false"]
    if epochs is not None:
        out.append(f"train.epochs={epochs}")
    return out + list(extra)


# ------------------------------------------------------------------------------------------------ runs


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """Records of a run's ``metrics.jsonl`` (empty list if missing)."""
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def metrics_complete(history: list[dict[str, Any]], epochs: int, metric: str = "AP") -> bool:
    """A finished run: ``epochs`` whole epochs, each validated (``metric`` present)."""
    return (len(history) == epochs and all(metric in r for r in history)
            and float(history[-1].get("epoch", 0)) == float(epochs))


def record_from_history(variant: str, seed: int, overrides: list[str], history: list[dict[str, Any]],
                        metric: str = "AP", **extra: Any) -> dict[str, Any]:
    """A run record: AP per epoch, final and best AP, training seconds (from the engine's metrics)."""
    curve = [float(r[metric]) for r in history if metric in r]
    return {"variant": variant, "seed": seed, "status": "ok", "overrides": overrides,
            "epochs": [float(r["epoch"]) for r in history if metric in r], "ap": curve,
            "final_ap": curve[-1] if curve else None, "best_ap": max(curve) if curve else None,
            "train_seconds": float(history[-1].get("train_seconds", 0.0)) if history else None, **extra}


def run_fingerprint(config: str, overrides: list[str]) -> str:
    """Hash of what a run trains: the resolved config (file contents + overrides) and the model's architecture.

    Part of the cache key, so editing the config file or a model default (e.g. a head's kernel) retrains
    instead of reusing a stale cached run.
    """
    import hashlib

    from fasterpose.engine.config import load_config
    from fasterpose.engine.trainer import build_model

    cfg = load_config(config, overrides)
    text = json.dumps(cfg.to_dict(), sort_keys=True, default=str) + repr(build_model(cfg, pretrained=False))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def train_run(config: str, variant: str, seed: int, overrides: list[str], run_dir: Path, epochs: int,
              device: str, threads: int) -> dict[str, Any]:
    """Train one (variant, seed) in a subprocess unless cached; return its record (``status`` ok/failed)."""
    record_path = run_dir / "run.json"
    request = {"config": config, "overrides": overrides, "fingerprint": run_fingerprint(config, overrides)}
    if record_path.is_file():
        rec = json.loads(record_path.read_text())
        if rec.get("status") == "ok" and rec.get("request") == request:
            logger.info("%s seed %d: cached (final AP %.4f)", variant, seed, rec["final_ap"])
            return rec
    req_path = run_dir / "request.json"
    if run_dir.exists() and (not req_path.is_file() or json.loads(req_path.read_text()) != request):
        logger.info("%s seed %d: settings changed, starting over in %s", variant, seed, run_dir)
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    req_path.write_text(json.dumps(request, indent=1))
    history = read_metrics(run_dir / "metrics.jsonl")
    cmd = [sys.executable, "-m", "fasterpose", "train", config, "--out", str(run_dir), "--device", device, "--json"]
    for o in overrides:
        cmd += ["--opt", o]
    if not metrics_complete(history, epochs):
        if (run_dir / "last.pt").is_file():
            cmd.append("--resume")
            logger.info("%s seed %d: resuming from %s", variant, seed, run_dir / "last.pt")
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        t0 = time.perf_counter()
        logger.info("%s seed %d: training (%s)", variant, seed, run_dir)
        with open(run_dir / "stdout.log", "a") as log:
            proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, check=False)
        wall = time.perf_counter() - t0
        history = read_metrics(run_dir / "metrics.jsonl")
        if proc.returncode != 0 or not metrics_complete(history, epochs):
            tail = (run_dir / "stdout.log").read_text().splitlines()[-5:]
            logger.error("%s seed %d FAILED (exit %d): %s", variant, seed, proc.returncode, " | ".join(tail))
            return {"variant": variant, "seed": seed, "status": "failed", "returncode": proc.returncode,
                    "log_tail": tail, "overrides": overrides, "request": request}
    else:
        wall = None
    rec = record_from_history(variant, seed, overrides, history, wall_seconds=wall, request=request,
                              command=" ".join(_quote(c) for c in cmd if c != "--resume"))
    record_path.write_text(json.dumps(rec, indent=1))
    logger.info("%s seed %d: final AP %.4f", variant, seed, rec["final_ap"])
    return rec


def _quote(s: str) -> str:
    return f"'{s}'" if any(ch in s for ch in " {}[],\"") else s


def reeval_run(variant: str, seed: int, base_dir: Path, decode_overrides: list[str], device: str,
               threads: int) -> dict[str, Any]:
    """Decode-only variant: evaluate ``base_dir/last.pt`` with a different codec (and, as a check, with its own).

    ``fasterpose eval`` always uses the checkpoint's stored codec, so the codec is rebuilt here from the stored
    one plus ``decode_overrides`` (``data.codec.decode=dark``).
    """
    import torch

    from fasterpose.checkpoint import load_checkpoint
    from fasterpose.codec import HeatmapCodec
    from fasterpose.engine.config import load_config
    from fasterpose.engine.inference import evaluate_dataset
    from fasterpose.engine.trainer import build_dataset
    from fasterpose.keypoints import get_keypoint_set
    from fasterpose.models import model_from_checkpoint

    torch.set_num_threads(threads)
    ckpt_path = base_dir / "last.pt"
    base_rec = json.loads((base_dir / "run.json").read_text())
    ckpt = load_checkpoint(ckpt_path)
    cfg = load_config(None, [], base=ckpt["config"])
    model, spec = model_from_checkpoint(ckpt)
    model = model.to(device)
    kset = get_keypoint_set(spec.keypoint_set)
    out: dict[str, Any] = {}
    for tag, ovr in (("own", []), ("new", decode_overrides)):
        codec_kwargs = dict(spec.codec)
        for o in ovr:
            key, value = o.split("=", 1)
            codec_kwargs[key.rsplit(".", 1)[-1]] = value
        codec = HeatmapCodec(**codec_kwargs)
        dataset = build_dataset(cfg, "val", codec)
        ev = cfg.eval
        stats = evaluate_dataset(model, dataset, codec, kset, activation=spec.heatmap_activation,
                                 flip_test=cfg.train.flip_test, batch_size=cfg.train.val_batch_size, workers=0,
                                 device=torch.device(device), rescore=ev.rescore,
                                 nms=None if ev.nms == "none" else ev.nms, nms_thr=ev.nms_thr, kpt_thr=ev.kpt_thr)
        out[tag] = float(stats[stats["metric"]])
    rec = {"variant": variant, "seed": seed, "status": "ok", "overrides": base_rec["overrides"] + decode_overrides,
           "epochs": [base_rec["epochs"][-1]], "ap": [out["new"]], "final_ap": out["new"], "best_ap": out["new"],
           "reevaluated_checkpoint": str(ckpt_path), "base_final_ap": base_rec["final_ap"],
           "base_reevaluated_ap": out["own"], "train_seconds": None, "wall_seconds": None}
    logger.info("%s seed %d: %s -> AP %.4f (own decode re-evaluated %.4f, at training %.4f)", variant, seed,
                ",".join(decode_overrides), out["new"], out["own"], base_rec["final_ap"])
    return rec


# ------------------------------------------------------------------------------------------------ statistics


def epochs_to_reach(epochs: Sequence[float], ap: Sequence[float], threshold: float) -> float | None:
    """First epoch whose AP is >= ``threshold`` (``None``: never reached)."""
    for e, v in zip(epochs, ap):
        if v >= threshold:
            return float(e)
    return None


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0 for one value)."""
    arr = np.asarray(values, dtype=float)
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else 0.0


def summarize_variant(records: Sequence[dict[str, Any]], threshold: float) -> dict[str, Any]:
    """Statistics over the seeds of one variant (only ``status == ok`` records)."""
    ok = [r for r in records if r.get("status") == "ok"]
    out: dict[str, Any] = {"n": len(ok), "failed_seeds": sorted(r["seed"] for r in records if r.get("status") != "ok")}
    if not ok:
        return out
    finals = [r["final_ap"] for r in ok]
    out["seeds"] = [r["seed"] for r in ok]
    out["final_ap"] = finals
    out["final_ap_mean"], out["final_ap_std"] = mean_std(finals)
    out["final_ap_min"], out["final_ap_max"] = float(min(finals)), float(max(finals))
    reach = [epochs_to_reach(r["epochs"], r["ap"], threshold) for r in ok]
    out["ap_threshold"] = threshold
    out["epochs_to_threshold"] = reach
    reached = [e for e in reach if e is not None]
    out["epochs_to_threshold_reached"] = len(reached)
    out["epochs_to_threshold_mean"] = float(np.mean(reached)) if reached else None
    if all(len(r["ap"]) > 1 for r in ok) and len({len(r["ap"]) for r in ok}) == 1:
        curves = np.asarray([r["ap"] for r in ok], dtype=float)
        out["curve_epochs"] = ok[0]["epochs"]
        out["curve_mean"] = curves.mean(0).tolist()
        out["curve_min"] = curves.min(0).tolist()
        out["curve_max"] = curves.max(0).tolist()
        aucs = curves.mean(1).tolist()  # mean AP over all epochs: the area under the AP curve / epochs
        out["ap_auc"] = aucs
        out["ap_auc_mean"], out["ap_auc_std"] = mean_std(aucs)
    secs = [r["train_seconds"] for r in ok if r.get("train_seconds")]
    out["train_seconds_mean"] = float(np.mean(secs)) if secs else None
    return out


def compare(a: dict[str, Any], b: dict[str, Any], key: str = "final_ap", paired: bool = False) -> dict[str, Any]:
    """Difference of means ``b - a`` of per-seed values ``key`` against the seed noise.

    Noise: standard error ``sqrt(s_a^2/n_a + s_b^2/n_b)`` (Welch), or of the per-seed differences when ``paired``
    (same seeds, same checkpoints, e.g. a decode-only change). ``p``: two-sided Welch (or paired) t-test. Verdict:
    ``"larger than seed noise"`` when ``|diff| > 2 SE`` and ``p < 0.05``; ``"within seed noise"`` when
    ``|diff| <= 1 SE``; ``"inconclusive"`` otherwise. With 3 seeds a t-test has 2-4 degrees of freedom: only large,
    consistent differences can pass, and a pass is still weak evidence.
    """
    xa, xb = np.asarray(a.get(key) or [], float), np.asarray(b.get(key) or [], float)
    if len(xa) < 2 or len(xb) < 2 or (paired and len(xa) != len(xb)):
        return {"diff": float(xb.mean() - xa.mean()) if len(xa) and len(xb) else None, "se": None, "p": None,
                "verdict": "not enough seeds"}
    diff = float(xb.mean() - xa.mean())
    if paired:
        d = xb - xa
        se = float(d.std(ddof=1) / math.sqrt(len(d)))
    else:
        se = float(math.sqrt(xa.var(ddof=1) / len(xa) + xb.var(ddof=1) / len(xb)))
    p = _t_test_p(xa, xb, paired)
    if se == 0.0:
        verdict = "within seed noise" if diff == 0 else "larger than seed noise"
    elif abs(diff) > 2 * se and (p is None or p < 0.05):
        verdict = "larger than seed noise"
    elif abs(diff) <= se:
        verdict = "within seed noise"
    else:
        verdict = "inconclusive"
    return {"diff": diff, "se": se, "p": p, "verdict": verdict, "paired": paired}


def _t_test_p(xa: np.ndarray, xb: np.ndarray, paired: bool) -> float | None:
    try:
        from scipy import stats
    except ImportError:  # scipy is optional; the SE rule still applies
        return None
    res = stats.ttest_rel(xb, xa) if paired else stats.ttest_ind(xb, xa, equal_var=False)
    return None if not np.isfinite(res.pvalue) else float(res.pvalue)


COMPARISONS = (
    ("claim 1, head: deconv -> sub-pixel (both MSE)", "a", "b", "final_ap", False),
    ("claim 2, loss: MSE -> RCE (sub-pixel), final AP", "b", "c", "final_ap", False),
    ("claim 2, loss: MSE -> RCE (sub-pixel), mean AP over epochs", "b", "c", "ap_auc", False),
    ("claim 3, SimpleBaseline -> FasterPose (head + loss)", "a", "c", "final_ap", False),
    ("feature stride 32 -> 16 (sub-pixel + RCE)", "c", "d16", "final_ap", False),
    ("SimpleBaseline -> FasterPose on the stride-16 feature", "a", "d16", "final_ap", False),
    ("sub-pixel conv 1x1 -> 3x3 (RCE)", "c_k1", "c", "final_ap", False),
    ("stride 16: layer4 dilated -> trunk cut after layer3", "d16", "d16_l3", "final_ap", False),
    ("codec MSRA -> UDP", "@base", "e_udp", "final_ap", False),
    ("decode quarter -> DARK (same checkpoints)", "@base", "e_dark", "final_ap", True),
)


def comparisons(summary: dict[str, dict[str, Any]], codec_base: str | None) -> list[dict[str, Any]]:
    """The pairwise comparisons of :data:`COMPARISONS` whose variants are in ``summary``."""
    out = []
    for name, va, vb, key, paired in COMPARISONS:
        va = codec_base if va == "@base" else va
        if va not in summary or vb not in summary:
            continue
        out.append({"comparison": name, "from": va, "to": vb, "metric": key, **compare(summary[va], summary[vb],
                                                                                       key, paired)})
    return out


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points (latency, AP) not dominated by another (lower-or-equal latency and higher-or-equal AP,
    one strictly), sorted by latency."""
    idx = []
    for i, (li, ai) in enumerate(points):
        dominated = any((lj <= li and aj >= ai) and (lj < li or aj > ai) for j, (lj, aj) in enumerate(points) if j != i)
        if not dominated:
            idx.append(i)
    return sorted(idx, key=lambda i: points[i][0])


# ------------------------------------------------------------------------------------------------ latency


def bench_models(variant_models: dict[str, tuple[str, dict[str, Any]]]) -> dict[str, str]:
    """Registered names for ``fasterpose.deploy.bench.run_benchmark`` (which builds models by name only).

    Architectures with ``create_model`` kwargs that change the graph (``output_stride``) get a process-local alias
    registered here (``<model>_os16``); ``final_bias`` only changes an initial value and is dropped.
    Returns ``{variant: bench model name}``.
    """
    from fasterpose.models import create_model
    from fasterpose.models.registry import _REGISTRY, model_info, register_model

    names = {}
    for key, (model, kwargs) in variant_models.items():
        kw = {k: v for k, v in kwargs.items() if k != "final_bias"}
        if not kw:
            names[key] = model
            continue
        alias = model + "".join(f"_os{v}" if k == "output_stride" else f"_{k}{v}" for k, v in sorted(kw.items()))
        if alias not in _REGISTRY:
            def build(num_keypoints: int = 17, _m: str = model, _kw: dict[str, Any] = kw, **ovr: Any) -> Any:
                return create_model(_m, num_keypoints=num_keypoints, **{**_kw, **ovr})

            build.__name__ = alias
            build.__doc__ = f"{model} with {kw} (ablation alias)"
            register_model(model_info(model).family, model_info(model).backbone)(build)
        names[key] = alias
    return names


def measure_latency(variant_models: dict[str, tuple[str, dict[str, Any]]], input_size: tuple[int, int],
                    threads: int, repeats: int) -> list[dict[str, Any]]:
    """One interleaved ``run_benchmark`` call (torch + onnxruntime fp32, batch 1) for every distinct architecture."""
    from fasterpose.deploy.bench import run_benchmark

    names = bench_models(variant_models)
    unique = list(dict.fromkeys(names.values()))
    rows = run_benchmark(unique, input_size=input_size, batch=1, threads=threads, repeats=repeats, warmup=10)
    for row in rows:
        row["variants"] = [k for k, n in names.items() if n == row["model"]]
    return rows


# ------------------------------------------------------------------------------------------------ report


def _fmt(x: float | None, spec: str = ".3f") -> str:
    return "-" if x is None else format(x, spec)


def make_table(summary: dict[str, dict[str, Any]], info: dict[str, dict[str, Any]], threshold: float) -> str:
    """Markdown table, one row per variant."""
    head = ("| variant | model | loss | stride | codec | params (M) | GMACs | ORT fp32 ms | final AP mean ± std (n) | "
            f"AP per seed | epochs to AP ≥ {threshold:g} (reached) | mean AP over epochs |")
    lines = [head, "|" + "|".join(["---"] * (head.count("|") - 1)) + "|"]
    for key, s in summary.items():
        i = info.get(key, {})
        if not s.get("n"):
            lines.append(f"| {key} | {i.get('model', '-')} | {i.get('loss', '-')} | - | - | - | - | - | failed | "
                         "- | - | - |")
            continue
        reach = (f"{_fmt(s['epochs_to_threshold_mean'], '.1f')} ({s['epochs_to_threshold_reached']}/{s['n']})"
                 if s.get("epochs_to_threshold_reached") else f"not reached (0/{s['n']})")
        if i.get("reeval"):
            reach = "n/a (re-evaluated)"
        per_seed = ", ".join(f"{v:.3f}" for v in s["final_ap"])
        auc = f"{s['ap_auc_mean']:.3f} ± {s['ap_auc_std']:.3f}" if "ap_auc_mean" in s else "-"
        lines.append(
            f"| {key} | {i.get('model', '-')} | {i.get('loss', '-')} | {i.get('stride', '-')} | "
            f"{i.get('codec', '-')} | "
            f"{_fmt(i.get('params_m'), '.2f')} | {_fmt(i.get('gmacs'), '.3f')} | {_fmt(i.get('ort_ms'), '.2f')} | "
            f"{s['final_ap_mean']:.3f} ± {s['final_ap_std']:.3f} ({s['n']}) | {per_seed} | {reach} | {auc} |")
    return "\n".join(lines)


def comparison_table(rows: Sequence[dict[str, Any]]) -> str:
    """Markdown table of :func:`comparisons`."""
    lines = ["| comparison | from → to | metric | Δ (to − from) | SE | p (t-test) | verdict |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        p = "-" if r["p"] is None else f"{r['p']:.3f}"
        se = "-" if r["se"] is None else f"{r['se']:.3f}"
        diff = "-" if r["diff"] is None else f"{r['diff']:+.3f}"
        test = " (paired)" if r.get("paired") else ""
        lines.append(f"| {r['comparison']} | {r['from']} → {r['to']} | {r['metric']} | {diff} | {se} | {p}{test} | "
                     f"{r['verdict']} |")
    return "\n".join(lines)


def plot_curves(summary: dict[str, dict[str, Any]], path: Path, threshold: float) -> None:
    """AP against epoch: mean line and min/max band over seeds, per trained variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for key, s in summary.items():
        if "curve_mean" not in s:
            continue
        ep = s["curve_epochs"]
        (line,) = ax.plot(ep, s["curve_mean"], marker="o", ms=3, label=f"{key}: {VARIANTS[key].label}")
        ax.fill_between(ep, s["curve_min"], s["curve_max"], color=line.get_color(), alpha=0.15)
    ax.axhline(threshold, color="grey", ls=":", lw=1)
    ax.set_xlabel("epoch")
    ax.set_ylabel("AP (held-out split)")
    ax.set_title("AP after every epoch: mean over seeds, band = min..max")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_pareto(summary: dict[str, dict[str, Any]], info: dict[str, dict[str, Any]], path: Path) -> None:
    """Final AP (mean ± std) against onnxruntime fp32 latency, with the Pareto front."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k, s in summary.items() if s.get("n") and info.get(k, {}).get("ort_ms") is not None]
    pts = [(info[k]["ort_ms"], summary[k]["final_ap_mean"]) for k in keys]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for k, (lat, ap) in zip(keys, pts):
        ax.errorbar(lat, ap, yerr=summary[k]["final_ap_std"], fmt="o", capsize=3)
        ax.annotate(k, (lat, ap), textcoords="offset points", xytext=(5, 4), fontsize=9)
    front = pareto_front(pts)
    if front:
        ax.plot([pts[i][0] for i in front], [pts[i][1] for i in front], "k--", lw=1, label="Pareto front")
        ax.legend(fontsize=8)
    ax.set_xlabel("onnxruntime fp32 latency per crop, 1 thread, batch 1 (ms)")
    ax.set_ylabel("final AP (mean ± std over seeds)")
    ax.set_title("Accuracy against latency")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ------------------------------------------------------------------------------------------------ main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="ablation_synthetic_r18", help="base config: path or shipped name")
    p.add_argument("--variants", default=",".join(DEFAULT_VARIANTS), help="comma-separated, of: " + ", ".join(VARIANTS))
    p.add_argument("--seeds", default="0,1,2", help="comma-separated training seeds")
    p.add_argument("--epochs", type=int, default=None, help="override train.epochs (default: the config's)")
    p.add_argument("--opt", action="append", default=[], metavar="KEY=VALUE",
                   help="extra override applied to every run (e.g. a smaller dataset for a smoke test)")
    p.add_argument("--codec-base", default="c", help="variant the codec variants modify (a, b, c, c_k1, d16 or auto)")
    p.add_argument("--ap-threshold", type=float, default=0.5, help="AP threshold of 'epochs to reach'")
    p.add_argument("--out", default="docs/results", help="folder of the results (json, table, plots)")
    p.add_argument("--work-dir", default="runs/ablation", help="folder of the run folders (checkpoints, logs)")
    p.add_argument("--jobs", type=int, default=1, help="training runs in parallel")
    p.add_argument("--threads", type=int, default=1, help="torch threads per run (and for the latency bench)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--latency", choices=["auto", "measure", "skip"], default="auto",
                   help="auto: reuse <out>/latency.json when it covers the variants, else measure")
    p.add_argument("--latency-repeats", type=int, default=50)
    p.add_argument("--report-only", action="store_true", help="no training: summarise the cached runs")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    args = parse_args(argv)
    from fasterpose.engine.config import find_config, load_config

    config_path = str(find_config(args.config))
    keys = [k.strip() for k in args.variants.split(",") if k.strip()]
    unknown = [k for k in keys if k not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variant(s) {', '.join(unknown)}; known: {', '.join(VARIANTS)}")
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    base_cfg = load_config(config_path, list(args.opt))
    epochs = args.epochs or base_cfg.train.epochs
    out, work = Path(args.out), Path(args.work_dir)
    out.mkdir(parents=True, exist_ok=True)
    t_study = time.perf_counter()

    def overrides_of(v: Variant, codec_base: Variant | None = None) -> list[str]:
        return variant_overrides(v, base_cfg.model.name, base_cfg.model.kwargs, codec_base)

    def run_dir(key: str, seed: int, codec_base: str | None = None) -> Path:
        return work / (f"{key}-on-{codec_base}" if codec_base and VARIANTS[key].family is None else key) / f"seed{seed}"

    def train_variant_seed(key: str, seed: int, codec_base: str | None = None) -> dict[str, Any]:
        v = VARIANTS[key]
        cb = VARIANTS[codec_base] if codec_base else None
        ovr = run_overrides(overrides_of(v, cb), seed, args.threads, args.epochs, args.opt, args.device)
        d = run_dir(key, seed, codec_base)
        if args.report_only:
            p = d / "run.json"
            return json.loads(p.read_text()) if p.is_file() else {"variant": key, "seed": seed, "status": "missing"}
        return train_run(config_path, key, seed, ovr, d, epochs, args.device, args.threads)

    # ---- training runs. Seed-major order (every variant gets seed 0 before any gets seed 1), so that an
    # interrupted study has all variants at fewer seeds; the costliest variants first within a seed.
    trained = [k for k in keys if VARIANTS[k].family is not None]
    codec_keys = [k for k in keys if VARIANTS[k].family is None]
    codec_base = args.codec_base if codec_keys else None
    if codec_base not in (None, "auto") and (codec_base not in VARIANTS or VARIANTS[codec_base].family is None):
        raise SystemExit(f"--codec-base must be one of a, b, c, c_k1, d16 or auto; got {codec_base}")
    if codec_base not in (None, "auto") and codec_base not in trained:
        trained.insert(0, codec_base)  # the codec variants need the base's runs (cached or trained now)
        keys.insert(0, codec_base)
    cost = {"d16": 0, "a": 1, "e_udp": 2}

    def run_all(todo: list[tuple[str, int, str | None]]) -> list[dict[str, Any]]:
        todo = sorted(todo, key=lambda t: (seeds.index(t[1]), cost.get(t[0], 3)))
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            return list(pool.map(lambda t: train_variant_seed(*t), todo))

    codec_train = [k for k in codec_keys if not VARIANTS[k].reeval]
    todo = [(k, s, None) for k in trained for s in seeds]
    if codec_base not in (None, "auto"):
        todo += [(k, s, codec_base) for k in codec_train for s in seeds]
    records: list[dict[str, Any]] = run_all(todo)
    if codec_base == "auto":  # resolved from this study's results, then the codec variants are trained
        cands = {}
        for k in ("a", "b", "c", "d16"):
            recs = [r for r in records if r["variant"] == k and r.get("status") == "ok"]
            if recs:
                cands[k] = float(np.mean([r["final_ap"] for r in recs]))
        if not cands:
            raise SystemExit("--codec-base auto needs trained variants among a, b, c, d16 in the same study")
        codec_base = max(cands, key=cands.get)
        logger.info("codec base (auto, best final mean AP): %s (%s)", codec_base, cands)
        records += run_all([(k, s, codec_base) for k in codec_train for s in seeds])
    for k in codec_keys:  # decode-only variants: re-evaluate the codec base's final checkpoints
        if not VARIANTS[k].reeval:
            continue
        dec = [f"data.codec.decode={VARIANTS[k].decode}"] if VARIANTS[k].decode else []
        for s in seeds:
            base_rec = next((r for r in records if r["variant"] == codec_base and r["seed"] == s), None)
            if base_rec is None or base_rec.get("status") != "ok":
                records.append({"variant": k, "seed": s, "status": "failed", "reason": "no base checkpoint"})
                continue
            records.append(reeval_run(k, s, run_dir(codec_base, s), dec, args.device, args.threads))

    # ---- statistics
    summary = {k: summarize_variant([r for r in records if r["variant"] == k], args.ap_threshold) for k in keys}
    comps = comparisons(summary, codec_base)

    # ---- complexity and latency (one interleaved bench call for the distinct architectures)
    info: dict[str, dict[str, Any]] = {}
    variant_models = {}
    for k in keys:
        v = VARIANTS[k]
        ref = VARIANTS[codec_base] if v.family is None else v
        ovr = overrides_of(ref)
        model = ovr[0].split("=", 1)[1]
        kwargs = json.loads(ovr[1].split("=", 1)[1])
        variant_models[k] = (model, kwargs)
        codec = ("UDP" if v.unbiased or (v.unbiased is None and base_cfg.data.codec.unbiased) else "MSRA") + ", " + (
            v.decode or base_cfg.data.codec.decode)
        info[k] = {"model": model, "loss": ref.loss, "stride": kwargs.get("output_stride", 32), "codec": codec,
                   "reeval": v.reeval, "label": v.label}
    lat_path = out / "latency.json"
    rows: list[dict[str, Any]] = []
    if args.latency != "skip":
        cached = json.loads(lat_path.read_text()) if lat_path.is_file() else None
        wanted = sorted(set(bench_models(variant_models).values()))
        if (args.latency == "auto" and cached and sorted({r["model"] for r in cached}) == wanted
                and cached[0]["input_size"] == list(base_cfg.data.input_size)):
            rows = cached
        else:
            logger.info("measuring latency of %s at %s", ", ".join(wanted), base_cfg.data.input_size)
            rows = measure_latency(variant_models, tuple(base_cfg.data.input_size), args.threads,
                                   args.latency_repeats)
            lat_path.write_text(json.dumps(rows, indent=1))
        names = bench_models(variant_models)
        for k in keys:
            for r in rows:
                if r["model"] == names[k]:
                    info[k]["params_m"] = r["params"] / 1e6
                    info[k]["gmacs"] = r["gmacs"]
                    info[k]["ort_ms" if r["backend"] == "onnxruntime" else "torch_ms"] = r["median_ms"]

    # ---- outputs
    (out / "runs.json").write_text(json.dumps(records, indent=1))
    table = make_table(summary, info, args.ap_threshold)
    comp_table = comparison_table(comps)
    (out / "table.md").write_text(table + "\n\n" + comp_table + "\n")
    settings = {"config": config_path, "variants": keys, "seeds": seeds, "epochs": epochs, "extra_overrides": args.opt,
                "codec_base": codec_base, "ap_threshold": args.ap_threshold, "threads": args.threads,
                "jobs": args.jobs, "device": args.device, "argv": sys.argv,
                "study_wall_seconds": round(time.perf_counter() - t_study, 1)}
    (out / "summary.json").write_text(json.dumps({"settings": settings, "variants": summary, "info": info,
                                                  "comparisons": comps}, indent=1))
    plot_curves(summary, out / "ap_vs_epoch.png", args.ap_threshold)
    if any("ort_ms" in i for i in info.values()):
        plot_pareto(summary, info, out / "ap_vs_latency.png")
    print(table)
    print()
    print(comp_table)
    return 0 if all(r.get("status") == "ok" for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
