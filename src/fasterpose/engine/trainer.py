"""The training loop: one function, :func:`train`, that reads top to bottom.

setup (devices, process group, seeds) -> data -> model (pretrained backbone, SyncBN/frozen BN, DDP) -> optimizer
-> resume -> for each epoch: for each batch: lr from the schedule function, forward, loss, NaN check, backward,
step, mid-epoch checkpoint -> end of epoch: metrics, validation, ``last.pt`` / ``best.pt``, curves.

Exact resume: every source of randomness is a function of ``(seed, epoch, index)`` (data order: the
:class:`~fasterpose.engine.distributed.ShardedBatchSampler`; augmentation: the dataset's per-sample generators) or is
saved in the checkpoint (python/numpy/torch RNG states), the learning rate is a pure function of the iteration,
and a checkpoint records how many batches of the current epoch were consumed. So on CPU with
``train.deterministic`` a run killed at any moment and resumed from ``last.pt`` ends with the same parameters as
an uninterrupted one (``tests/test_resume.py``).
"""

from __future__ import annotations

import contextlib
import csv
import difflib
import io
import json
import logging
import math
import os
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..checkpoint import load_checkpoint, save_checkpoint
from ..codec import HeatmapCodec
from ..errors import CheckpointError, ConfigError, DataError, FasterPoseError
from ..io_utils import WRITTEN_MANIFEST, atomic_path, atomic_write_text, exclusive_folder
from ..keypoints import KeypointSet
from ..keypoints.config import apply_flip_choice, resolve_keypoint_set
from ..spec import PoseSpec
from . import distributed as D
from .checks import check_finite_weights, check_training_data
from .config import Config, save_config
from .inference import collate, evaluate_dataset, unwrap
from .schedule import lr_factor, warmup_length

logger = logging.getLogger(__name__)


