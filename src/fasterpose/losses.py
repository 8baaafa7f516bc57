"""Heatmap losses: FasterPose's regressive cross-entropy (RCE) and SimpleBaseline's MSE (+ HRNet's OHKM).

All losses take the raw model output (logits) ``(N, K, H, W)``, the target heatmaps ``(N, K, H, W)`` with values in
[0, 1], and per-keypoint target weights ``(N, K)`` (``(N, K, 1)`` is accepted too, SimpleBaseline's layout).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .errors import ConfigError

__all__ = ["RCELoss", "MSELoss", "create_loss"]


def _weight_map(target_weight: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """``(N, K)`` or ``(N, K, 1)`` weights -> ``(N, K, 1, 1)``, broadcastable over the heatmap pixels."""
    n, k = logits.shape[:2]
    if target_weight.numel() != n * k:
        raise ValueError(f"target_weight has shape {tuple(target_weight.shape)}, expected ({n}, {k}) for "
                         f"heatmaps of shape {tuple(logits.shape)}")
    return target_weight.reshape(n, k, 1, 1).to(logits.dtype)


def _check_shapes(logits: torch.Tensor, target: torch.Tensor) -> None:
    if logits.shape != target.shape or logits.dim() != 4:
        raise ValueError(f"logits {tuple(logits.shape)} and target {tuple(target.shape)} must both be (N, K, H, W)")


class RCELoss(nn.Module):
    """Regressive cross-entropy: binary cross-entropy between ``sigmoid(logits)`` and continuous targets.

    With logit ``x``, target ``y`` in [0, 1] and keypoint weight ``w``, per pixel

        ``l = -w * [ y * log(sigmoid(x)) + (1 - y) * log(1 - sigmoid(x)) ]
            = w * [ max(x, 0) - x * y + log(1 + exp(-|x|)) ]``

    and the loss is the mean of ``l`` over all ``N * K * H * W`` pixels (zero-weight keypoints still count in the
    denominator, as in SimpleBaseline's MSE). The second form (what ``binary_cross_entropy_with_logits``
    computes) is finite for any finite logit: ``x = 1e4, y = 0`` gives ``1e4``. Note the minimum is not 0 for
    ``0 < y < 1`` (it is the entropy of ``y``), which does not affect gradients.

    Args:
        use_target_weight: multiply each keypoint's per-pixel loss by its weight (weight 0 removes it).

    Shapes:
        ``forward(logits (N, K, H, W), target (N, K, H, W), target_weight (N, K) | None) -> ()``.
    """

    def __init__(self, use_target_weight: bool = True) -> None:
        super().__init__()
        self.use_target_weight = use_target_weight

    def forward(self, logits: torch.Tensor, target: torch.Tensor,
                target_weight: torch.Tensor | None = None) -> torch.Tensor:
        _check_shapes(logits, target)
        target = target.to(logits.dtype)
        if self.use_target_weight and target_weight is not None:
            # weight= scales each element's loss, matching w * l above.
            weight = _weight_map(target_weight, logits)
            return F.binary_cross_entropy_with_logits(logits, target, weight=weight.expand_as(logits),
                                                      reduction="mean")
        return F.binary_cross_entropy_with_logits(logits, target, reduction="mean")


class MSELoss(nn.Module):
    """SimpleBaseline's ``JointsMSELoss`` (and HRNet's ``JointsOHKMMSELoss`` with ``ohkm=True``) on raw outputs.

    Per keypoint ``k`` of sample ``n``: ``l_nk = 0.5 * mean_pixels((w_nk * pred - w_nk * gt)^2)``.
    Without OHKM the loss is ``mean_{n,k} l_nk`` (SimpleBaseline averages ``0.5 * MSE`` over joints, each MSE being
    a mean over batch and pixels, which is the same number). With OHKM (online hard keypoint mining) it is
    ``mean_n( mean of the topk largest l_nk over k )``.

    The model output is used as is (identity activation): train with ``final_bias=0`` and decode without sigmoid.

    Args:
        use_target_weight: multiply prediction and target of each keypoint by its weight.
        ohkm: average only the ``topk`` hardest keypoints of each sample.
        topk: keypoints kept per sample by OHKM (clamped to K).

    Shapes:
        ``forward(pred (N, K, H, W), target (N, K, H, W), target_weight (N, K) | None) -> ()``.
    """

    def __init__(self, use_target_weight: bool = True, ohkm: bool = False, topk: int = 8) -> None:
        super().__init__()
        if topk < 1:
            raise ValueError(f"topk must be >= 1, got {topk}")
        self.use_target_weight = use_target_weight
        self.ohkm = ohkm
        self.topk = topk

    def forward(self, pred: torch.Tensor, target: torch.Tensor,
                target_weight: torch.Tensor | None = None) -> torch.Tensor:
        _check_shapes(pred, target)
        diff = pred - target.to(pred.dtype)
        if self.use_target_weight and target_weight is not None:
            diff = diff * _weight_map(target_weight, pred)  # == w*pred - w*gt
        per_keypoint = 0.5 * diff.pow(2).flatten(2).mean(dim=2)  # (N, K)
        if not self.ohkm:
            return per_keypoint.mean()
        k = min(self.topk, per_keypoint.shape[1])
        return per_keypoint.topk(k, dim=1).values.mean(dim=1).mean()


def create_loss(name: str, ohkm: bool = False, use_target_weight: bool = True) -> nn.Module:
    """The loss a model trains with, by name: ``"rce"`` (FasterPose) or ``"mse"`` (SimpleBaseline, optionally with
    OHKM). Training and distillation both build their loss here."""
    if name == "rce":
        if ohkm:
            raise ConfigError("loss.ohkm is only implemented for loss.name: mse")
        return RCELoss(use_target_weight=use_target_weight)
    if name == "mse":
        return MSELoss(use_target_weight=use_target_weight, ohkm=ohkm)
    raise ConfigError(f"loss must be 'rce' or 'mse', got {name!r}")
