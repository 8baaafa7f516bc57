"""Training precision: which autocast dtype a device trains in, and whether gradients need loss scaling.

CUDA (``train.amp``): bfloat16 autocast where the GPU computes it (``torch.cuda.is_bf16_supported()``: Ampere,
Hopper and later). bf16 keeps fp32's exponent range, so gradients do not underflow and no ``GradScaler`` is needed.
Older GPUs get float16 autocast with a ``GradScaler`` (fp16's small range needs the loss scaled). CPU
(``train.cpu_amp``): bfloat16 only where the CPU executes it natively (:func:`cpu_bf16_enabled`), else fp32.
Weights, optimizer state and the loss stay fp32 in every case.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Precision:
    """How a training step computes: ``dtype`` ``None`` means plain fp32 (no autocast).

    Attributes:
        device_type: ``"cpu"`` or ``"cuda"``.
        dtype: the autocast dtype, or ``None``.
        scaler: whether gradients go through a (fp16) ``GradScaler``.
        reason: why this precision was chosen (for reports and logs).
    """

    device_type: str
    dtype: torch.dtype | None = None
    scaler: bool = False
    reason: str = ""

    @property
    def name(self) -> str:
        """``"bf16"``, ``"fp16"`` or ``"fp32"``."""
        return {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(self.dtype, "fp32")  # type: ignore[arg-type]

    def autocast(self) -> Any:
        """The autocast context of the forward pass (disabled for fp32)."""
        return torch.autocast(device_type=self.device_type, dtype=self.dtype, enabled=self.dtype is not None)

    def grad_scaler(self) -> torch.amp.GradScaler:
        """A ``GradScaler``, enabled only for fp16 (a disabled one passes ``step`` and ``backward`` through)."""
        return torch.amp.GradScaler("cuda", enabled=self.scaler)


def choose_precision(device_type: str, amp: bool = True, cpu_amp: str = "off",
                     cuda_bf16: bool | None = None) -> Precision:
    """The precision to train in on ``device_type``.

    Args:
        device_type: ``"cuda"`` or ``"cpu"``.
        amp: ``train.amp`` (mixed precision on CUDA).
        cpu_amp: ``train.cpu_amp`` (``off`` / ``bf16`` / ``auto``), for CPUs.
        cuda_bf16: whether the GPU computes bfloat16 (``None``: ask ``torch.cuda.is_bf16_supported()``); tests
            pass it to check the choice without a GPU.
    """
    if device_type == "cuda":
        if not amp:
            return Precision("cuda", reason="train.amp=false")
        if torch.cuda.is_bf16_supported() if cuda_bf16 is None else cuda_bf16:
            return Precision("cuda", torch.bfloat16, reason="this GPU computes bfloat16: bf16 autocast, no loss "
                                                            "scaling needed")
        return Precision("cuda", torch.float16, scaler=True, reason="this GPU has no bfloat16: fp16 autocast with a "
                                                                    "GradScaler")
    if cpu_bf16_enabled(cpu_amp):
        why = "train.cpu_amp=bf16" if cpu_amp == "bf16" else "train.cpu_amp=auto; this CPU has native bfloat16"
        return Precision(device_type, torch.bfloat16, reason=why)
    why = "train.cpu_amp=off" if cpu_amp == "off" else f"train.cpu_amp={cpu_amp}; this CPU has no native bfloat16"
    return Precision(device_type, reason=why)


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
