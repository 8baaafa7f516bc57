"""Heatmap heads: FasterPose's sub-pixel head and SimpleBaseline's deconvolution head.

Both map a backbone feature ``(N, C, H/s, W/s)`` to heatmap **logits** ``(N, K, H/4, W/4)``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["SubPixelHead", "DeconvHead", "RCE_PRIOR", "RCE_FINAL_BIAS"]

# Prior probability of a heatmap pixel at initialisation for RCE (sigmoid) training. A Gaussian target with sigma 2
# on a 64x48 heatmap has mean value 2*pi*sigma^2 / (64*48) ~= 0.008, so sigmoid(bias) ~= 0.01 starts the model near
# the average target instead of at 0.5, avoiding a large, uninformative first-step loss (focal-loss style prior).
RCE_PRIOR = 0.01
RCE_FINAL_BIAS = -math.log((1.0 - RCE_PRIOR) / RCE_PRIOR)  # ~= -4.595


def _conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class SubPixelHead(nn.Module):
    """FasterPose head: a cheap conv stack at the backbone's low resolution, then sub-pixel upsampling.

    ``feature -> [1x1 Conv-BN-ReLU to channels] -> num_convs x [kxk Conv-BN-ReLU] -> final_kernel conv to K*r*r ->
    PixelShuffle(r)``, with ``r = feature_stride / out_stride`` (8 for a stride-32 feature, 4 for stride 16).
    All the work happens at ``H/s x W/s``; the upsampling itself is a free reshuffle of channels into space.

    Args:
        in_channels: backbone feature channels.
        num_keypoints: K.
        feature_stride: stride of the input feature (32 or 16).
        out_stride: stride of the output heatmaps (4).
        num_convs: number of ``kernel_size`` Conv-BN-ReLU layers after the 1x1 reduction.
        channels: width of the conv stack. ``0`` removes the stack (and the reduction) entirely: the final 1x1 conv
            reads the backbone feature directly.
        kernel_size: kernel of the stack's convolutions (odd).
        final_bias: initial bias of the final conv. The default :data:`RCE_FINAL_BIAS` (``sigmoid = 0.01``) suits
            RCE/sigmoid training; use ``0.0`` for MSE training on raw outputs.
        final_kernel: kernel of the conv to ``K*r*r`` channels (odd). ``1``: each ``r x r`` block of the heatmap is
            read from its own feature cell only. ``3`` (ESPCN's choice for its sub-pixel layer, and the registry's
            default for the ResNet ``fasterpose_*`` models): a block also sees its neighbours, so a Gaussian that
            straddles two blocks is drawn from shared evidence; it costs ``9x`` the final layer's MACs.

    Shapes:
        ``forward``: ``(N, in_channels, H/s, W/s) -> (N, K, H/out_stride, W/out_stride)`` logits.
    """

    def __init__(self, in_channels: int, num_keypoints: int, feature_stride: int, out_stride: int = 4,
                 num_convs: int = 1, channels: int = 256, kernel_size: int = 3,
                 final_bias: float = RCE_FINAL_BIAS, final_kernel: int = 1) -> None:
        super().__init__()
        if feature_stride % out_stride:
            raise ValueError(f"feature_stride {feature_stride} is not a multiple of out_stride {out_stride}")
        if kernel_size % 2 != 1 or final_kernel % 2 != 1:
            raise ValueError(f"kernel_size and final_kernel must be odd (keep the spatial size), got {kernel_size} "
                             f"and {final_kernel}")
        if num_convs < 0 or channels < 0:
            raise ValueError(f"num_convs and channels must be >= 0, got {num_convs} and {channels}")
        self.num_keypoints = num_keypoints
        self.upscale = feature_stride // out_stride
        layers: list[nn.Module] = []
        width = in_channels
        if channels > 0:
            layers.append(_conv_bn_relu(in_channels, channels, 1))
            layers += [_conv_bn_relu(channels, channels, kernel_size) for _ in range(num_convs)]
            width = channels
        self.layers = nn.Sequential(*layers)
        self.final = nn.Conv2d(width, num_keypoints * self.upscale ** 2, kernel_size=final_kernel,
                               padding=final_kernel // 2)
        self.shuffle = nn.PixelShuffle(self.upscale)

        for m in self.layers.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        # Near-constant initial heatmaps at the prior (see RCE_FINAL_BIAS); small weights keep every sub-pixel
        # channel starting from the same point so the shuffled map has no checkerboard pattern at step 0.
        nn.init.normal_(self.final.weight, std=0.001)
        nn.init.constant_(self.final.bias, final_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shuffle(self.final(self.layers(x)))


def _deconv_padding(kernel: int) -> tuple[int, int]:
    """(padding, output_padding) making a stride-2 transposed conv exactly double the size (SimpleBaseline)."""
    if kernel == 4:
        return 1, 0
    if kernel == 3:
        return 1, 1
    if kernel == 2:
        return 0, 0
    raise ValueError(f"deconv kernel must be 2, 3 or 4, got {kernel}")


class DeconvHead(nn.Module):
    """SimpleBaseline head: ``num_deconv`` x (ConvTranspose2d stride 2, BN, ReLU), then a 1x1 conv to K.

    Parameter names (``deconv_layers.*``, ``final_layer.*``) follow SimpleBaseline's ``PoseResNet``.

    Args:
        in_channels: backbone feature channels.
        num_keypoints: K.
        num_deconv: number of x2 upsampling stages (3 for a stride-32 feature -> stride 4).
        channels: width of every deconv stage.
        kernel: deconv kernel size, 4 (default; padding 1), 3 or 2.
        final_bias: initial bias of the final conv (SimpleBaseline: 0).

    Shapes:
        ``forward``: ``(N, in_channels, h, w) -> (N, K, h * 2**num_deconv, w * 2**num_deconv)`` logits.
    """

    def __init__(self, in_channels: int, num_keypoints: int, num_deconv: int = 3, channels: int = 256,
                 kernel: int = 4, final_bias: float = 0.0) -> None:
        super().__init__()
        padding, output_padding = _deconv_padding(kernel)
        self.num_keypoints = num_keypoints
        self.upscale = 2 ** num_deconv
        layers: list[nn.Module] = []
        width = in_channels
        for _ in range(num_deconv):
            layers += [
                nn.ConvTranspose2d(width, channels, kernel, stride=2, padding=padding, output_padding=output_padding,
                                   bias=False),
                nn.BatchNorm2d(channels),
                nn.ReLU(inplace=True),
            ]
            width = channels
        self.deconv_layers = nn.Sequential(*layers)
        self.final_layer = nn.Conv2d(width, num_keypoints, kernel_size=1)

        # SimpleBaseline's initialisation.
        for m in self.deconv_layers.modules():
            if isinstance(m, nn.ConvTranspose2d):
                nn.init.normal_(m.weight, std=0.001)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.final_layer.weight, std=0.001)
        nn.init.constant_(self.final_layer.bias, final_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.final_layer(self.deconv_layers(x))
