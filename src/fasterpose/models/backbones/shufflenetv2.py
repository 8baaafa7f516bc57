"""ShuffleNetV2 x1.0 feature extractor with torchvision's parameter names (``conv1``, ``stage2..4``, ``conv5``)."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ShuffleNetV2", "ShuffleUnit", "channel_shuffle"]

# width multiplier -> stage output channels (conv1, stage2, stage3, stage4, conv5), from torchvision.
_STAGE_OUT_CHANNELS = {0.5: (24, 48, 96, 192, 1024), 1.0: (24, 116, 232, 464, 1024),
                       1.5: (24, 176, 352, 704, 1024), 2.0: (24, 244, 488, 976, 2048)}
_STAGE_REPEATS = (4, 8, 4)


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Interleave channel groups: ``(N, g*c, H, W) -> (N, c*g, H, W)`` with the group index varying fastest.

    Written with ``unflatten``/``flatten`` rather than ``view(b, g, c, h, w)`` so no Python ints are read from the
    tensor shape, which keeps ONNX export free of shape-dependent constants.
    """
    return x.unflatten(1, (groups, -1)).transpose(1, 2).flatten(1, 2)


def _depthwise(channels: int, stride: int, dilation: int) -> nn.Conv2d:
    return nn.Conv2d(channels, channels, 3, stride, padding=dilation, dilation=dilation, groups=channels, bias=False)


class ShuffleUnit(nn.Module):
    """ShuffleNetV2 unit (torchvision's ``InvertedResidual``).

    A *downsampling* unit (the first of each stage) runs both branches on the whole input and concatenates them;
    a regular unit splits the channels in half and transforms only the second half. ``downsample`` is separate from
    ``stride`` so the stride-16 variant can keep the two-branch structure (and torchvision's parameter shapes) with
    stride 1 and dilation.
    """

    def __init__(self, inp: int, oup: int, stride: int = 1, downsample: bool = False, dilation: int = 1) -> None:
        super().__init__()
        branch_features = oup // 2
        if not downsample and inp != branch_features * 2:
            raise ValueError(f"a non-downsampling ShuffleUnit needs inp == oup, got {inp} -> {oup}")
        self.downsample = downsample
        if downsample:
            self.branch1 = nn.Sequential(
                _depthwise(inp, stride, dilation), nn.BatchNorm2d(inp),
                nn.Conv2d(inp, branch_features, 1, bias=False), nn.BatchNorm2d(branch_features), nn.ReLU(inplace=True),
            )
        else:
            self.branch1 = nn.Sequential()
        self.branch2 = nn.Sequential(
            nn.Conv2d(inp if downsample else branch_features, branch_features, 1, bias=False),
            nn.BatchNorm2d(branch_features), nn.ReLU(inplace=True),
            _depthwise(branch_features, stride, dilation), nn.BatchNorm2d(branch_features),
            nn.Conv2d(branch_features, branch_features, 1, bias=False),
            nn.BatchNorm2d(branch_features), nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.downsample:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        else:
            x1, x2 = x.chunk(2, dim=1)
            out = torch.cat((x1, self.branch2(x2)), dim=1)
        return channel_shuffle(out, 2)


class ShuffleNetV2(nn.Module):
    """ShuffleNetV2 trunk up to and including ``conv5`` (1x1 conv to 1024 channels for x1.0).

    Args:
        width_mult: 0.5, 1.0 (default; the one FasterPose uses), 1.5 or 2.0.
        output_stride: 32 (default) or 16. With 16, ``stage4`` keeps the resolution and its depthwise convolutions
            use dilation 2 (the first unit keeps dilation 1); parameter shapes are unchanged.

    Attributes:
        out_channels: channels of ``conv5`` (1024 for x1.0).
        output_stride: input size / feature size.

    Shapes:
        ``forward``: ``(N, 3, H, W) -> (N, out_channels, H / output_stride, W / output_stride)``.
    """

    def __init__(self, width_mult: float = 1.0, output_stride: int = 32) -> None:
        super().__init__()
        if width_mult not in _STAGE_OUT_CHANNELS:
            raise ValueError(f"ShuffleNetV2 width_mult must be one of {sorted(_STAGE_OUT_CHANNELS)}, got {width_mult}")
        if output_stride not in (16, 32):
            raise ValueError(f"ShuffleNetV2 output_stride must be 16 or 32, got {output_stride}")
        self.output_stride = output_stride
        channels = _STAGE_OUT_CHANNELS[width_mult]
        self.conv1 = nn.Sequential(nn.Conv2d(3, channels[0], 3, 2, 1, bias=False), nn.BatchNorm2d(channels[0]),
                                   nn.ReLU(inplace=True))
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        inp = channels[0]
        for i, (repeats, oup) in enumerate(zip(_STAGE_REPEATS, channels[1:4])):
            dilated = output_stride == 16 and i == 2
            units = [ShuffleUnit(inp, oup, stride=1 if dilated else 2, downsample=True)]
            units += [ShuffleUnit(oup, oup, dilation=2 if dilated else 1) for _ in range(repeats - 1)]
            setattr(self, f"stage{i + 2}", nn.Sequential(*units))
            inp = oup
        self.conv5 = nn.Sequential(nn.Conv2d(inp, channels[4], 1, 1, 0, bias=False), nn.BatchNorm2d(channels[4]),
                                   nn.ReLU(inplace=True))
        self.out_channels = channels[4]
        # torchvision keeps PyTorch's default conv init here; only make BN explicit.
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.conv1(x))
        x = self.stage4(self.stage3(self.stage2(x)))
        return self.conv5(x)