class TrainingDivergedError(FasterPoseError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass
class TrainResult:
    """What :func:`train` returns (on every rank)."""

    out_dir: Path
    epochs: int
    iterations: int
    train_seconds: float
    best_ap: float
    final_stats: dict[str, Any] | None
    history: list[dict[str, Any]] = field(default_factory=list)
    cpu_bf16: bool = False


# ------------------------------------------------------------------------------------------------ builders


def build_codec(cfg: Config) -> HeatmapCodec:
    c = cfg.data.codec
    return HeatmapCodec(cfg.data.input_size, sigma=c.sigma, unbiased=c.unbiased, decode=c.decode,
                        dark_kernel=c.dark_kernel)


def build_spec(cfg: Config, codec: HeatmapCodec | None = None, keypoint_set: KeypointSet | None = None,
               category_id: int | None = None) -> PoseSpec:
    """The inference description stored in every checkpoint (``keypoint_set``: the resolved set, default: resolved
    from ``cfg``; ``category_id``: the training file's keypoint category, which ``predict`` writes in its results)."""
    codec = codec or build_codec(cfg)
    kset = keypoint_set or resolve_keypoint_set(cfg)
    return PoseSpec(model_name=cfg.model.name, input_size=cfg.data.input_size, keypoint_set=kset,
                    model_kwargs=dict(cfg.model.kwargs), codec=codec.to_dict(),
                    heatmap_activation="sigmoid" if cfg.loss.name == "rce" else "identity",
                    flip_test=cfg.eval.flip_test, category_id=category_id)


def build_model(cfg: Config, pretrained: bool = True, keypoint_set: KeypointSet | None = None) -> torch.nn.Module:
    from ..models import create_model

    num_keypoints = (keypoint_set or resolve_keypoint_set(cfg)).num_keypoints
    weights = cfg.model.pretrained if pretrained else None
    if weights and weights != "imagenet":
        if not Path(weights).expanduser().is_file():
            raise ConfigError(f"model.pretrained: {weights} does not exist; set it to 'imagenet' (torchvision's "
                              f"ImageNet weights, downloaded once), or --opt model.pretrained=null")
        weights = str(Path(weights).expanduser())
    model = create_model(cfg.model.name, num_keypoints=num_keypoints, pretrained=weights, **cfg.model.kwargs)
    stride = getattr(model, "feature_stride", 1)
    h, w = cfg.data.input_size
    if h % stride or w % stride:
        fit = ",".join(str(max(stride, int(v / stride + 0.5) * stride)) for v in (h, w))
        raise ConfigError(f"data.input_size {h}x{w}: {cfg.model.name} has a stride-{stride} feature map, so both "
                          f"sides must be multiples of {stride} (heatmaps are input / 4 only then); e.g. "
                          f"--opt 'data.input_size=[{fit}]'")
    return model


def build_loss(cfg: Config) -> torch.nn.Module:
    from ..losses import MSELoss, RCELoss

    if cfg.loss.name == "rce":
        if cfg.loss.ohkm:
            raise ConfigError("loss.ohkm is only implemented for loss.name: mse")
        return RCELoss()
    return MSELoss(ohkm=cfg.loss.ohkm)


def _need_file(path: str | None, key: str, what: str) -> Path:
    if not path:
        raise ConfigError(f"{key} is not set; give the {what} (e.g. --opt {key}=PATH)")
    p = Path(path).expanduser()
    if not p.exists():
        raise ConfigError(f"{key}: {p} does not exist; download the dataset or set --opt {key}=PATH")
    return p


def synthetic_split(cfg: Config, split: str) -> dict[str, Any]:
    """Generate (once, cached) the synthetic ``train`` or ``val`` split of ``cfg.data.synthetic``."""
    from ..data.synthetic import SynthConfig, ensure_synthetic_dataset

    s = cfg.data.synthetic
    n, seed = (s.train_images, s.train_seed) if split == "train" else (s.val_images, s.val_seed)
    cache = Path(s.cache_dir).expanduser() if s.cache_dir else None
    if cache is not None:
        from ..io_utils import check_writable_folder

        # a file on the way is an error; a read-only cache is fine while it already holds the split
        check_writable_folder(cache, f"data.synthetic.cache_dir={s.cache_dir}", writable=False)
    generator = None if s.difficulty == "default" else SynthConfig.preset(s.difficulty)
    if s.generator:
        known = set(SynthConfig.__dataclass_fields__)
        unknown = sorted(set(s.generator) - known)
        if unknown:
            close = difflib.get_close_matches(unknown[0], known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(sorted(known))}"
            raise ConfigError(f"data.synthetic.generator: unknown generator setting {unknown[0]!r}{hint}")
        kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in s.generator.items()}
        try:
            generator = replace(generator or SynthConfig(), **kwargs)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"data.synthetic.generator: {e}") from None
    return ensure_synthetic_dataset(cache, split, num_images=n, seed=seed, size=s.image_size, config=generator)


def build_dataset(cfg: Config, split: str, codec: HeatmapCodec | None = None, boxes: str | None = None,
                  keypoint_set: KeypointSet | None = None) -> Dataset:
    """The ``"train"`` (augmented) or ``"val"`` (person boxes from ``boxes`` / ``cfg.eval.boxes``) dataset of
    ``keypoint_set`` (default: resolved from ``cfg``)."""
    from ..data import CocoKeypoints

    codec = codec or build_codec(cfg)
    train = split == "train"
    boxes = boxes or cfg.eval.boxes
    if boxes != "gt":
        boxes = str(_need_file(boxes, "eval.boxes", "person detection json"))
    common = {"input_size": cfg.data.input_size, "codec": codec, "train": train,
              "keypoint_set": keypoint_set or resolve_keypoint_set(cfg), "seed": cfg.train.seed}
    if train:
        common["augment"] = cfg.data.augment
    if cfg.data.dataset == "synthetic":
        info = synthetic_split(cfg, split)
        return CocoKeypoints(info["annotations"], info["images"], boxes="gt" if train else boxes,
                             det_score_thr=cfg.eval.det_score_thr, **common)
    ann_key, img_key = ("data.train_ann", "data.train_images") if train else ("data.val_ann", "data.val_images")
    ann = _need_file(getattr(cfg.data, ann_key.split(".")[1]), ann_key, "annotation file")
    images = getattr(cfg.data, img_key.split(".")[1])
    if images:
        images = _need_file(images, img_key, "image folder")
    if cfg.data.dataset == "coco":
        return CocoKeypoints(ann, images, boxes="gt" if train else boxes, det_score_thr=cfg.eval.det_score_thr,
                             category=cfg.data.keypoint_category, **common)
    from ..data import MPIIDataset

    mat = None if train or not cfg.data.val_gt_mat else _need_file(cfg.data.val_gt_mat, "data.val_gt_mat",
                                                                    "MPII gt_valid.mat")
    return MPIIDataset(ann, images, gt_valid_mat=mat, **common)


