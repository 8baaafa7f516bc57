"""ResNet-18/34/50/101/152 feature extractors with torchvision's parameter names (minus ``fc``).

The module tree mirrors ``torchvision.models.resnet`` exactly (``conv1``, ``bn1``, ``layer1.0.conv1``, ...,
``layerN.0.downsample.0/1``) so that torchvision ImageNet checkpoints load with
:func:`fasterpose.models.backbones.load_pretrained` without any renaming.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ResNet", "BasicBlock", "Bottleneck", "RESNET_SPECS"]


def _conv3x3(in_planes: int, out_planes: int, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=dilation, dilation=dilation,
                     bias=False)


def _conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (ResNet-18/34).

    Unlike torchvision (which raises for ``dilation > 1``), dilation is supported: both 3x3 convolutions use it,
    which is what the stride-16 variant needs. Parameter names and shapes do not depend on dilation.
    """

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 dilation: int = 1) -> None:
        super().__init__()
        self.conv1 = _conv3x3(inplanes, planes, stride, dilation)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes, dilation=dilation)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carries stride and dilation, torchvision "ResNet v1.5"), 1x1 expand (ResNet-50/101/152)."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 dilation: int = 1) -> None:
        super().__init__()
        self.conv1 = _conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, stride, dilation)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = _conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


# depth -> (block, blocks per stage)
RESNET_SPECS: dict[int, tuple[type[BasicBlock] | type[Bottleneck], tuple[int, int, int, int]]] = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
    152: (Bottleneck, (3, 8, 36, 3)),
}


class ResNet(nn.Module):
    """ResNet trunk returning the last stage's feature map.

    Args:
        depth: 18, 34, 50, 101 or 152.
        output_stride: 32 (default) or 16. With 16, ``layer4`` keeps the resolution and uses dilation 2, exactly
            like torchvision's ``replace_stride_with_dilation=[False, False, True]``.
        num_stages: 4 (default) or 3. With 3 the trunk ends after ``layer3`` (no ``layer4`` at all): a stride-16
            feature of 256 (BasicBlock) or 1024 (Bottleneck) channels. It drops the most expensive part of a
            stride-16 ResNet (the dilated ``layer4`` is half of ResNet-18's MACs at stride 16); ImageNet weights
            still load (``layer4.*`` is ignored). ``output_stride`` must then be 16.

    Attributes:
        out_channels: channels of the returned feature (512 for ResNet-18/34, 2048 otherwise; 256 / 1024 with
            ``num_stages=3``).
        output_stride: input size / feature size.

    Shapes:
        ``forward``: ``(N, 3, H, W) -> (N, out_channels, H / output_stride, W / output_stride)``.
    """

    def __init__(self, depth: int = 50, output_stride: int = 32, num_stages: int = 4) -> None:
        super().__init__()
        if depth not in RESNET_SPECS:
            raise ValueError(f"ResNet depth must be one of {sorted(RESNET_SPECS)}, got {depth}")
        if output_stride not in (16, 32):
            raise ValueError(f"ResNet output_stride must be 16 or 32, got {output_stride}")
        if num_stages not in (3, 4):
            raise ValueError(f"ResNet num_stages must be 3 or 4, got {num_stages}")
        if num_stages == 3 and output_stride != 16:
            raise ValueError("a 3-stage ResNet (no layer4) has output stride 16; pass output_stride=16")
        block, layers = RESNET_SPECS[depth]
        self.depth = depth
        self.output_stride = output_stride
        self.num_stages = num_stages
        self.inplanes = 64
        self.dilation = 1
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        if num_stages == 4:
            self.layer4 = self._make_layer(block, 512, layers[3], stride=2, dilate=output_stride == 16)
        self.out_channels = (512 if num_stages == 4 else 256) * block.expansion
        # torchvision's initialisation, so an untrained backbone behaves like torchvision's.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def zero_init_residual_(self) -> None:
        """Zero the last BatchNorm scale of every residual block (torchvision's ``zero_init_residual=True``).

        Each block then starts as the identity, so an untrained network is effectively shallow and learns faster
        from scratch (Goyal et al., 2017). Pretrained weights loaded afterwards overwrite it.
        """
        for m in self.modules():
            if isinstance(m, Bottleneck):
                nn.init.zeros_(m.bn3.weight)
            elif isinstance(m, BasicBlock):
                nn.init.zeros_(m.bn2.weight)

    def _make_layer(self, block: type[BasicBlock] | type[Bottleneck], planes: int, blocks: int, stride: int = 1,
                    dilate: bool = False) -> nn.Sequential:
        previous_dilation = self.dilation
        if dilate:
            # Trade the stride for dilation: the first block keeps the previous dilation, the others use the new one.
            self.dilation *= stride
            stride = 1
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(_conv1x1(self.inplanes, planes * block.expansion, stride),
                                       nn.BatchNorm2d(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample, previous_dilation)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes, dilation=self.dilation) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer3(self.layer2(self.layer1(self.maxpool(self.relu(self.bn1(self.conv1(x)))))))
        return self.layer4(x) if self.num_stages == 4 else x
