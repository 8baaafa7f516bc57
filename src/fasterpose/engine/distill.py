"""Distillation without labels: a FasterPose student learns a teacher's flip-tested heatmaps on person crops.

teacher checkpoint (ours, or a converted SimpleBaseline) + unlabeled crops (``fasterpose.data.unlabeled``)
  -> teacher targets: flip-tested heatmaps after the teacher's activation, clipped to [0, 1] for RCE
  -> phase 1: student backbone frozen (the teacher's own where the architectures match), its features computed once
     and cached; only the sub-pixel head trains (minutes on a CPU)
  -> phase 2 (optional): the whole student end to end, at a lower learning rate
  -> ``student.pt``: an ordinary self-describing checkpoint (``eval``, ``export``, ``predict`` take it).

Each crop is used as it is and mirrored (the teacher labels both). Both phases train with the training loop's parts
(:mod:`fasterpose.engine.state`: the training state, its step and its checkpoint; the schedule function; the loss
factory). Every epoch writes ``last.pt`` atomically (the training state and the phase); ``resume`` rebuilds the crops
and targets (deterministic) and continues with the next epoch. The shuffling of epoch ``e`` of phase ``p`` depends
only on ``(seed, p, e)``.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..checkpoint import load_checkpoint, save_checkpoint
from ..cpu import check_threads
from ..errors import CheckpointError, ConfigError, DataError
from ..geometry import flip_image, normalize_crop
from ..io_utils import atomic_write_json, check_writable_folder
from ..losses import create_loss
from ..models import load_pose_checkpoint, model_from_checkpoint
from ..models.registry import check_model_options
from ..spec import PoseSpec
from .config import OptimConfig
from .precision import Precision
from .schedule import lr_factor
from .state import TrainState, load_train_state, save_train_state, train_step
from .trainer import build_optimizer

__all__ = ["DistillSettings", "distill", "teacher_heatmaps"]

logger = logging.getLogger(__name__)


@dataclass
class DistillSettings:
    """Attributes:
    student: registry name of the student (a ``fasterpose_*`` model).
    student_kwargs: ``create_model`` overrides of the student.
    loss: ``"rce"`` (student sigmoid vs the teacher's heatmaps clipped to [0, 1]; scores stay probabilities) or
        ``"mse"`` (student raw outputs vs the teacher's heatmaps).
    epochs: phase-1 epochs (frozen backbone, cached features).
    finetune_epochs: phase-2 epochs (end to end); 0 skips it.
    batch_size: crops per update.
    lr: phase-1 Adam learning rate (cosine decay to 0 over the phase).
    finetune_lr: phase-2 learning rate.
    init_backbone: ``"auto"`` (the teacher's backbone weights when the architectures match, else random),
        ``"teacher"`` (required), ``"imagenet"`` or ``"none"``.
    mirror: also train on the mirrored crops (labelled by the teacher too).
    seed: seeds the student's initialisation and the shuffling.
    threads: torch intra-op threads (``None``: torch's default).
    """

    student: str = "fasterpose_r18"
    student_kwargs: dict[str, Any] = field(default_factory=dict)
    loss: str = "rce"
    epochs: int = 40
    finetune_epochs: int = 0
    batch_size: int = 32
    lr: float = 2e-3
    finetune_lr: float = 2e-4
    init_backbone: str = "auto"
    mirror: bool = True
    seed: int = 0
    threads: int | None = None

    def __post_init__(self) -> None:
        if self.loss not in ("rce", "mse"):
            raise ConfigError(f"distill loss must be 'rce' or 'mse', got {self.loss!r}")
        if self.init_backbone not in ("auto", "teacher", "imagenet", "none"):
            raise ConfigError(f"init_backbone must be auto, teacher, imagenet or none, got {self.init_backbone!r}")
        if self.epochs < 0 or self.finetune_epochs < 0 or self.epochs + self.finetune_epochs == 0:
            raise ConfigError(f"epochs ({self.epochs}) and finetune_epochs ({self.finetune_epochs}) must be >= 0 and "
                              "not both 0")
        if self.batch_size < 1 or not 0 < self.lr < math.inf or not 0 < self.finetune_lr < math.inf:
            raise ConfigError(f"batch_size must be >= 1 and learning rates finite and > 0, got {self.batch_size}, "
                              f"{self.lr}, {self.finetune_lr}")
        check_threads(self.threads, "threads")
        check_model_options(self.student, self.student_kwargs)
        if not self.student.startswith("fasterpose_"):
            raise ConfigError(f"the student must be a FasterPose model (fasterpose_*), got {self.student!r}")


def _batches(n: int, batch: int) -> list[slice]:
    return [slice(i, min(i + batch, n)) for i in range(0, n, batch)]


@torch.no_grad()
def teacher_heatmaps(teacher: nn.Module, spec: PoseSpec, crops: np.ndarray, batch: int = 32) -> np.ndarray:
    """The teacher's activated heatmaps ``(N, K, h, w)`` float32 for BGR uint8 crops ``(N, H, W, 3)``, flip-tested
    where the keypoint set has left/right pairs."""
    from ..keypoints.config import flip_enabled
    from .inference import predict_heatmaps

    kset = spec.keypoint_set
    flip = flip_enabled(kset, None)  # a set without left/right pairs has no meaningful mirror image
    udp = bool(spec.codec.get("unbiased", False))
    out = []
    for sl in _batches(len(crops), batch):
        images = torch.from_numpy(normalize_crop(crops[sl], spec.channel_order))
        out.append(predict_heatmaps(teacher, images, activation=spec.heatmap_activation, flip_index=kset.flip_index,
                                    flip_test=flip, shift=not udp))
    return np.concatenate(out).astype(np.float32)


def _student_kwargs(settings: DistillSettings) -> dict[str, Any]:
    kwargs = dict(settings.student_kwargs)
    if settings.loss == "mse":
        kwargs.setdefault("final_bias", 0.0)  # raw outputs regress the heatmaps: start at 0, not at sigmoid 0.01
    return kwargs


def _student(settings: DistillSettings, teacher: nn.Module, num_keypoints: int) -> tuple[nn.Module, str]:
    """The student model and where its backbone came from."""
    from ..models import create_model

    kwargs = _student_kwargs(settings)
    torch.manual_seed(settings.seed)
    pretrained = "imagenet" if settings.init_backbone == "imagenet" else None
    student = create_model(settings.student, num_keypoints=num_keypoints, pretrained=pretrained, **kwargs)
    if settings.init_backbone in ("imagenet", "none"):
        return student, settings.init_backbone
    own, theirs = student.backbone.state_dict(), teacher.backbone.state_dict()
    fits = all(k in theirs and theirs[k].shape == v.shape for k, v in own.items())
    if fits and getattr(student.backbone, "output_stride", None) == getattr(teacher.backbone, "output_stride", None):
        student.backbone.load_state_dict({k: theirs[k] for k in own})
        return student, "teacher"
    if settings.init_backbone == "teacher":
        raise ConfigError(f"the student {settings.student}'s backbone is not the teacher's architecture (names, "
                          "shapes or stride differ); use init_backbone auto, imagenet or none")
    return student, "none"


def _targets_for_loss(heat: torch.Tensor, loss: str) -> torch.Tensor:
    return heat.clamp(0.0, 1.0) if loss == "rce" else heat


def _inputs(crops: np.ndarray, index: np.ndarray | slice, channel_order: str) -> torch.Tensor:
    """Network input for some crops (normalised per batch: the uint8 crops take a quarter of the memory)."""
    return torch.from_numpy(normalize_crop(crops[index], channel_order))


def _features(backbone: nn.Module, crops: np.ndarray, channel_order: str, batch: int) -> torch.Tensor:
    backbone.eval()
    with torch.no_grad():
        return torch.cat([backbone(_inputs(crops, sl, channel_order)) for sl in _batches(len(crops), batch)])


@dataclass
class _Phase:
    """One distillation phase: what trains (``net``, fed ``inputs_of(index)``), for how long, at which rate."""

    number: int
    net: Callable[[torch.Tensor], torch.Tensor]
    inputs_of: Callable[[torch.Tensor], torch.Tensor]
    prepare: Callable[[], None]  # train/eval modes at the start of each epoch
    optim: OptimConfig  # Adam at the phase's learning rate, cosine to 0 over the phase
    epochs: int


def _run_phase(state: TrainState, phase: _Phase, targets: torch.Tensor, criterion: nn.Module,
               settings: DistillSettings, save: Callable[[], None]) -> None:
    """The phase's remaining epochs, from ``state.epoch``: the training loop's step and schedule, one ``last.pt``
    per epoch. The shuffling of epoch ``e`` depends only on ``(seed, phase, e)``."""
    n = len(targets)
    steps_per_epoch = math.ceil(n / settings.batch_size)
    for epoch in range(state.epoch, phase.epochs):
        phase.prepare()
        seed = settings.seed * 1000 + (0 if phase.number == 1 else 500) + epoch
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
        total = 0.0
        for i, sl in enumerate(_batches(n, settings.batch_size)):
            idx = order[sl]
            state.batch = i
            lr = phase.optim.lr * lr_factor(epoch + i / steps_per_epoch, phase.epochs, phase.optim, state.step, 0)
            heat = _targets_for_loss(targets[idx].float(), settings.loss)
            total += train_step(state, phase.net, phase.inputs_of(idx), criterion, (heat,), lr) * len(idx)
        state.epoch, state.batch = epoch + 1, 0
        state.history.append({"phase": phase.number, "epoch": epoch + 1, "loss": total / n})
        logger.info("phase %d (%s) epoch %d/%d: loss %.5f", phase.number,
                    "frozen backbone" if phase.number == 1 else "end to end", epoch + 1, phase.epochs, total / n)
        save()


def distill(teacher: str | os.PathLike, sources: list[str], out_dir: str | os.PathLike,
            settings: DistillSettings | None = None, *, boxes: str | os.PathLike | None = None, det_thr: float = 0.3,
            frame_step: int = 1, max_crops: int | None = None, resume: bool = False) -> dict[str, Any]:
    """Distill a FasterPose student from ``teacher`` on unlabeled person crops; writes ``out_dir/student.pt``.

    Args:
        teacher: any weights :func:`fasterpose.models.load_pose_checkpoint` reads (ours, a published name, an
            MMPose or official SimpleBaseline file).
        sources: images, folders of images, video files.
        out_dir: output folder (``last.pt`` during the run, ``student.pt`` and ``report.json`` at the end).
        settings: student, loss and schedule (:class:`DistillSettings`); ignored with ``resume`` (the run's own).
        boxes: a person detection json; ``None`` uses the whole image as one person box.
        det_thr: minimum detection score.
        frame_step: every n-th video frame.
        max_crops: at most this many crops (before mirroring).
        resume: continue the run in ``out_dir`` from its ``last.pt``.

    Returns:
        The report (also ``report.json``): crops, phases, seconds, final losses, where the backbone came from.

    Raises:
        DataError: an output folder that holds another run (without ``resume``), or no crops.
        CheckpointError / ConfigError: the teacher cannot be loaded, or settings are invalid.
    """
    from ..data.unlabeled import person_crops

    out = Path(out_dir).expanduser()
    check_writable_folder(out, f"--out {out}")
    last = out / "last.pt"
    resumed: dict[str, Any] | None = None
    if resume:
        if not last.is_file():
            raise DataError(f"--resume: {last} does not exist; nothing to continue (run without --resume)")
        resumed = load_checkpoint(last)
        if "distill" not in resumed:
            raise CheckpointError(f"{last} is not a distillation checkpoint (no 'distill' entry)")
        resumed.setdefault("epoch", resumed["distill"].get("epoch", 0))  # where files of earlier versions kept it
        settings = DistillSettings(**resumed["distill"]["settings"])
    elif last.exists() or (out / "student.pt").exists():
        raise DataError(f"--out {out} already holds a distillation run; continue it with --resume, or choose another "
                        "--out")
    settings = settings or DistillSettings()
    if settings.threads:
        torch.set_num_threads(settings.threads)
    t_start = time.perf_counter()
    cpu_start = time.process_time()

    teacher_ckpt = load_pose_checkpoint(teacher)
    teacher_model, tspec = model_from_checkpoint(teacher_ckpt)
    kset = tspec.keypoint_set
    crops, counts = person_crops(sources, tspec.input_size, boxes=boxes, det_thr=det_thr,
                                 udp=bool(tspec.codec.get("unbiased", False)), frame_step=frame_step,
                                 max_crops=max_crops)
    from ..keypoints.config import flip_enabled

    if settings.mirror and flip_enabled(kset, None):
        crops = np.concatenate([crops, np.stack([flip_image(c) for c in crops])])
    logger.info("distilling from %s on %d crops (%d images%s)", teacher, len(crops), counts["images"],
                ", with mirrored copies" if settings.mirror else "")
    t0 = time.perf_counter()
    targets = torch.from_numpy(teacher_heatmaps(teacher_model, tspec, crops, settings.batch_size)).half()
    teacher_seconds = time.perf_counter() - t0

    student, backbone_from = _student(settings, teacher_model, kset.num_keypoints)
    del teacher_model
    channel_order = tspec.channel_order if backbone_from == "teacher" else "rgb"
    spec = PoseSpec(model_name=settings.student, input_size=tspec.input_size, keypoint_set=tspec.keypoint_set,
                    model_kwargs=_student_kwargs(settings),
                    codec=dict(tspec.codec), heatmap_activation="sigmoid" if settings.loss == "rce" else "identity",
                    flip_test=True, channel_order=channel_order,
                    source=f"distilled from {teacher} ({tspec.model_name}) on {len(crops)} unlabeled crops")
    config = teacher_ckpt.get("config")  # its data and evaluation settings let `fasterpose eval` run as is
    meta = {"teacher": str(teacher), "teacher_model": tspec.model_name, "sources": [str(s) for s in sources],
            "boxes": str(boxes) if boxes else None, "crops": int(len(crops)), "backbone_from": backbone_from}
    history: list[dict[str, Any]] = []
    start_phase = int(resumed["distill"]["phase"]) if resumed else 1
    if resumed:
        student.load_state_dict(resumed["model"])  # also where the resumed phase is over and the next starts afresh
        history = list(resumed.get("history", []))
    criterion = create_loss(settings.loss, use_target_weight=False)

    def phase_state(phase: _Phase, trained: nn.Module) -> TrainState:
        """The phase's training state: its own optimizer (of ``trained``), resumed where the run stopped in it."""
        state = TrainState(student, build_optimizer(phase.optim, trained), Precision("cpu").grad_scaler(),
                           history=history)
        if resumed and start_phase == phase.number:
            load_train_state(resumed, state)
        return state

    def saver(state: TrainState, phase: _Phase) -> Callable[[], None]:
        return lambda: save_train_state(last, state, spec=spec, config=config,
                                        distill={"phase": phase.number, "settings": asdict(settings), **meta})

    # Phase 1: frozen backbone, cached features, head only.
    if start_phase == 1:
        t1 = time.perf_counter()
        # the head reads the backbone's features, computed below once the state says epochs remain
        phase1 = _Phase(1, student.head, lambda idx: feats[idx], student.head.train,
                        OptimConfig(name="adam", lr=settings.lr, schedule="cosine"), settings.epochs)
        state = phase_state(phase1, student.head)
        if state.epoch < settings.epochs:
            feats = _features(student.backbone, crops, channel_order, settings.batch_size)
            _run_phase(state, phase1, targets, criterion, settings, saver(state, phase1))
            del feats
            meta["phase1_seconds"] = round(time.perf_counter() - t1, 1)

    # Phase 2: end to end (backbone BatchNorm statistics stay frozen: small unlabeled sets).
    if settings.finetune_epochs > 0:
        t2 = time.perf_counter()

        def end_to_end() -> None:
            student.train()
            student.backbone.apply(lambda m: m.eval() if isinstance(m, nn.BatchNorm2d) else None)

        phase2 = _Phase(2, student, lambda idx: _inputs(crops, idx.numpy(), channel_order), end_to_end,
                        OptimConfig(name="adam", lr=settings.finetune_lr, schedule="cosine"), settings.finetune_epochs)
        state = phase_state(phase2, student)
        if state.epoch < settings.finetune_epochs:
            _run_phase(state, phase2, targets, criterion, settings, saver(state, phase2))
            meta["phase2_seconds"] = round(time.perf_counter() - t2, 1)

    student.eval()
    save_checkpoint(out / "student.pt", {"spec": spec, "model": student.state_dict(), "config": config,
                                         "distill": {**meta, "settings": asdict(settings)}, "history": history})
    report = {**meta, "student": settings.student, "loss": settings.loss, "epochs": settings.epochs,
              "finetune_epochs": settings.finetune_epochs, "images": counts["images"],
              "teacher_seconds": round(teacher_seconds, 1), "seconds": round(time.perf_counter() - t_start, 1),
              "cpu_seconds": round(time.process_time() - cpu_start, 1), "threads": torch.get_num_threads(),
              "final_loss": history[-1]["loss"] if history else None, "checkpoint": str(out / "student.pt"),
              "resumed": bool(resumed)}
    atomic_write_json(out / "report.json", report, indent=2)
    return report