def build_optimizer(cfg: Config, model: torch.nn.Module) -> torch.optim.Optimizer:
    o = cfg.optim
    params = [p for p in model.parameters() if p.requires_grad]
    if o.name == "adam":
        return torch.optim.Adam(params, lr=o.lr, weight_decay=o.weight_decay)
    if o.name == "adamw":
        return torch.optim.AdamW(params, lr=o.lr, weight_decay=o.weight_decay)
    return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay, nesterov=False)


def freeze_batchnorm(model: torch.nn.Module) -> None:
    """Put every BatchNorm layer in eval mode (running statistics are used and not updated)."""
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.eval()


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def configure_torch(cfg: Config, device: torch.device) -> None:
    """Threads, determinism and seeds (the same on every rank, so that all ranks build the same model)."""
    # Subnormal floats (tiny weights and gradients) are processed far slower by x86 CPUs; flushing them to zero is
    # the usual CPU setting and does not change results measurably.
    torch.set_flush_denormal(True)
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    if cfg.train.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    random.seed(cfg.train.seed)
    np.random.seed(cfg.train.seed)
    torch.manual_seed(cfg.train.seed)


def resolve_output_dir(cfg: Config, out: str | os.PathLike | None) -> Path:
    return Path(out).expanduser() if out else Path(cfg.train.output_dir.replace("{name}", cfg.name)).expanduser()


def all_finite(model: torch.nn.Module) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in model.state_dict().values() if t.is_floating_point())


# ------------------------------------------------------------------------------------------------ train


