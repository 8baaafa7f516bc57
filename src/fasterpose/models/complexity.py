"""Model size and compute: parameters, GMACs (via ``torch.utils.flop_counter``) and output shape."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

__all__ = ["count_params", "count_gmacs", "output_shape", "model_complexity", "COUNTED_OPS", "NOT_COUNTED_OPS"]

COUNTED_OPS = "convolutions (incl. depthwise and transposed), matmul/linear/addmm/bmm"
NOT_COUNTED_OPS = "batch norm, activations, additions, pooling, pixel shuffle, concatenation"


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (buffers such as BN running statistics are not parameters)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    was_training = model.training
    model.eval()  # BN must not update its running statistics while we measure
    try:
        yield model
    finally:
        model.train(was_training)


def _dummy(model: nn.Module, input_size: tuple[int, int], batch_size: int) -> torch.Tensor:
    p = next(model.parameters(), None)
    device, dtype = (p.device, p.dtype) if p is not None else (torch.device("cpu"), torch.float32)
    return torch.zeros(batch_size, 3, int(input_size[0]), int(input_size[1]), device=device, dtype=dtype)


def model_complexity(model: nn.Module, input_size: tuple[int, int] = (256, 192), batch_size: int = 1
                     ) -> dict[str, Any]:
    """Params, GMACs, per-op GMACs and output shape from one forward pass of a zero image.

    GMACs are multiply-accumulates / 1e9 = FLOPs / 2 as reported by
    :class:`torch.utils.flop_counter.FlopCounterMode`, which counts convolutions (including depthwise and
    transposed; a transposed conv is charged per *input* position, i.e. its true cost) and matrix products
    (mm, addmm, bmm, linear). Batch norm, activations, element-wise additions, pooling, pixel shuffle and
    concatenation are **not** counted; they are memory-bound and small in these models. Papers' GFLOPs columns
    came from other counters (e.g. SimpleBaseline-R50 256x192 is quoted as 8.9 "GFLOPs", 5.4 GMACs here, mostly
    because of how transposed convolutions are charged), so compare models with one tool only.

    Args:
        model: any module taking ``(N, 3, H, W)`` images.
        input_size: ``(height, width)``.
        batch_size: N; GMACs are reported for the whole batch.

    Returns:
        ``{"params": int, "gmacs": float, "gmacs_by_op": {op: float}, "output_shape": [N, K, H/4, W/4]}``.
    """
    from torch.utils.flop_counter import FlopCounterMode

    x = _dummy(model, input_size, batch_size)
    with _eval_mode(model), torch.no_grad():
        counter = FlopCounterMode(display=False)
        with counter:
            out = model(x)
    by_op = {str(op).split(".")[-1] if "." in str(op) else str(op): flops / 2e9
             for op, flops in counter.get_flop_counts().get("Global", {}).items()}
    return {
        "params": count_params(model),
        "gmacs": counter.get_total_flops() / 2e9,
        "gmacs_by_op": by_op,
        "output_shape": list(out.shape),
    }


def count_gmacs(model: nn.Module, input_size: tuple[int, int] = (256, 192), batch_size: int = 1) -> float:
    """Giga multiply-accumulates (FLOPs / 2) of one forward pass at ``input_size = (height, width)``.

    Counted by :class:`torch.utils.flop_counter.FlopCounterMode`: convolutions (incl. depthwise and transposed)
    and matmul/linear/addmm/bmm. Batch norm, ReLU, additions, pooling and pixel shuffle are not counted.
    """
    return float(model_complexity(model, input_size, batch_size)["gmacs"])


def output_shape(model: nn.Module, input_size: tuple[int, int] = (256, 192), batch_size: int = 1) -> tuple[int, ...]:
    """Shape of ``model``'s output for a ``(batch_size, 3, height, width)`` input."""
    x = _dummy(model, input_size, batch_size)
    with _eval_mode(model), torch.no_grad():
        return tuple(model(x).shape)
