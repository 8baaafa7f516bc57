"""The training loop: one function, :func:`train`, that reads top to bottom.

setup (devices, process group, seeds, precision) -> data (one DataLoader, workers kept across epochs) -> model
(pretrained backbone, SyncBN/frozen BN, DDP) -> optimizer -> the :class:`~fasterpose.engine.state.TrainState`, resumed
-> for each epoch: for each batch: lr from the schedule function, :func:`~fasterpose.engine.state.train_step`
(forward, loss, NaN check, backward, step), mid-epoch checkpoint -> end of epoch: metrics, validation, ``last.pt`` /
``best.pt``, curves. Distillation (:mod:`~fasterpose.engine.distill`) trains with the same state, step, schedule,
loss factory and checkpoint format.

Exact resume: every source of randomness is a function of ``(seed, epoch, index)`` (data order: the
:class:`~fasterpose.engine.distributed.ShardedBatchSampler`; augmentation: the dataset's per-sample generators) or is
saved in the checkpoint (python/numpy/torch RNG states), the learning rate is a pure function of the progress,
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
import os
import random
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..codec import HeatmapCodec
from ..errors import CheckpointError, ConfigError, DataError
from ..io_utils import WRITTEN_MANIFEST, atomic_path, atomic_write_text, exclusive_folder
from ..keypoints import KeypointSet
from ..keypoints.config import apply_flip_choice, resolve_keypoint_set
from ..losses import create_loss
from ..spec import PoseSpec
from . import distributed as D
from .checks import check_training_data
from .config import Config, OptimConfig, TrainConfig, save_config
from .inference import collate, evaluate_dataset
from .precision import Precision, choose_precision
from .precision import cpu_bf16_enabled as cpu_bf16_enabled  # re-exported (its home is shared with distillation)
from .schedule import lr_factor, warmup_length
from .state import TrainingDivergedError as TrainingDivergedError  # re-exported, likewise
from .state import TrainState, check_finite_weights, load_train_state, save_train_state, train_step

logger = logging.getLogger(__name__)


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
    precision: str = "fp32"
    precision_reason: str = ""
    device: str = "cpu"


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
    return create_loss(cfg.loss.name, ohkm=cfg.loss.ohkm)


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


def build_optimizer(o: OptimConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    """The optimizer of ``model``'s trainable parameters (training, and each distillation phase)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if o.name == "adam":
        return torch.optim.Adam(params, lr=o.lr, weight_decay=o.weight_decay)
    if o.name == "adamw":
        return torch.optim.AdamW(params, lr=o.lr, weight_decay=o.weight_decay)
    return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay, nesterov=False)


def build_train_loader(dataset: Dataset, sampler: D.ShardedBatchSampler, workers: int,
                       device: torch.device) -> DataLoader:
    """The training DataLoader, made once per run: its workers persist across epochs (no start-up per epoch), so the
    epoch reaches them in the keys of a ``with_epoch`` sampler, not through :meth:`set_epoch` on their copies."""
    if not sampler.with_epoch:
        raise ValueError("the training sampler must yield (epoch, index) keys (with_epoch=True) for persistent workers")
    return DataLoader(dataset, batch_sampler=sampler, num_workers=workers, collate_fn=collate,
                      pin_memory=device.type == "cuda", persistent_workers=workers > 0)


def freeze_batchnorm(model: torch.nn.Module) -> None:
    """Put every BatchNorm layer in eval mode (running statistics are used and not updated)."""
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.eval()


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
    precision = choose_precision(dev.type, cfg.train.amp, cfg.train.cpu_amp)
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
        result = _train(cfg, keypoint_set, out_dir, resume_path, dist_info, precision, on_iteration)
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