def train(cfg: Config, out: str | os.PathLike | None = None, resume: str | os.PathLike | bool | None = None,
          device: str | None = None, on_iteration: Callable[[int], None] | None = None) -> TrainResult:
    """Train ``cfg``; single process, or one rank of a torchrun/DDP job.

    Args:
        cfg: the resolved config.
        out: run folder (default ``cfg.train.output_dir``).
        resume: a checkpoint to continue from, or ``True`` for ``<out>/last.pt``.
        device: ``"cpu"``, ``"cuda"`` or ``None`` (CUDA if available).
        on_iteration: called with the global iteration count at the end of every iteration (after the optimizer
            step and any mid-epoch checkpoint); tests use it to simulate a crash.

    Returns:
        A :class:`TrainResult`. Files in the run folder: ``config.yaml``, ``last.pt``, ``best.pt``,
        ``metrics.jsonl``, ``metrics.csv``, ``curves.png``, ``val_results.json``, ``train.log``.

    Raises:
        TrainingDivergedError: NaN/inf loss (``last.pt`` is left as the last good checkpoint).
    """
    # ---- setup
    dist_info = D.setup(device)
    dev = dist_info.device
    main = dist_info.is_main
    configure_torch(cfg, dev)
    out_dir = resolve_output_dir(cfg, out)
    resume_path = (out_dir / "last.pt") if resume is True else (Path(resume) if resume else None)
    if resume_path is not None and not resume_path.is_file():
        raise CheckpointError(f"--resume: checkpoint {resume_path} does not exist")
    keypoint_set = resolve_keypoint_set(cfg)
    cfg = apply_flip_choice(cfg, keypoint_set)  # saved below with the flips it actually uses
    if resume_path is not None:
        _check_resume_fits(cfg, resume_path, keypoint_set)  # before anything in the run folder is touched
    check_training_data(cfg)  # check-data's checks, before anything is written
    use_amp = cfg.train.amp and dev.type == "cuda"
    cpu_bf16 = dev.type == "cpu" and cpu_bf16_enabled(cfg.train.cpu_amp)
    log_handler = None
    created = main and not out_dir.exists()
    hold = contextlib.ExitStack()  # rank 0 holds the run folder: a second run into it is refused, not mixed in
    failed = True
    try:
        if main:
            out_dir.mkdir(parents=True, exist_ok=True)
            hold.enter_context(exclusive_folder(out_dir, "train"))
            save_config(cfg, out_dir / "config.yaml")
            log_handler = logging.FileHandler(out_dir / "train.log")
            log_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
            logging.getLogger("fasterpose").addHandler(log_handler)
        else:  # rank 0 logs for everyone
            logging.getLogger("fasterpose").setLevel(logging.WARNING)
        result = _train(cfg, keypoint_set, out_dir, resume_path, dist_info, use_amp, on_iteration, cpu_bf16)
        failed = False
        return result
    finally:
        if log_handler is not None:
            logging.getLogger("fasterpose").removeHandler(log_handler)
            log_handler.close()
        hold.close()
        if failed and created:
            _remove_run_without_checkpoint(out_dir)


# What a run writes besides its checkpoints: a folder holding only these is a run that failed before its first one.
_RUN_FILES = ("config.yaml", "train.log", "metrics.jsonl", "metrics.csv", "curves.png", "val_results.json",
              WRITTEN_MANIFEST)


def _remove_run_without_checkpoint(out_dir: Path) -> None:
    """Remove the run folder this run created, when it failed (or was interrupted) before writing a checkpoint:
    nothing in it could be resumed or used, and an empty run would only stand in the way of the next one."""
    try:
        names = {p.name for p in out_dir.iterdir()}
    except OSError:
        return
    if not names <= set(_RUN_FILES):
        return  # a checkpoint (or a file of the user's) is there: keep everything
    for name in names:
        with contextlib.suppress(OSError):
            (out_dir / name).unlink()
    with contextlib.suppress(OSError):
        out_dir.rmdir()


def _check_resume_fits(cfg: Config, resume_path: Path, keypoint_set: KeypointSet) -> None:
    """The checkpoint to resume must hold the model the config builds and leave epochs to train; say what is wrong
    before anything in the run folder is written."""
    from ..checkpoint import load_checkpoint

    ckpt = load_checkpoint(resume_path)
    if "optimizer" not in ckpt:
        raise CheckpointError(f"{resume_path} is an inference-only checkpoint (no optimizer state); it cannot be "
                              "resumed. Start a new run with --out NEW_FOLDER; nothing was written")
    theirs_set = PoseSpec.from_dict(ckpt["spec"]).keypoint_set
    if theirs_set != keypoint_set:
        raise ConfigError(f"--resume {resume_path}: the checkpoint predicts keypoint set {theirs_set.name!r} "
                          f"({theirs_set.num_keypoints} keypoints) but the config gives {keypoint_set.name!r} "
                          f"({keypoint_set.num_keypoints} keypoints); resume with the run's own config or start a new "
                          "run with --out NEW_FOLDER; nothing was written")
    have = build_model(cfg, pretrained=False, keypoint_set=keypoint_set).state_dict()
    theirs = ckpt.get("model") or {}
    missing = [k for k in have if k not in theirs]
    mismatched = [k for k in have if k in theirs and tuple(theirs[k].shape) != tuple(have[k].shape)]
    if missing or mismatched or len(theirs) != len(have):
        spec = ckpt.get("spec") or {}
        raise ConfigError(f"--resume {resume_path}: the checkpoint holds {spec.get('model_name', 'another model')} "
                          f"{spec.get('model_kwargs', '')} but the config builds {cfg.model.name} {cfg.model.kwargs}"
                          f" ({len(missing)} missing and {len(mismatched)} differently shaped weights). Resume with "
                          f"the run's own config (omit CONFIG: fasterpose train --resume {resume_path}) or start a "
                          "new run with --out NEW_FOLDER; nothing was written")
    done = int(ckpt.get("epoch", 0))  # epochs completed; a partly trained next one continues while done < epochs
    if cfg.train.epochs <= done:
        asked = (f"train.epochs={cfg.train.epochs} asks for no more than that" if cfg.train.epochs == done else
                 f"train.epochs={cfg.train.epochs} asks for fewer")
        raise ConfigError(f"--resume {resume_path}: the run already trained {done} epochs and {asked}, so there is "
                          "nothing to train. To train more, resume with a higher train.epochs: fasterpose train "
                          f"--resume {resume_path} --opt train.epochs={done + 10} (for 10 more); nothing was written")


