"""MobileNetV2 feature extractor with torchvision's parameter names (``features.N...``, no ``classifier``)."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["MobileNetV2", "InvertedResidual", "ConvBNReLU6"]

# t (expansion), c (output channels), n (repeats), s (stride of the first repeat): torchvision's table.
_SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
             (6, 320, 1, 1))


def _make_divisible(v: float, divisor: int = 8) -> int:
    """torchvision's channel rounding (keeps widths multiples of 8 without dropping more than 10%)."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


class ConvBNReLU6(nn.Sequential):
    """Conv-BN-ReLU6 as an ``nn.Sequential`` (children ``0``, ``1``, ``2``), like torchvision's Conv2dNormActivation."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1, groups: int = 1,
                 dilation: int = 1) -> None:
        padding = (kernel_size - 1) // 2 * dilation
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation=dilation, groups=groups,
                      bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU6(inplace=True),
        )


class InvertedResidual(nn.Module):
    """Expand (1x1, skipped when t=1) -> depthwise 3x3 -> linear 1x1 projection, residual when shapes allow."""

    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: int, dilation: int = 1) -> None:
        super().__init__()
        hidden_dim = int(round(inp * expand_ratio))
        self.use_res_connect = stride == 1 and inp == oup
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvBNReLU6(inp, hidden_dim, kernel_size=1))
        layers += [
            ConvBNReLU6(hidden_dim, hidden_dim, stride=stride, groups=hidden_dim, dilation=dilation),
            nn.Conv2d(hidden_dim, oup, 1, 1, 0, bias=False),
            nn.BatchNorm2d(oup),
        ]
        self.conv = nn.Sequential(*layers)
        self.out_channels = oup

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_res_connect:
            return x + self.conv(x)
        return self.conv(x)


class MobileNetV2(nn.Module):
    """MobileNetV2 trunk up to and including the final 1x1 conv to 1280 channels (``features.18``).

    Args:
        width_mult: channel multiplier (only 1.0 matches the torchvision ImageNet checkpoint).
        output_stride: 32 (default) or 16. With 16 the last stride-2 block (``features.14``) keeps the resolution and
            the depthwise convolutions after it use dilation 2 (DeepLabV3 style); parameter shapes are unchanged.

    Attributes:
        out_channels: 1280 for width 1.0.
        output_stride: input size / feature size.

    Shapes:
        ``forward``: ``(N, 3, H, W) -> (N, out_channels, H / output_stride, W / output_stride)``.
    """

    def __init__(self, width_mult: float = 1.0, output_stride: int = 32) -> None:
        super().__init__()
        if output_stride not in (16, 32):
            raise ValueError(f"MobileNetV2 output_stride must be 16 or 32, got {output_stride}")
        self.output_stride = output_stride
        input_channel = _make_divisible(32 * width_mult)
        last_channel = _make_divisible(1280 * max(1.0, width_mult))
        features: list[nn.Module] = [ConvBNReLU6(3, input_channel, stride=2)]
        current_stride, dilation = 2, 1
        for t, c, n, s in _SETTINGS:
            output_channel = _make_divisible(c * width_mult)
            for i in range(n):
                stride = s if i == 0 else 1
                block_dilation = dilation
                if stride == 2 and current_stride * 2 > output_stride:
                    # Replace this stride by dilation for all later depthwise convs; this block itself keeps the
                    # previous dilation, as torchvision's ResNet does with replace_stride_with_dilation.
                    stride, dilation = 1, dilation * 2
                current_stride *= stride
                features.append(InvertedResidual(input_channel, output_channel, stride, t, block_dilation))
                input_channel = output_channel
        features.append(ConvBNReLU6(input_channel, last_channel, kernel_size=1))
        self.features = nn.Sequential(*features)
        self.out_channels = last_channel
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)