def _train(cfg: Config, keypoint_set: KeypointSet, out_dir: Path, resume_path: Path | None, dist_info: D.DistInfo,
           precision: Precision, on_iteration: Callable[[int], None] | None) -> TrainResult:
    dev, main, world = dist_info.device, dist_info.is_main, dist_info.world_size
    t_cfg = cfg.train
    logger.info("training on %s in %s (%s)", dev, precision.name, precision.reason)

    # ---- data: the loader and its workers are made once; each key names its epoch (augmentation follows it)
    codec = build_codec(cfg)
    train_set = _on_main_first(main, lambda: build_dataset(cfg, "train", codec, keypoint_set=keypoint_set))
    val_set = _validation_set(cfg, codec, keypoint_set, main) if t_cfg.val_every > 0 else None
    spec = build_spec(cfg, codec, keypoint_set, category_id=getattr(train_set, "category_id", None))
    sampler = D.ShardedBatchSampler(len(train_set), t_cfg.batch_size, rank=dist_info.rank, world_size=world,
                                    seed=t_cfg.seed, shuffle=True, drop_last=True, with_epoch=True)
    iters_per_epoch, global_batch = sampler.batches_per_epoch, t_cfg.batch_size * world
    if iters_per_epoch == 0:
        raise ConfigError(f"train.batch_size {t_cfg.batch_size} x {world} process(es) is larger than the training "
                          f"set ({len(train_set)} persons); lower train.batch_size")
    logger.info("training set: %d persons, %d iterations/epoch (global batch %d = %d x %d)", len(train_set),
                iters_per_epoch, global_batch, t_cfg.batch_size, world)
    loader = build_train_loader(train_set, sampler, t_cfg.workers, dev)

    # ---- model, loss, optimizer: the training state
    model = _model_on_device(cfg, keypoint_set, dev, world, pretrained=resume_path is None)
    criterion = build_loss(cfg)
    state = TrainState(model, build_optimizer(cfg.optim, model), precision.grad_scaler(), precision, lr=cfg.optim.lr)
    warmup_iters = warmup_length(cfg.optim, iters_per_epoch)
    if resume_path is not None:
        _resume(state, resume_path, dev, global_batch, t_cfg.seed, iters_per_epoch)
    net = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)
    memory_format = torch.channels_last if t_cfg.channels_last else torch.contiguous_format

    def checkpoint() -> None:
        """Save the training state (rank 0): ``state.epoch`` epochs done and ``state.batch`` batches of the next.
        Non-finite weights (the same on every rank) raise on every rank: an error, never a checkpoint."""
        if main:
            save_train_state(out_dir / "last.pt", state, spec=spec, config=cfg.to_dict(),
                             scheduler={"warmup_iters": warmup_iters},
                             sampler={"seed": t_cfg.seed, "epoch": state.epoch, "world_size": world,
                                      "samples_in_epoch": state.batch * global_batch})
        else:
            check_finite_weights(state.model, out_dir / "last.pt", state.step)

    # ---- loop
    show_bar = main and (t_cfg.progress == "always" or (t_cfg.progress == "auto" and sys.stderr.isatty()))
    advice = partial(_divergence_advice, out_dir / "last.pt")
    stop, final_stats = False, None
    for epoch in range(state.epoch, t_cfg.epochs):
        sampler.set_epoch(epoch, state.batch)
        net.train()
        if t_cfg.freeze_bn:
            freeze_batchnorm(net)
        t_epoch = t_last = time.perf_counter()
        seen = 0
        with _progress_bar(show_bar, iters_per_epoch, state.batch, f"epoch {epoch + 1}/{t_cfg.epochs}") as bar:
            for batch in loader:
                images = batch["image"].to(dev, non_blocking=True).contiguous(memory_format=memory_format)
                targets = [batch[k].to(dev, non_blocking=True) for k in ("target", "target_weight")]
                lr = cfg.optim.lr * lr_factor(_progress(state, t_cfg, iters_per_epoch), t_cfg.epochs, cfg.optim,
                                              state.step, warmup_iters)
                loss = train_step(state, net, images, criterion, targets, lr, cfg.optim.grad_clip, advice)
                state.batch += 1
                state.loss_sum += loss
                state.loss_count += 1
                seen += images.shape[0] * world
                now = time.perf_counter()
                state.train_seconds += now - t_last
                t_last = now
                _show_progress(bar, state, loss, seen / max(now - t_epoch, 1e-9), iters_per_epoch,
                               bool(main and t_cfg.log_every and state.step % t_cfg.log_every == 0))
                budget_used = bool(t_cfg.time_budget_s) and state.train_seconds >= t_cfg.time_budget_s
                stop = D.any_true(budget_used or (t_cfg.max_iters is not None and state.step >= t_cfg.max_iters),
                                  dev)
                every = t_cfg.checkpoint_every_iters
                if state.batch < iters_per_epoch and (stop or (every and state.step % every == 0)):
                    checkpoint()  # mid-epoch: resume continues at batch state.batch
                    t_last = time.perf_counter()  # checkpoint writing is not training time
                if on_iteration is not None:
                    on_iteration(state.step)
                if stop:
                    break

        # ---- end of epoch: metrics, validation, checkpoints
        epoch_done = state.batch == iters_per_epoch
        record: dict[str, Any] = {"epoch": epoch + 1 if epoch_done else epoch + state.batch / iters_per_epoch,
                                  "step": state.step, "lr": state.lr, "loss": state.loss_sum / max(state.loss_count, 1),
                                  "train_seconds": round(state.train_seconds, 2)}
        state.loss_sum, state.loss_count = 0.0, 0
        if val_set is not None and ((epoch + 1) % t_cfg.val_every == 0 or epoch + 1 == t_cfg.epochs or stop):
            final_stats = _validate(cfg, net, val_set, codec, keypoint_set, spec, precision, out_dir if main else None,
                                    show_bar)
            record.update({k: v for k, v in final_stats.items() if isinstance(v, (int, float)) and k != "num_persons"})
            metric = final_stats["metric"]
            logger.info("epoch %d: loss %.5f, %s %.4f (best %.4f)", epoch + 1, record["loss"], metric,
                        final_stats[metric], max(state.best, final_stats[metric]))
            is_best = final_stats[metric] > state.best
            state.best = max(state.best, float(final_stats[metric]))
        else:
            logger.info("epoch %d: loss %.5f", epoch + 1, record["loss"])
            is_best = False
        state.history.append(record)
        if epoch_done:
            state.epoch, state.batch = epoch + 1, 0
        checkpoint()  # the epoch's end, or where the run stopped (with the history entry just added)
        if is_best and main:
            with atomic_path(out_dir / "best.pt") as tmp:  # a temporary named by pid: a killed copy is cleaned up
                shutil.copyfile(out_dir / "last.pt", tmp)
        if main:
            write_metrics(out_dir, state.history)
        if stop:
            break

    if main and t_cfg.plot:
        from .plots import plot_curves

        plot_curves(state.history, out_dir / "curves.png")
    D.barrier()
    return TrainResult(out_dir=out_dir, epochs=len(state.history), iterations=state.step,
                       train_seconds=state.train_seconds, best_ap=state.best, final_stats=final_stats,
                       history=state.history, cpu_bf16=dev.type == "cpu" and precision.name == "bf16",
                       precision=precision.name, precision_reason=precision.reason, device=str(dev))