def cpu_bf16_enabled(mode: str) -> bool:
    """Whether ``train.cpu_amp`` (``off`` / ``bf16`` / ``auto``) turns on bfloat16 autocast on this CPU.

    ``auto`` means: only where the CPU executes bf16 natively (AVX512-BF16 or AMX, :func:`fasterpose.cpu.native_bf16`).
    oneDNN also accepts bf16 on AVX-512 CPUs without it (``_is_mkldnn_bf16_supported()`` is true there) but emulates
    it: ResNet-18 training steps measured 4x slower than fp32 on such a Xeon, so that is not a reason to use it.
    """
    from ..cpu import cpu_class, native_bf16

    if mode == "off":
        return False
    native = native_bf16() and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    if mode == "bf16" and not native:
        logger.warning("train.cpu_amp=bf16 on a CPU without native bf16 (%s): bf16 is emulated there and measured "
                       "about 4x slower than fp32; use train.cpu_amp=auto or off", cpu_class())
    if mode == "auto" and native:
        logger.info("bfloat16 autocast on CPU (train.cpu_amp=auto; this CPU has native bf16)")
    return mode == "bf16" or native


def _train(cfg: Config, keypoint_set: KeypointSet, out_dir: Path, resume_path: Path | None, dist_info: D.DistInfo,
           use_amp: bool,
           on_iteration: Callable[[int], None] | None, cpu_bf16: bool = False) -> TrainResult:
    dev, main, world = dist_info.device, dist_info.is_main, dist_info.world_size
    t_cfg = cfg.train

    # ---- data
    codec = build_codec(cfg)
    if main:  # rank 0 generates/caches the synthetic data first, the others then find it complete
        train_set = build_dataset(cfg, "train", codec, keypoint_set=keypoint_set)
    D.barrier()
    if not main:
        train_set = build_dataset(cfg, "train", codec, keypoint_set=keypoint_set)
    spec = build_spec(cfg, codec, keypoint_set, category_id=getattr(train_set, "category_id", None))
    val_set = None
    if t_cfg.val_every > 0:
        if main:
            val_set = build_dataset(cfg, "val", codec, keypoint_set=keypoint_set)
        D.barrier()
        if not main:
            val_set = build_dataset(cfg, "val", codec, keypoint_set=keypoint_set)
        if len(val_set) == 0:  # found now, not after the whole training time was spent
            source = "the synthetic val split" if cfg.data.dataset == "synthetic" else cfg.data.val_ann
            raise DataError(f"the validation set ({source}) has no persons "
                            "to evaluate (no annotations with keypoints, or no boxes above eval.det_score_thr); fix "
                            "data.val_ann / eval.boxes, or train without validation: --opt train.val_every=0")
    sampler = D.ShardedBatchSampler(len(train_set), t_cfg.batch_size, rank=dist_info.rank, world_size=world,
                                    seed=t_cfg.seed, shuffle=True, drop_last=True)
    iters_per_epoch = sampler.batches_per_epoch
    if iters_per_epoch == 0:
        raise ConfigError(f"train.batch_size {t_cfg.batch_size} x {world} process(es) is larger than the training "
                          f"set ({len(train_set)} persons); lower train.batch_size")
    logger.info("training set: %d persons, %d iterations/epoch (global batch %d = %d x %d)", len(train_set),
                iters_per_epoch, t_cfg.batch_size * world, t_cfg.batch_size, world)

    # ---- model, loss, optimizer
    model = build_model(cfg, pretrained=resume_path is None, keypoint_set=keypoint_set).to(dev)
    memory_format = torch.channels_last if t_cfg.channels_last else torch.contiguous_format
    if t_cfg.channels_last:
        model = model.to(memory_format=memory_format)
    if t_cfg.sync_bn and world > 1:
        if dev.type == "cuda":
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        else:
            logger.warning("train.sync_bn needs CUDA (torch's SyncBatchNorm); on CPU BatchNorm statistics stay "
                           "per-process (use train.freeze_bn for identical results across world sizes)")
    criterion = build_loss(cfg)
    optimizer = build_optimizer(cfg, model)
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    warmup_iters = warmup_length(cfg.optim, iters_per_epoch)

    # ---- resume
    start_epoch, start_batch, step, best_ap, history = 0, 0, 0, -1.0, []
    train_seconds, loss_sum, loss_count = 0.0, 0.0, 0
    if resume_path is not None:
        ckpt = load_checkpoint(resume_path, map_location=dev)
        unwrap(model).load_state_dict(ckpt["model"])
        if "optimizer" not in ckpt:
            raise CheckpointError(f"{resume_path} is an inference-only checkpoint (no optimizer state); "
                                  "it cannot be resumed")
        optimizer.load_state_dict(ckpt["optimizer"])
        if ckpt.get("scaler"):
            scaler.load_state_dict(ckpt["scaler"])
        start_epoch, step, best_ap = int(ckpt["epoch"]), int(ckpt["step"]), float(ckpt.get("best_ap", -1.0))
        history = list(ckpt.get("history", []))
        s = ckpt.get("sampler", {})
        consumed = int(s.get("samples_in_epoch", 0))
        start_batch = consumed // (t_cfg.batch_size * world)
        if consumed != start_batch * t_cfg.batch_size * world or s.get("seed", t_cfg.seed) != t_cfg.seed:
            logger.warning("resuming with a different global batch or seed than the checkpoint: the rest of this "
                           "epoch will not follow the original data order exactly")
        train_seconds = float(ckpt.get("train_seconds", 0.0))
        loss_sum, loss_count = float(ckpt.get("loss_sum", 0.0)), int(ckpt.get("loss_count", 0))
        if ckpt.get("rng"):
            set_rng_state(ckpt["rng"])
        logger.info("resumed from %s: epoch %d, batch %d of %d, iteration %d", resume_path, start_epoch,
                    start_batch, iters_per_epoch, step)
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)

    def checkpoint(path: Path, epoch: int, batches_done: int) -> None:
        """Save the full training state (rank 0). ``epoch`` = epochs completed, ``batches_done`` in the next."""
        check_finite_weights(unwrap(model), path, step)  # every rank (same weights): an error, never a checkpoint
        if not main:
            return
        save_checkpoint(path, {
            "spec": spec, "model": unwrap(model).state_dict(), "config": cfg.to_dict(),
            "epoch": epoch, "step": step, "best_ap": best_ap, "optimizer": optimizer.state_dict(),
            "scheduler": {"type": "function", "iteration": step, "warmup_iters": warmup_iters,
                          "lr": optimizer.param_groups[0]["lr"]},
            "scaler": scaler.state_dict(), "rng": rng_state(),
            "sampler": {"seed": t_cfg.seed, "epoch": epoch, "samples_in_epoch": batches_done * t_cfg.batch_size * world,
                        "world_size": world},
            "history": history, "train_seconds": train_seconds, "loss_sum": loss_sum, "loss_count": loss_count,
        })

    # ---- loop
    show_bar = main and (t_cfg.progress == "always" or (t_cfg.progress == "auto" and sys.stderr.isatty()))
    budget = t_cfg.time_budget_s
    stop = False
    epoch = start_epoch
    final_stats: dict[str, Any] | None = None
    for epoch in range(start_epoch, t_cfg.epochs):
        sampler.set_epoch(epoch, start_batch if epoch == start_epoch else 0)
        train_set.set_epoch(epoch)
        loader = DataLoader(train_set, batch_sampler=sampler, num_workers=t_cfg.workers, collate_fn=collate,
                            pin_memory=dev.type == "cuda")
        model.train()
        if t_cfg.freeze_bn:
            freeze_batchnorm(model)
        bar = None
        if show_bar:
            from tqdm import tqdm

            bar = tqdm(total=iters_per_epoch, initial=sampler.start_batch, desc=f"epoch {epoch + 1}/{t_cfg.epochs}",
                       dynamic_ncols=True, leave=False)
        t_epoch, seen = time.perf_counter(), 0
        t_last = time.perf_counter()
        i, lr = sampler.start_batch - 1, optimizer.param_groups[0]["lr"]
        for i, batch in enumerate(loader, start=sampler.start_batch):
            # lr: a pure function of progress (epochs, or the elapsed share of a time budget)
            if budget:
                progress = min(train_seconds / budget, 1.0) * t_cfg.epochs
            else:
                progress = epoch + i / iters_per_epoch
            lr = cfg.optim.lr * lr_factor(progress, t_cfg.epochs, cfg.optim, step, warmup_iters)
            for group in optimizer.param_groups:
                group["lr"] = lr

            images = batch["image"].to(dev, non_blocking=True).contiguous(memory_format=memory_format)
            target = batch["target"].to(dev, non_blocking=True)
            weight = batch["target_weight"].to(dev, non_blocking=True)
            with torch.autocast(device_type=dev.type, enabled=use_amp or cpu_bf16,
                                dtype=torch.bfloat16 if cpu_bf16 else None):
                logits = model(images)
            loss = criterion(logits.float(), target, weight)

            loss_value = float(loss.detach())
            if D.any_true(not math.isfinite(loss_value), dev):
                if bar is not None:
                    bar.close()
                kept = (f"The last good checkpoint is {out_dir / 'last.pt'} (it is never overwritten with non-finite "
                        "weights)." if (out_dir / "last.pt").is_file() else "No checkpoint had been written yet.")
                raise TrainingDivergedError(
                    f"loss is {loss_value} at iteration {step + 1} (epoch {epoch + 1}, batch {i + 1}/{iters_per_epoch},"
                    f" lr {lr:.3g}); training stopped. {kept} Try a lower optim.lr (e.g. --opt optim.lr=...), a "
                    "warmup (--opt optim.warmup_iters=500), gradient clipping (--opt optim.grad_clip=1.0), or check "
                    "the data (annotations, boxes, images).")
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if cfg.optim.grad_clip:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            step += 1
            loss_sum += loss_value
            loss_count += 1
            seen += images.shape[0] * world
            now = time.perf_counter()
            train_seconds += now - t_last
            t_last = now

            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss_value:.4g}", lr=f"{lr:.2e}",
                                img_s=f"{seen / max(now - t_epoch, 1e-9):.1f}")
            if main and t_cfg.log_every and step % t_cfg.log_every == 0 and bar is None:
                logger.info("epoch %d iter %d/%d (step %d): loss %.5f lr %.3g %.1f img/s", epoch + 1, i + 1,
                            iters_per_epoch, step, loss_value, lr, seen / max(now - t_epoch, 1e-9))
            budget_used = bool(budget) and train_seconds >= budget
            stop = D.any_true(budget_used or (t_cfg.max_iters is not None and step >= t_cfg.max_iters), dev)
            last_batch = i + 1 == iters_per_epoch
            if not last_batch and (stop or (t_cfg.checkpoint_every_iters and step % t_cfg.checkpoint_every_iters == 0)):
                checkpoint(out_dir / "last.pt", epoch, i + 1)  # mid-epoch: resume continues at batch i + 1
                t_last = time.perf_counter()  # checkpoint writing is not training time
            if on_iteration is not None:
                on_iteration(step)
            if stop:
                break
        if bar is not None:
            bar.close()
        epoch_done = not stop or i + 1 == iters_per_epoch

        # ---- end of epoch: metrics, validation, checkpoints
        record: dict[str, Any] = {"epoch": epoch + 1 if epoch_done else epoch + (i + 1) / iters_per_epoch,
                                  "step": step, "lr": lr, "loss": loss_sum / max(loss_count, 1),
                                  "train_seconds": round(train_seconds, 2)}
        loss_sum, loss_count = 0.0, 0
        validate = val_set is not None and ((epoch + 1) % t_cfg.val_every == 0 or epoch + 1 == t_cfg.epochs or stop)
        if validate:
            ev = cfg.eval
            stats = evaluate_dataset(model, val_set, codec, keypoint_set, activation=spec.heatmap_activation,
                                     flip_test=t_cfg.flip_test, batch_size=t_cfg.val_batch_size, workers=t_cfg.workers,
                                     device=dev, amp=use_amp, rescore=ev.rescore,
                                     nms=None if ev.nms == "none" else ev.nms, nms_thr=ev.nms_thr, kpt_thr=ev.kpt_thr,
                                     results_path=out_dir / "val_results.json" if main else None, progress=show_bar)
            final_stats = stats
            metric = stats["metric"]
            record.update({k: v for k, v in stats.items() if isinstance(v, (int, float)) and k != "num_persons"})
            logger.info("epoch %d: loss %.5f, %s %.4f (best %.4f)", epoch + 1, record["loss"], metric, stats[metric],
                        max(best_ap, stats[metric]))
        else:
            logger.info("epoch %d: loss %.5f", epoch + 1, record["loss"])
        history.append(record)
        is_best = validate and final_stats[final_stats["metric"]] > best_ap
        if is_best:
            best_ap = float(final_stats[final_stats["metric"]])
        if epoch_done:
            checkpoint(out_dir / "last.pt", epoch + 1, 0)
        elif stop:
            checkpoint(out_dir / "last.pt", epoch, i + 1)  # refresh with the history entry just added
        if is_best and main:
            import shutil

            with atomic_path(out_dir / "best.pt") as tmp:  # a temporary named by pid: a killed copy is cleaned up
                shutil.copyfile(out_dir / "last.pt", tmp)
        if main:
            write_metrics(out_dir, history)
        if stop:
            break

    if main and t_cfg.plot:
        from .plots import plot_curves

        plot_curves(history, out_dir / "curves.png")
    D.barrier()
    return TrainResult(out_dir=out_dir, epochs=len(history), iterations=step, train_seconds=train_seconds,
                       best_ap=best_ap, final_stats=final_stats, history=history, cpu_bf16=cpu_bf16)


def write_metrics(out_dir: Path, history: list[dict[str, Any]]) -> None:
    """``metrics.jsonl`` (one line per epoch) and ``metrics.csv`` (same rows), rewritten atomically from history."""
    atomic_write_text(out_dir / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in history))
    columns: list[str] = []
    for r in history:
        columns += [k for k in r if k not in columns]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns)
    writer.writeheader()
    writer.writerows(history)
    atomic_write_text(out_dir / "metrics.csv", buf.getvalue())
