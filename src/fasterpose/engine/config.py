"""Typed training/evaluation configuration: dataclasses, loaded from YAML with ``--opt key=value`` overrides.

The dataclass defaults are the SimpleBaseline / FasterPose COCO schedule (Adam, lr 1e-3, 140 epochs, x0.1 at
epochs 90 and 120, 32 images per device), so a config file only lists what differs. Every key is checked: an
unknown key is an error suggesting the closest valid one, a value of the wrong type is an error naming the key,
the expected type and the file it came from.

Shipped configs live in ``fasterpose/configs/*.yaml`` (package data, so ``fasterpose demo`` and
``fasterpose train synthetic_fasterpose_r18`` work from an installed wheel); the repository's top-level
``configs/`` is a symlink to that folder. :func:`load_config` accepts a path or a bare shipped config name.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import math
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..cpu import MAX_THREADS
from ..data.augment import AugmentConfig
from ..errors import ConfigError
from ..io_utils import MAX_CONFIG_BYTES, atomic_write_text, check_input_file, load_yaml
from ..keypoints import KEYPOINT_SETS

logger = logging.getLogger(__name__)

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


@dataclass
class ModelConfig:
    """Attributes:
    name: registry name for ``fasterpose.create_model`` (``fasterpose_r50``, ``simplebaseline_r50``, ...).
    pretrained: ``imagenet`` (torchvision's ImageNet weights of the backbone, downloaded once into torch hub's
        cache), a torchvision ImageNet checkpoint file, or ``None`` (random init).
    kwargs: extra ``create_model`` keyword overrides, e.g. ``{output_stride: 16, head_channels: 256}``.
    """

    name: str = "fasterpose_r50"
    pretrained: str | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from ..models.registry import check_model_options

        check_model_options(self.name, self.kwargs)  # wrong-typed options: refused at load, not deep in torch


@dataclass
class CodecConfig:
    """Heatmap target/decoding settings (:class:`fasterpose.codec.HeatmapCodec`); heatmaps are input size / 4.

    Attributes:
        sigma: Gaussian sigma in heatmap pixels.
        unbiased: UDP (unbiased data processing) for targets, crops and flip test.
        decode: ``"quarter"`` (argmax + quarter-pixel shift), ``"dark"`` (DARK refinement) or ``"argmax"``.
        dark_kernel: Gaussian blur kernel size used by DARK decoding.
    """

    sigma: float = 2.0
    unbiased: bool = False
    decode: str = "quarter"
    dark_kernel: int = 11


@dataclass
class SyntheticConfig:
    """The generated synthetic COCO-format dataset used when ``data.dataset: synthetic``.

    Attributes:
        cache_dir: where the generated splits are cached (``<cache_dir>/<split>-<params hash>/``); ``None``:
            ``$FASTERPOSE_CACHE/synthetic`` or ``~/.cache/fasterpose/synthetic``.
        train_images / val_images: number of generated images per split.
        train_seed / val_seed: generator seeds (different, so validation is held out).
        image_size: generated image size ``(height, width)``.
        difficulty: the generator preset (:meth:`fasterpose.data.synthetic.SynthConfig.preset`): ``"easy"``,
            ``"default"`` or ``"hard"``.
        generator: :class:`fasterpose.data.synthetic.SynthConfig` overrides applied on top of the preset (content
            and difficulty knobs, e.g. ``{max_persons: 2, occluder_prob: 0.0}``); empty: the preset as is.
    """

    cache_dir: str | None = None
    train_images: int = 400
    val_images: int = 100
    train_seed: int = 0
    val_seed: int = 1
    image_size: tuple[int, int] = (256, 256)
    difficulty: str = "default"
    generator: dict[str, Any] = field(default_factory=dict)


@dataclass
class DataConfig:
    """Attributes:
    dataset: ``"coco"`` (any COCO-format keypoint file), ``"mpii"`` or ``"synthetic"`` (COCO format, generated on
        first use). A ``synthetic`` config given its own ``train_ann`` or ``val_ann`` reads those (``coco``).
    keypoint_set: the keypoints the model predicts: ``"auto"`` (read from the training annotation file's keypoint
        category: names, skeleton, sigmas if it has them; flip pairs inferred from the names), ``"coco17"``,
        ``"mpii16"``, or the name of an inline set under the top-level ``keypoint_sets``.
    keypoint_category: with ``auto``: the category (name or id) to read when the file has several.
    flip_pairs / skeleton / upper_body: replace the set's field; lists of 0-based indices or keypoint names
        (``[[left_paw, right_paw], ...]``); ``null`` keeps the set's (inferred) value.
    sigmas: replace the set's OKS sigmas (one per keypoint); ``null`` keeps them.
    flip: horizontal flip augmentation and flip test: ``null`` (on exactly when every left/right keypoint has a
        mirror partner in the set's flip pairs), ``true`` or ``false``.
    train_ann / val_ann: annotation files (COCO keypoints json or MPII json); relative paths are relative to the
        working directory. Unused for ``synthetic``.
    train_images / val_images: image folders (``None``: next to the annotation file, dataset-specific).
    val_gt_mat: MPII only: the official ``annot/gt_valid.mat`` (head boxes for PCKh; without it head sizes are
        approximated from the head segment).
    input_size: model input ``(height, width)``; ``"256x192"`` is accepted too.
    codec: heatmap codec settings.
    augment: training augmentation (:class:`fasterpose.data.augment.AugmentConfig`, SimpleBaseline defaults).
    synthetic: generator settings for ``dataset: synthetic``.
    """

    dataset: str = "coco"
    keypoint_set: str = "coco17"
    keypoint_category: str | int | None = None
    flip_pairs: list[Any] | None = None
    skeleton: list[Any] | None = None
    sigmas: list[float] | None = None
    upper_body: list[Any] | None = None
    flip: bool | None = None
    train_ann: str | None = "data/coco/annotations/person_keypoints_train2017.json"
    train_images: str | None = "data/coco/train2017"
    val_ann: str | None = "data/coco/annotations/person_keypoints_val2017.json"
    val_images: str | None = "data/coco/val2017"
    val_gt_mat: str | None = None
    input_size: tuple[int, int] = (256, 192)
    codec: CodecConfig = field(default_factory=CodecConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)


@dataclass
class LossConfig:
    """Attributes:
    name: ``"rce"`` (regressive cross-entropy on sigmoid outputs, FasterPose) or ``"mse"`` (SimpleBaseline).
    ohkm: online hard keypoint mining (MSE only).
    """

    name: str = "rce"
    ohkm: bool = False


@dataclass
class OptimConfig:
    """Optimizer and learning-rate schedule (see :mod:`fasterpose.engine.schedule`).

    Attributes:
        name: ``"adam"``, ``"adamw"`` or ``"sgd"``.
        lr: base learning rate for the global batch ``train.batch_size x world size`` (no automatic scaling).
        weight_decay: L2 (Adam/SGD) or decoupled (AdamW) weight decay.
        momentum: SGD momentum.
        schedule: ``"step"`` (x ``gamma`` at each milestone) or ``"cosine"`` (to ``min_lr_factor``).
        milestones: epochs at which the step schedule multiplies the lr by ``gamma``.
        gamma: step decay factor.
        min_lr_factor: final lr / base lr of the cosine schedule.
        warmup_iters: linear warmup length in iterations (0 disables); ``warmup_epochs`` adds whole epochs.
        warmup_epochs: linear warmup length in epochs (may be fractional).
        warmup_factor: lr factor at the first warmup iteration.
        grad_clip: clip the global gradient norm to this value (``None`` disables).
    """

    name: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9
    schedule: str = "step"
    milestones: list[int] = field(default_factory=lambda: [90, 120])
    gamma: float = 0.1
    min_lr_factor: float = 0.0
    warmup_iters: int = 0
    warmup_epochs: float = 0.0
    warmup_factor: float = 0.001
    grad_clip: float | None = None


@dataclass
class TrainConfig:
    """Attributes:
    epochs: number of epochs (the schedule is defined over them).
    batch_size: images per device (per process); the global batch is ``batch_size x world size``.
    workers: DataLoader worker processes per device (0 loads in the main process).
    amp: mixed precision (torch.autocast + GradScaler) on CUDA; ignored on CPU.
    cpu_amp: bfloat16 autocast for training on CPU: ``"off"``, ``"bf16"``, or ``"auto"`` (bf16 when oneDNN
        reports native bf16 support, i.e. AVX512-BF16 or AMX; about 1.5x faster training steps on such CPUs, and
        slower than fp32 on CPUs without it). Weights, optimizer and loss stay fp32; evaluation runs in fp32.
    channels_last: train with the model and its input in ``torch.channels_last`` memory format (NHWC), which
        oneDNN and cuDNN convolutions prefer (4-5% more images/s for ResNet-18 with bf16 on the 2-core CPU).
        Numerics differ from NCHW only by floating-point summation order.
    sync_bn: convert BatchNorm to SyncBatchNorm under DDP (CUDA only; BN statistics are per-process otherwise).
    freeze_bn: keep BatchNorm layers in eval mode (running statistics frozen, affine parameters trained).
    seed: seed of data order, augmentation and initialisation.
    deterministic: ``torch.use_deterministic_algorithms(True)`` (+ cuDNN deterministic); exact resume on CPU.
    threads: torch intra-op threads (``None``: torch default).
    checkpoint_every_iters: also write ``last.pt`` every this many iterations mid-epoch (0 disables).
    val_every: validate every this many epochs (0 disables; the final epoch is always validated if > 0).
    val_batch_size: per-device batch for validation.
    flip_test: flip test during periodic validation.
    output_dir: run folder (``{name}`` is replaced by the config name); ``--out`` overrides.
    time_budget_s: stop training after this many seconds; the lr schedule then runs over elapsed time instead
        of epochs so that a short run still anneals (``fasterpose demo``). Not exactly resumable.
    max_iters: stop after this many iterations in total (``None``: no limit); mostly for tests and smoke runs.
    log_every: log a line every this many iterations (also when there is no progress bar).
    progress: tqdm progress bar: ``"auto"`` (only on a TTY), ``"always"`` or ``"never"``.
    plot: write ``curves.png`` (loss and AP) at the end.
    """

    epochs: int = 140
    batch_size: int = 32
    workers: int = 4
    amp: bool = True
    cpu_amp: str = "off"
    channels_last: bool = False
    sync_bn: bool = False
    freeze_bn: bool = False
    seed: int = 0
    deterministic: bool = False
    threads: int | None = None
    checkpoint_every_iters: int = 500
    val_every: int = 10
    val_batch_size: int = 64
    flip_test: bool = True
    output_dir: str = "runs/{name}"
    time_budget_s: float | None = None
    max_iters: int | None = None
    log_every: int = 50
    progress: str = "auto"
    plot: bool = True


@dataclass
class EvalConfig:
    """Attributes:
    boxes: ``"gt"`` (ground-truth person boxes) or a COCO detection results json (person boxes).
    det_score_thr: drop detector boxes below this score.
    flip_test: average with the horizontally flipped crop.
    rescore: multiply box scores by the mean confidence of keypoints above ``kpt_thr``.
    nms: ``"oks"``, ``"soft"`` (soft OKS-NMS) or ``"none"``.
    nms_thr: OKS threshold of the NMS.
    kpt_thr: keypoint score threshold used by the rescoring.
    batch_size: per-device inference batch.
    """

    boxes: str = "gt"
    det_score_thr: float = 0.0
    flip_test: bool = True
    rescore: bool = True
    nms: str = "oks"
    nms_thr: float = 0.9
    kpt_thr: float = 0.2
    batch_size: int = 64


@dataclass
class Config:
    """A complete experiment: ``name`` plus one section per concern.

    ``keypoint_sets`` defines keypoint sets inline, by name (``{mycar: {names: [...], flip_pairs: [...], skeleton:
    [...], sigmas: [...], upper_body: [...]}}``), for ``data.keypoint_set: mycar``
    (:func:`fasterpose.keypoints.config.inline_keypoint_set`).
    """

    name: str = "experiment"
    keypoint_sets: dict[str, Any] = field(default_factory=dict)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain, YAML/JSON-friendly dict (tuples become lists)."""
        return _plain(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "<dict>") -> Config:
        """Build and validate a config from a (possibly partial) nested dict."""
        cfg = _build(cls, d, prefix="", source=source)
        data, default = cfg.data, DataConfig()
        given = [k for k in ("train_ann", "val_ann") if getattr(data, k) not in (None, getattr(default, k))]
        if data.dataset == "synthetic" and given:  # e.g. a synthetic config + --opt data.train_ann=MY.json
            logger.info("%s given: data.dataset coco instead of the config's synthetic", " and ".join(given))
            data.dataset = "coco"
        known = ("auto", *KEYPOINT_SETS, *cfg.keypoint_sets)
        if cfg.data.keypoint_set not in known:
            close = difflib.get_close_matches(cfg.data.keypoint_set, known, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"{source}: data.keypoint_set must be one of {', '.join(known)} (auto, a named set, or "
                              f"one defined under keypoint_sets); got {cfg.data.keypoint_set!r}.{hint}")
        return cfg


CHOICES: dict[str, tuple[str, ...]] = {
    "data.dataset": ("coco", "mpii", "synthetic"),
    "data.codec.decode": ("quarter", "dark", "argmax"),
    "loss.name": ("rce", "mse"),
    "optim.name": ("adam", "adamw", "sgd"),
    "optim.schedule": ("step", "cosine"),
    "train.progress": ("auto", "always", "never"),
    "train.cpu_amp": ("off", "bf16", "auto"),
    "data.synthetic.difficulty": ("easy", "default", "hard"),
    "eval.nms": ("oks", "soft", "none"),
}

# Numeric settings and their valid range: (low, high, low inclusive, high inclusive); None = unbounded. NaN is never
# valid. Checked when a config is built, so a bad value fails before any data is generated or any time is spent.
# Learning rates: no recipe comes near 1e6; far beyond, the optimizer's float32 arithmetic overflows (a traceback).
MAX_LR = 1e6
# Seeds: numpy's generator takes 0 .. 2**32 - 1 (also the bound of the commands' --seed options, commands/_options.py).
MAX_SEED = 2**32 - 1
RANGES: dict[str, tuple[float | None, float | None, bool, bool]] = {
    "train.seed": (0, MAX_SEED, True, True),
    "data.synthetic.train_seed": (0, MAX_SEED, True, True),
    "data.synthetic.val_seed": (0, MAX_SEED, True, True),
    "optim.lr": (0.0, MAX_LR, False, True),
    "optim.weight_decay": (0.0, None, True, False),
    "optim.momentum": (0.0, 1.0, True, False),
    "optim.gamma": (0.0, None, False, False),
    "optim.min_lr_factor": (0.0, 1.0, True, True),
    "optim.warmup_iters": (0, None, True, False),
    "optim.warmup_epochs": (0.0, None, True, False),
    "optim.warmup_factor": (0.0, 1.0, False, True),
    "optim.grad_clip": (0.0, None, False, False),
    "train.epochs": (1, None, True, False),
    "train.batch_size": (1, None, True, False),
    "train.workers": (0, None, True, False),
    "train.threads": (1, MAX_THREADS, True, True),
    "train.checkpoint_every_iters": (0, None, True, False),
    "train.val_every": (0, None, True, False),
    "train.val_batch_size": (1, None, True, False),
    "train.time_budget_s": (0.0, None, False, False),
    "train.max_iters": (1, None, True, False),
    "train.log_every": (0, None, True, False),
    "eval.det_score_thr": (0.0, 1.0, True, True),
    "eval.nms_thr": (0.0, 1.0, False, True),
    "eval.kpt_thr": (0.0, 1.0, True, True),
    "eval.batch_size": (1, None, True, False),
    "data.codec.sigma": (0.0, None, False, False),
}


def _check_range(key: str, value: Any, source: str) -> None:
    if key not in RANGES or value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    low, high, low_in, high_in = RANGES[key]
    ok = isinstance(value, int) or math.isfinite(value)  # NaN and infinity are never valid settings
    if ok and low is not None:
        ok = value >= low if low_in else value > low
    if ok and high is not None:
        ok = value <= high if high_in else value < high
    if not ok:
        lo = "" if low is None else f"{'>=' if low_in else '>'} {low if isinstance(low, int) else f'{low:g}'}"
        hi = "" if high is None else f"{'<=' if high_in else '<'} {high if isinstance(high, int) else f'{high:g}'}"
        raise ConfigError(f"{source}: {key} must be {' and '.join(x for x in (lo, hi) if x)}, got {value!r}")


# String settings whose choices YAML would read as booleans (``cpu_amp: off`` is ``False`` in YAML 1.1).
BOOL_ALIASES: dict[str, dict[bool, str]] = {
    "train.cpu_amp": {False: "off", True: "auto"},
}

# ---------------------------------------------------------------------------------------------------- loading


def find_config(name_or_path: str | os.PathLike) -> Path:
    """Resolve a config argument: an existing file, or the name of a shipped config (with or without ``.yaml``)."""
    path = Path(name_or_path).expanduser()
    if path.exists():  # a FIFO or a device is refused here, before it is opened (reading it would not end)
        return check_input_file(path, "config file", MAX_CONFIG_BYTES)
    stem = path.name[: -len(".yaml")] if path.name.endswith(".yaml") else path.name
    shipped = CONFIG_DIR / f"{stem}.yaml"
    if path.parent == Path(".") and shipped.is_file():
        return shipped
    names = list_configs()
    close = difflib.get_close_matches(stem, names, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(close)}?" if close else f" Shipped configs: {', '.join(names)}."
    raise ConfigError(f"config file {name_or_path} does not exist (neither a file nor a shipped config name).{hint}")


def list_configs() -> list[str]:
    """Names of the shipped configs."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def load_config(name_or_path: str | os.PathLike | None = None, overrides: list[str] | None = None,
                base: dict[str, Any] | None = None) -> Config:
    """Load a YAML config (path or shipped name) and apply ``key=value`` overrides.

    Args:
        name_or_path: config file or shipped config name; ``None`` starts from ``base`` (or the defaults).
        overrides: ``["train.epochs=10", "optim.milestones=[5,8]"]``; values are parsed as YAML.
        base: a config dict to start from instead of a file (e.g. the one stored in a checkpoint).

    Raises:
        ConfigError: missing file, invalid YAML, unknown key (with the closest valid key), wrong type.
    """
    raw: dict[str, Any] = dict(base or {})
    source = "<checkpoint config>" if base is not None else "<defaults>"
    if name_or_path is not None:
        path = find_config(name_or_path)
        source = str(path)
        try:
            loaded = load_yaml(path.read_text(encoding="utf-8"), f"config file {path}")
        except UnicodeDecodeError:
            raise ConfigError(f"config file {path} is not a UTF-8 text file; give a YAML config (e.g. a copy of "
                              "configs/synthetic_fasterpose_r18.yaml)") from None
        if loaded is None:  # an empty file would silently mean "all defaults" (the COCO recipe): say so instead
            raise ConfigError(f"config file {path} is empty; give a YAML config (e.g. a copy of "
                              "configs/synthetic_fasterpose_r18.yaml) or a shipped config name")
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {path} must contain a mapping of sections, got {type(loaded).__name__}")
        raw = loaded
        raw.setdefault("name", path.stem)
    cfg = Config.from_dict(raw, source=source)
    return apply_overrides(cfg, overrides or [])


def apply_overrides(cfg: Config, overrides: list[str]) -> Config:
    """Return a new config with dotted ``key=value`` overrides applied (value parsed as YAML)."""
    d = cfg.to_dict()
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--opt {item!r} is not of the form key=value (e.g. --opt train.epochs=10)")
        key, text = item.split("=", 1)
        key = key.strip()
        value = load_yaml(text, f"--opt {item!r}: the value") if text.strip() else None
        _check_key(key, source="--opt")
        node = d
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--opt {item!r}: {part!r} is not a section")
        node[parts[-1]] = value
    return Config.from_dict(d, source="--opt")


def save_config(cfg: Config, path: str | os.PathLike) -> None:
    """Write the resolved config as YAML, atomically."""
    atomic_write_text(path, yaml.safe_dump(cfg.to_dict(), sort_keys=False))


def valid_keys(cls: type = Config, prefix: str = "") -> list[str]:
    """Every dotted key of ``cls`` (sections and leaves)."""
    out = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        key = f"{prefix}{f.name}"
        out.append(key)
        if dataclasses.is_dataclass(hints[f.name]):
            out.extend(valid_keys(hints[f.name], prefix=f"{key}."))
    return out


def _check_key(key: str, source: str) -> None:
    keys = valid_keys()
    if key in keys:
        return
    # free-form dict fields accept any sub-key
    if any(key.startswith(f"{k}.") for k in ("model.kwargs", "data.synthetic.generator", "keypoint_sets")):
        return
    _unknown(key, keys, source)


def _unknown(key: str, keys: list[str], source: str) -> typing.NoReturn:
    close = difflib.get_close_matches(key, keys, n=1, cutoff=0.5)
    if not close:  # try matching the last component only (e.g. "lr" -> "optim.lr")
        leaf = key.rsplit(".", 1)[-1]
        close = [k for k in keys if k.rsplit(".", 1)[-1] == leaf][:1] or difflib.get_close_matches(
            leaf, keys, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ConfigError(f"{source}: unknown config key {key!r}{hint}")


def _build(cls: type, d: Any, prefix: str, source: str) -> Any:
    if not isinstance(d, dict):
        raise ConfigError(f"{source}: {prefix.rstrip('.') or 'config'} must be a mapping, got {d!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in d:
        if key not in names:
            _unknown(f"{prefix}{key}", valid_keys(), source)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in d:
            continue
        key = f"{prefix}{f.name}"
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            kwargs[f.name] = _build(tp, d[f.name] if d[f.name] is not None else {}, f"{key}.", source)
        else:
            value = d[f.name]
            if isinstance(value, bool) and key in BOOL_ALIASES:  # YAML 1.1 reads a bare off/on/no/yes as a bool
                value = BOOL_ALIASES[key][value]
            kwargs[f.name] = _coerce(value, tp, key, source)
    try:
        obj = cls(**kwargs)
    except ValueError as e:  # a section's own validation (e.g. AugmentConfig probabilities)
        raise ConfigError(f"{source}: {prefix.rstrip('.')}: {e}") from None
    for f in dataclasses.fields(cls):
        key = f"{prefix}{f.name}"
        _check_range(key, getattr(obj, f.name), source)
        if key in CHOICES and getattr(obj, f.name) not in CHOICES[key]:
            value = getattr(obj, f.name)
            close = difflib.get_close_matches(str(value), CHOICES[key], n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"{source}: {key} must be one of {', '.join(CHOICES[key])}; got {value!r}.{hint}")
    return obj


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str, source: str) -> Any:
    """Check ``value`` against the annotation ``tp`` (small subset of typing) and normalise it."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)

    def fail(extra: str = "") -> typing.NoReturn:
        raise ConfigError(f"{source}: {key} must be {_describe(tp)}, got {value!r} ({type(value).__name__}){extra}")

    if origin in (typing.Union, types.UnionType):
        if value is None:
            if type(None) in args:
                return None
            fail()
        members = [a for a in args if a is not type(None)]
        for arg in members[:-1]:  # the first member the value fits; the last one's error otherwise
            try:
                return _coerce(value, arg, key, source)
            except ConfigError:
                pass
        try:
            return _coerce(value, members[-1], key, source)
        except ConfigError:
            fail()
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        fail(" (use true or false)")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        fail()
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "1e-3" as a string
            try:
                return float(value)
            except ValueError:
                pass
        fail()
    if tp is str:
        if isinstance(value, str):
            return value
        fail()
    if origin is tuple:  # (height, width) style pairs; "256x192" accepted
        if isinstance(value, str) and "x" in value:
            value = value.split("x")
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            fail()
        try:
            return tuple(_coerce(int(v) if isinstance(v, str) else v, a, key, source) for v, a in zip(value, args))
        except ValueError:
            fail()
    if origin is list:
        if not isinstance(value, (list, tuple)):
            fail()
        return [_coerce(v, args[0], key, source) for v in value]
    if origin is dict:
        if not isinstance(value, dict):
            fail()
        return dict(value)
    raise TypeError(f"unsupported config annotation {tp!r} for {key}")  # a bug in this module, not user error


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join("null" if a is type(None) else _describe(a) for a in args)
    if origin is tuple:
        return f"a list of {len(args)} {_plural(args[0])} (e.g. [256, 192] or 256x192)"
    if origin is list:
        return f"a list of {_plural(args[0])}"
    if origin is dict:
        return "a mapping"
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}.get(tp, _type_name(tp))


def _plural(tp: Any) -> str:
    return {bool: "booleans", int: "integers", float: "numbers", str: "strings"}.get(tp, f"{_type_name(tp)} values")


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj
