"""RCE and MSE (+OHKM) losses against hand-written references."""

from __future__ import annotations

import math

import pytest
import torch

from fasterpose.losses import MSELoss, RCELoss


def _data(seed: int = 0, n: int = 2, k: int = 3, h: int = 4, w: int = 5):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, k, h, w, generator=g, dtype=torch.float64) * 3
    target = torch.rand(n, k, h, w, generator=g, dtype=torch.float64)
    weight = torch.tensor([[1.0, 0.0, 0.5], [1.0, 1.0, 0.0]], dtype=torch.float64)[:n, :k]
    return logits, target, weight


def _rce_reference(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    p = torch.sigmoid(x.double())
    per_pixel = -(y * torch.log(p) + (1 - y) * torch.log(1 - p))
    return (per_pixel * w[:, :, None, None]).mean()


def test_rce_matches_reference() -> None:
    x, y, w = _data()
    got = RCELoss()(x.float(), y.float(), w.float())
    assert got.dtype == torch.float32 and got.dim() == 0
    # float32 vs float64 reference: rounding the inputs and ~5 float32 ops per pixel on terms |x| <= 9.4 cost at
    # worst ~6 u |x| = 3.4e-6 per pixel (u = 6e-8), 2e-6 after the mean (weights average 0.58), plus <= 7 u * 0.8
    # for the SIMD-width-dependent cascade sum of 120 terms; 1e-5 (measured 8e-9). A wrong weighting is >= 1e-2.
    assert got.item() == pytest.approx(_rce_reference(x, y, w).item(), abs=1e-5)
    # float64 in, float64 out: tight agreement. The reference's log(1 - sigmoid(x)) loses u * e^|x| = 1.4e-12 at
    # |x| = 9.4 on single pixels, divided by the 120-pixel mean: ~1e-14.
    assert RCELoss()(x, y, w).item() == pytest.approx(_rce_reference(x, y, w).item(), abs=1e-12)
    # no weights: plain mean (float64, approx's default rel=1e-6)
    ones = torch.ones_like(w)
    assert RCELoss(use_target_weight=False)(x, y, w).item() == pytest.approx(_rce_reference(x, y, ones).item())
    assert RCELoss()(x, y).item() == pytest.approx(_rce_reference(x, y, ones).item())


def test_rce_accepts_simplebaseline_weight_layout() -> None:
    x, y, w = _data()
    assert RCELoss()(x, y, w[..., None]).item() == pytest.approx(RCELoss()(x, y, w).item())  # same weight map


def test_rce_finite_at_extreme_logits() -> None:
    x = torch.tensor([1e4, -1e4, 1e4, -1e4]).reshape(1, 4, 1, 1)
    y = torch.tensor([0.0, 1.0, 1.0, 0.0]).reshape(1, 4, 1, 1)
    x.requires_grad_(True)
    loss = RCELoss(use_target_weight=False)(x, y)
    loss.backward()
    # wrong by 1e4 in logit space costs 1e4 per pixel (BCE -> |x| as x -> inf); right ones cost ~0. Exact in
    # float32: exp(-1e4) underflows to 0, so every term is 1e4, 0 or log(1) = 0, and so are the gradients.
    assert torch.isfinite(loss) and loss.item() == pytest.approx((1e4 + 1e4 + 0 + 0) / 4)
    assert torch.isfinite(x.grad).all()
    assert x.grad.flatten().tolist() == pytest.approx([0.25, -0.25, 0.0, 0.0])  # (sigmoid(x) - y) / numel
    # soft target at a huge logit: loss = x * (1 - y) exactly in the limit
    loss = RCELoss(use_target_weight=False)(torch.full((1, 1, 1, 1), 1e4), torch.full((1, 1, 1, 1), 0.25))
    assert loss.item() == pytest.approx(0.75e4)


def test_rce_zero_weight_removes_keypoint() -> None:
    x, y, w = _data()
    w[:, 1] = 0.0
    base = RCELoss()(x, y, w)
    x2 = x.clone()
    x2[:, 1] = 1e4 * torch.sign(torch.randn_like(x2[:, 1]))  # garbage predictions for the ignored keypoint
    # Weight 0 zeroes those terms in both: the same float64 terms summed in the same order (1e-12 >> any ulp).
    assert RCELoss()(x2, y, w).item() == pytest.approx(base.item(), abs=1e-12)
    x2.requires_grad_(True)
    RCELoss()(x2, y, w).backward()
    assert torch.all(x2.grad[:, 1] == 0)


def test_rce_shape_errors() -> None:
    x, y, w = _data()
    with pytest.raises(ValueError, match="target_weight"):
        RCELoss()(x, y, w[:, :2])
    with pytest.raises(ValueError, match="logits"):
        RCELoss()(x, y[:, :2], w)


def _mse_simplebaseline(output: torch.Tensor, target: torch.Tensor, target_weight: torch.Tensor) -> torch.Tensor:
    """SimpleBaseline's JointsMSELoss, transcribed loop for loop."""
    batch_size, num_joints = output.shape[:2]
    preds = output.reshape(batch_size, num_joints, -1).split(1, 1)
    gts = target.reshape(batch_size, num_joints, -1).split(1, 1)
    criterion = torch.nn.MSELoss(reduction="mean")
    loss = 0.0
    for idx in range(num_joints):
        pred, gt = preds[idx].squeeze(), gts[idx].squeeze()
        tw = target_weight[:, idx].reshape(-1, 1)
        loss = loss + 0.5 * criterion(pred.mul(tw), gt.mul(tw))
    return loss / num_joints


def test_mse_matches_simplebaseline_and_hand_count() -> None:
    x, y, w = _data()
    # float64 means of <= 120 non-negative terms in different orders: <= n u = 120 * 1.1e-16 = 1.3e-14 relative.
    got = MSELoss()(x, y, w).item()
    assert got == pytest.approx(_mse_simplebaseline(x, y, w).item(), rel=1e-12)
    hand = sum(0.5 * float(w[n, k]) ** 2 * float(((x[n, k] - y[n, k]) ** 2).mean())
               for n in range(2) for k in range(3)) / 6
    assert got == pytest.approx(hand, rel=1e-12)
    unweighted = 0.5 * float(((x - y) ** 2).mean())
    assert MSELoss(use_target_weight=False)(x, y, w).item() == pytest.approx(unweighted, rel=1e-12)


def test_mse_ohkm_matches_hrnet() -> None:
    x, y, w = _data(n=2, k=3)
    per = 0.5 * (((x - y) * w[:, :, None, None]) ** 2).flatten(2).mean(2)  # (N, K)
    # float64 sums of <= 20 non-negative terms in other orders: ~n u = 2e-15 relative, inside rel=1e-12.
    for topk in (1, 2, 8):
        k = min(topk, 3)
        expected = sum(sum(sorted(per[n].tolist(), reverse=True)[:k]) / k for n in range(2)) / 2
        assert MSELoss(ohkm=True, topk=topk)(x, y, w).item() == pytest.approx(expected, rel=1e-12)
    assert MSELoss(ohkm=True, topk=3)(x, y, w).item() == pytest.approx(MSELoss()(x, y, w).item(), rel=1e-12)


def test_losses_are_differentiable_float32() -> None:
    x, y, w = (t.float() for t in _data())
    x.requires_grad_(True)
    for loss_fn in (RCELoss(), MSELoss(), MSELoss(ohkm=True, topk=2)):
        x.grad = None
        loss = loss_fn(x, y, w)
        loss.backward()
        assert math.isfinite(loss.item()) and torch.isfinite(x.grad).all()