# ------------------------------------------------------------------------------------------------ loop helpers


def _on_main_first(main: bool, build: Callable[[], Dataset]) -> Dataset:
    """``build()`` on rank 0 first (it generates and caches synthetic data), then on the others, which find it."""
    if main:
        dataset = build()
    D.barrier()
    return dataset if main else build()


def _validation_set(cfg: Config, codec: HeatmapCodec, keypoint_set: KeypointSet, main: bool) -> Dataset:
    val_set = _on_main_first(main, lambda: build_dataset(cfg, "val", codec, keypoint_set=keypoint_set))
    if len(val_set) == 0:  # found now, not after the whole training time was spent
        source = "the synthetic val split" if cfg.data.dataset == "synthetic" else cfg.data.val_ann
        raise DataError(f"the validation set ({source}) has no persons "
                        "to evaluate (no annotations with keypoints, or no boxes above eval.det_score_thr); fix "
                        "data.val_ann / eval.boxes, or train without validation: --opt train.val_every=0")
    return val_set


def _model_on_device(cfg: Config, keypoint_set: KeypointSet, dev: torch.device, world: int,
                     pretrained: bool) -> torch.nn.Module:
    """The model on ``dev`` in the configured memory format, with SyncBatchNorm where asked and possible."""
    model = build_model(cfg, pretrained=pretrained, keypoint_set=keypoint_set).to(dev)
    if cfg.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if cfg.train.sync_bn and world > 1:
        if dev.type == "cuda":
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        else:
            logger.warning("train.sync_bn needs CUDA (torch's SyncBatchNorm); on CPU BatchNorm statistics stay "
                           "per-process (use train.freeze_bn for identical results across world sizes)")
    return model


def _resume(state: TrainState, path: Path, dev: torch.device, global_batch: int, seed: int,
            iters_per_epoch: int) -> None:
    """Load ``path`` into ``state`` and find the batch of the epoch to continue at."""
    ckpt = load_train_state(path, state, map_location=dev)
    s = ckpt.get("sampler", {})
    consumed = int(s.get("samples_in_epoch", 0))
    state.batch = consumed // global_batch
    if consumed != state.batch * global_batch or s.get("seed", seed) != seed:
        logger.warning("resuming with a different global batch or seed than the checkpoint: the rest of this "
                       "epoch will not follow the original data order exactly")
    logger.info("resumed from %s: epoch %d, batch %d of %d, iteration %d", path, state.epoch, state.batch,
                iters_per_epoch, state.step)


def _progress(state: TrainState, t_cfg: TrainConfig, iters_per_epoch: int) -> float:
    """Training progress in epochs, the schedule's axis: epochs and batches done, or the elapsed share of a time
    budget."""
    if t_cfg.time_budget_s:
        return min(state.train_seconds / t_cfg.time_budget_s, 1.0) * t_cfg.epochs
    return state.epoch + state.batch / iters_per_epoch


def _divergence_advice(last: Path) -> str:
    kept = (f"The last good checkpoint is {last} (it is never overwritten with non-finite weights)." if last.is_file()
            else "No checkpoint had been written yet.")
    return (f"{kept} Try a lower optim.lr (e.g. --opt optim.lr=...), a warmup (--opt optim.warmup_iters=500), "
            "gradient clipping (--opt optim.grad_clip=1.0), or check the data (annotations, boxes, images).")


def _progress_bar(show: bool, total: int, initial: int, desc: str) -> Any:
    """A tqdm bar (closed when its ``with`` block ends, also on an error), or a ``None`` placeholder."""
    if not show:
        return contextlib.nullcontext()
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, dynamic_ncols=True, leave=False)


def _show_progress(bar: Any, state: TrainState, loss: float, images_per_s: float, iters_per_epoch: int,
                   log: bool) -> None:
    if bar is not None:
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.4g}", lr=f"{state.lr:.2e}", img_s=f"{images_per_s:.1f}")
    elif log:
        logger.info("epoch %d iter %d/%d (step %d): loss %.5f lr %.3g %.1f img/s", state.epoch + 1, state.batch,
                    iters_per_epoch, state.step, loss, state.lr, images_per_s)


def _validate(cfg: Config, net: torch.nn.Module, val_set: Dataset, codec: HeatmapCodec, keypoint_set: KeypointSet,
              spec: PoseSpec, precision: Precision, out_dir: Path | None, progress: bool) -> dict[str, Any]:
    """COCO/PCKh evaluation of the model on the validation set (every rank takes part); ``val_results.json`` is
    written into ``out_dir`` (rank 0's)."""
    ev, t_cfg = cfg.eval, cfg.train
    return evaluate_dataset(net, val_set, codec, keypoint_set, activation=spec.heatmap_activation,
                            flip_test=t_cfg.flip_test, batch_size=t_cfg.val_batch_size, workers=t_cfg.workers,
                            device=next(net.parameters()).device,
                            amp=precision.dtype if precision.device_type == "cuda" and precision.dtype else False,
                            rescore=ev.rescore,
                            nms=None if ev.nms == "none" else ev.nms, nms_thr=ev.nms_thr, kpt_thr=ev.kpt_thr,
                            results_path=out_dir / "val_results.json" if out_dir is not None else None,
                            progress=progress)


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
