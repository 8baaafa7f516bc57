"""Person detectors' costs without their weights: YOLOX-nano, YOLOX-tiny and RTMDet-tiny built in torch with random
weights, exported to ONNX in the layout of the published MMDeploy exports, and timed with onnxruntime.

The architectures follow the published models:

* **YOLOX** (Megvii's YOLOX, as in mmdet): CSPDarknet with the Focus stem (space to depth by four slices of the
  input, then a 3x3 convolution), CSP stages (1, 3, 3, 1 bottlenecks at depth 0.33), SPP (5, 9, 13) in the last
  stage; the PAFPN; a decoupled head per stride 8, 16, 32 (1x1 stem, two 3x3 convolutions each for classes and for
  boxes, class / box / objectness predictions). Nano: width 0.25, depthwise convolutions in the backbone's
  downsampling, the bottlenecks, the neck and the head. Tiny: width 0.375, plain convolutions. Input 416x416, BGR
  0-255 (rtmlib's ``yolox_tiny`` / ``yolox_nano`` Human-Art exports).
* **RTMDet-tiny** (mmdet): CSPNeXt (three 3x3 stem convolutions, CSP stages with CSPNeXt blocks: 3x3 convolution
  then a 5x5 depthwise-separable one, channel attention, SPP in the last stage; widen 0.375, deepen 0.167), the
  CSPNeXt PAFPN (96 channels out), and the separated-BN head (two shared 3x3 convolutions per branch, BN per level;
  distances times the stride). Input 640x640 (rtmlib's RTMDet default), BGR normalised by mean / std in the caller.

Output (MMDeploy's ``end2end.onnx``): ``dets`` (1, N, 5) ``x1 y1 x2 y2 score`` in input pixels and ``labels``
(1, N) int64, with NMS in the graph (``NonMaxSuppression`` on the 1,000 best-scoring anchors, at most 100 boxes).
Here the NMS is class-agnostic on each anchor's best class (MMDeploy's is per class); the class predictions'
bias is the published models' initialisation (prior 0.01) so that, as with trained weights, few anchors pass the
score threshold. With random weights the boxes mean nothing: the graphs measure cost, not accuracy.

    python benchmarks/detector_graphs.py --threads 1 2 --out benchmarks/results/detector_graphs.json

prints each graph's parameters, GMACs (with the published figures beside them) and onnxruntime milliseconds per
call, including the detector's pre-processing (:class:`fasterpose.detect.OnnxDetector`).
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

# name -> (family, input (h, w), published params (M), published GFLOPs, what the GFLOPs count)
PUBLISHED: dict[str, tuple[str, tuple[int, int], float, float, str]] = {
    "yolox_nano": ("yolox", (416, 416), 0.91, 1.08, "2 x MACs (YOLOX's README, at 416)"),
    "yolox_tiny": ("yolox", (416, 416), 5.06, 6.45, "2 x MACs (YOLOX's README, at 416)"),
    "rtmdet_tiny": ("rtmdet", (640, 640), 4.8, 8.1, "MACs (mmdet's RTMDet README, at 640)"),
}
NUM_CLASSES = 80
PRE_TOP_K = 1000
KEEP_TOP_K = 100
IOU_THR = 0.65
SCORE_THR = 0.05


def conv_bn(cin: int, cout: int, k: int = 1, s: int = 1, groups: int = 1) -> nn.Sequential:
    """Convolution, batch norm, SiLU: the unit both families are made of."""
    return nn.Sequential(nn.Conv2d(cin, cout, k, s, (k - 1) // 2, groups=groups, bias=False), nn.BatchNorm2d(cout),
                         nn.SiLU())


def dw_conv(cin: int, cout: int, k: int, s: int = 1) -> nn.Sequential:
    """Depthwise k x k, then pointwise 1 x 1 (each with BN and SiLU)."""
    return nn.Sequential(conv_bn(cin, cin, k, s, groups=cin), conv_bn(cin, cout, 1))


# ---------------------------------------------------------------------------------------------------------- YOLOX
class Bottleneck(nn.Module):
    def __init__(self, c: int, shortcut: bool, depthwise: bool) -> None:
        super().__init__()
        self.conv1 = conv_bn(c, c, 1)
        self.conv2 = dw_conv(c, c, 3) if depthwise else conv_bn(c, c, 3)
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(self.conv1(x))
        return x + y if self.shortcut else y


class CSPLayer(nn.Module):
    """YOLOX's CSP layer: two 1x1 branches, bottlenecks on one, concatenated and fused."""

    def __init__(self, cin: int, cout: int, n: int, shortcut: bool = True, depthwise: bool = False) -> None:
        super().__init__()
        hidden = int(cout * 0.5)
        self.conv1, self.conv2 = conv_bn(cin, hidden), conv_bn(cin, hidden)
        self.conv3 = conv_bn(2 * hidden, cout)
        self.m = nn.Sequential(*[Bottleneck(hidden, shortcut, depthwise) for _ in range(n)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv3(torch.cat([self.m(self.conv1(x)), self.conv2(x)], 1))


class SPP(nn.Module):
    """1x1 halving, max pools of 5, 9 and 13 beside the identity, 1x1 fusion."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        hidden = cin // 2
        self.conv1, self.conv2 = conv_bn(cin, hidden), conv_bn(4 * hidden, cout)
        self.pools = nn.ModuleList(nn.MaxPool2d(k, 1, k // 2) for k in (5, 9, 13))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        return self.conv2(torch.cat([x, *[p(x) for p in self.pools]], 1))


class Focus(nn.Module):
    """Space to depth by slicing the input four ways (YOLOX's stem), then a 3x3 convolution."""

    def __init__(self, cout: int) -> None:
        super().__init__()
        self.conv = conv_bn(12, cout, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([x[..., ::2, ::2], x[..., 1::2, ::2], x[..., ::2, 1::2], x[..., 1::2, 1::2]], 1))


class YoloxNet(nn.Module):
    """CSPDarknet + PAFPN + decoupled head; ``forward`` gives per-anchor ``(1, A, 4)`` corner boxes in input pixels
    and ``(1, A, C)`` scores (objectness x class)."""

    def __init__(self, width: float, depth: float = 0.33, depthwise: bool = False, num_classes: int = NUM_CLASSES,
                 prior: float = 0.01) -> None:
        super().__init__()
        down = dw_conv if depthwise else conv_bn
        bc, bd = int(64 * width), max(round(depth * 3), 1)
        self.stem = Focus(bc)
        self.dark2 = nn.Sequential(down(bc, 2 * bc, 3, 2), CSPLayer(2 * bc, 2 * bc, bd, depthwise=depthwise))
        self.dark3 = nn.Sequential(down(2 * bc, 4 * bc, 3, 2), CSPLayer(4 * bc, 4 * bc, 3 * bd, depthwise=depthwise))
        self.dark4 = nn.Sequential(down(4 * bc, 8 * bc, 3, 2), CSPLayer(8 * bc, 8 * bc, 3 * bd, depthwise=depthwise))
        self.dark5 = nn.Sequential(down(8 * bc, 16 * bc, 3, 2), SPP(16 * bc, 16 * bc),
                                   CSPLayer(16 * bc, 16 * bc, bd, shortcut=False, depthwise=depthwise))
        c3, c4, c5 = int(256 * width), int(512 * width), int(1024 * width)
        n = round(3 * depth)
        self.lateral_conv0 = conv_bn(c5, c4)
        self.c3_p4 = CSPLayer(2 * c4, c4, n, False, depthwise)
        self.reduce_conv1 = conv_bn(c4, c3)
        self.c3_p3 = CSPLayer(2 * c3, c3, n, False, depthwise)
        self.bu_conv2 = down(c3, c3, 3, 2)
        self.c3_n3 = CSPLayer(2 * c3, c4, n, False, depthwise)
        self.bu_conv1 = down(c4, c4, 3, 2)
        self.c3_n4 = CSPLayer(2 * c4, c5, n, False, depthwise)
        hc = int(256 * width)
        branch = (lambda: nn.Sequential(dw_conv(hc, hc, 3), dw_conv(hc, hc, 3))) if depthwise else \
            (lambda: nn.Sequential(conv_bn(hc, hc, 3), conv_bn(hc, hc, 3)))
        self.stems = nn.ModuleList(conv_bn(c, hc) for c in (c3, c4, c5))
        self.cls_convs = nn.ModuleList(branch() for _ in range(3))
        self.reg_convs = nn.ModuleList(branch() for _ in range(3))
        self.cls_preds = nn.ModuleList(nn.Conv2d(hc, num_classes, 1) for _ in range(3))
        self.reg_preds = nn.ModuleList(nn.Conv2d(hc, 4, 1) for _ in range(3))
        self.obj_preds = nn.ModuleList(nn.Conv2d(hc, 1, 1) for _ in range(3))
        for pred in (*self.cls_preds, *self.obj_preds):
            nn.init.constant_(pred.bias, -math.log((1 - prior) / prior))  # YOLOX's prior: 1% objectness / class
        self.up = nn.Upsample(scale_factor=2, mode="nearest")

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x2 = self.dark3(self.dark2(self.stem(x)))
        x1 = self.dark4(x2)
        x0 = self.dark5(x1)
        fpn0 = self.lateral_conv0(x0)
        f0 = self.c3_p4(torch.cat([self.up(fpn0), x1], 1))
        fpn1 = self.reduce_conv1(f0)
        pan2 = self.c3_p3(torch.cat([self.up(fpn1), x2], 1))
        pan1 = self.c3_n3(torch.cat([self.bu_conv2(pan2), fpn1], 1))
        pan0 = self.c3_n4(torch.cat([self.bu_conv1(pan1), fpn0], 1))
        boxes, scores = [], []
        for i, (feat, stride) in enumerate(zip((pan2, pan1, pan0), (8, 16, 32))):
            f = self.stems[i](feat)
            cls, reg = self.cls_preds[i](self.cls_convs[i](f)), self.reg_convs[i](f)
            box, obj = self.reg_preds[i](reg), self.obj_preds[i](reg)
            grid = _grid(feat, stride)
            box = box.flatten(2).transpose(1, 2)
            centre, size = (box[..., :2] + grid) * stride, box[..., 2:].exp() * stride
            boxes.append(torch.cat([centre - size / 2, centre + size / 2], -1))
            scores.append((cls.sigmoid() * obj.sigmoid()).flatten(2).transpose(1, 2))
        return torch.cat(boxes, 1), torch.cat(scores, 1)


def _grid(feat: torch.Tensor, stride: int) -> torch.Tensor:
    """``(1, H*W, 2)`` cell indices (x, y) of a feature map, row by row (sizes fixed at export)."""
    h, w = feat.shape[-2:]
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    return torch.stack([xs, ys], -1).reshape(1, -1, 2)


# --------------------------------------------------------------------------------------------------------- RTMDet
class ChannelAttention(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.fc = nn.Conv2d(c, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * nn.functional.hardsigmoid(self.fc(x.mean((2, 3), keepdim=True)))


class CSPNeXtBlock(nn.Module):
    def __init__(self, c: int, shortcut: bool) -> None:
        super().__init__()
        self.conv1, self.conv2 = conv_bn(c, c, 3), dw_conv(c, c, 5)
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(self.conv1(x))
        return x + y if self.shortcut else y


class CSPNeXtLayer(nn.Module):
    def __init__(self, cin: int, cout: int, n: int, shortcut: bool, attention: bool) -> None:
        super().__init__()
        mid = int(cout * 0.5)
        self.main, self.short, self.final = conv_bn(cin, mid), conv_bn(cin, mid), conv_bn(2 * mid, cout)
        self.blocks = nn.Sequential(*[CSPNeXtBlock(mid, shortcut) for _ in range(n)])
        self.attention = ChannelAttention(2 * mid) if attention else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.final(self.attention(torch.cat([self.blocks(self.main(x)), self.short(x)], 1)))


class RtmdetNet(nn.Module):
    """CSPNeXt + CSPNeXt PAFPN + separated-BN head with shared convolutions; outputs as :class:`YoloxNet`."""

    def __init__(self, widen: float = 0.375, deepen: float = 0.167, neck_out: int = 96,
                 num_classes: int = NUM_CLASSES, prior: float = 0.01) -> None:
        super().__init__()
        c = int(64 * widen)
        self.stem = nn.Sequential(conv_bn(3, c // 2, 3, 2), conv_bn(c // 2, c // 2, 3), conv_bn(c // 2, c, 3))
        stages = []
        for cin, cout, n, shortcut, spp in ((64, 128, 3, True, False), (128, 256, 6, True, False),
                                            (256, 512, 6, True, False), (512, 1024, 3, False, True)):
            cin, cout, n = int(cin * widen), int(cout * widen), max(round(n * deepen), 1)
            layers = [conv_bn(cin, cout, 3, 2)] + ([SPP(cout, cout)] if spp else [])
            stages.append(nn.Sequential(*layers, CSPNeXtLayer(cout, cout, n, shortcut, attention=True)))
        self.stages = nn.ModuleList(stages)
        ch = [int(256 * widen), int(512 * widen), int(1024 * widen)]
        self.reduce = nn.ModuleList([conv_bn(ch[2], ch[1]), conv_bn(ch[1], ch[0])])
        self.top_down = nn.ModuleList([CSPNeXtLayer(2 * ch[1], ch[1], 1, False, False),
                                       CSPNeXtLayer(2 * ch[0], ch[0], 1, False, False)])
        self.downs = nn.ModuleList([conv_bn(ch[0], ch[0], 3, 2), conv_bn(ch[1], ch[1], 3, 2)])
        self.bottom_up = nn.ModuleList([CSPNeXtLayer(2 * ch[0], ch[1], 1, False, False),
                                        CSPNeXtLayer(2 * ch[1], ch[2], 1, False, False)])
        self.out_convs = nn.ModuleList(conv_bn(c_, neck_out, 3) for c_ in ch)
        # Head: the 3x3 convolutions are shared by the levels, each level has its own batch norms.
        self.cls_convs = nn.ModuleList(nn.Conv2d(neck_out, neck_out, 3, 1, 1, bias=False) for _ in range(2))
        self.reg_convs = nn.ModuleList(nn.Conv2d(neck_out, neck_out, 3, 1, 1, bias=False) for _ in range(2))
        self.cls_bns = nn.ModuleList(nn.BatchNorm2d(neck_out) for _ in range(6))
        self.reg_bns = nn.ModuleList(nn.BatchNorm2d(neck_out) for _ in range(6))
        self.cls_preds = nn.ModuleList(nn.Conv2d(neck_out, num_classes, 1) for _ in range(3))
        self.reg_preds = nn.ModuleList(nn.Conv2d(neck_out, 4, 1) for _ in range(3))
        for pred in self.cls_preds:
            nn.init.constant_(pred.bias, -math.log((1 - prior) / prior))
        self.up = nn.Upsample(scale_factor=2, mode="nearest")

    def _branch(self, x: torch.Tensor, convs: nn.ModuleList, bns: nn.ModuleList, level: int) -> torch.Tensor:
        for j, conv in enumerate(convs):
            x = nn.functional.silu(bns[2 * level + j](conv(x)))
        return x

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.stem(x)
        feats = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i >= 1:
                feats.append(x)
        high = self.reduce[0](feats[2])
        p4 = self.top_down[0](torch.cat([self.up(high), feats[1]], 1))
        p4_reduced = self.reduce[1](p4)
        p3 = self.top_down[1](torch.cat([self.up(p4_reduced), feats[0]], 1))
        n4 = self.bottom_up[0](torch.cat([self.downs[0](p3), p4_reduced], 1))
        n5 = self.bottom_up[1](torch.cat([self.downs[1](n4), high], 1))
        boxes, scores = [], []
        for level, (feat, stride) in enumerate(zip((p3, n4, n5), (8, 16, 32))):
            f = self.out_convs[level](feat)
            cls = self.cls_preds[level](self._branch(f, self.cls_convs, self.cls_bns, level))
            dist = self.reg_preds[level](self._branch(f, self.reg_convs, self.reg_bns, level)) * stride
            points = _grid(f, stride) * stride
            dist = dist.flatten(2).transpose(1, 2)
            boxes.append(torch.cat([points - dist[..., :2], points + dist[..., 2:]], -1))
            scores.append(cls.sigmoid().flatten(2).transpose(1, 2))
        return torch.cat(boxes, 1), torch.cat(scores, 1)


# ------------------------------------------------------------------------------------------------------------ NMS
class _Nms(torch.autograd.Function):
    """ONNX ``NonMaxSuppression`` (what MMDeploy's graphs use): ``(K, 3)`` selected ``(batch, class, box)``."""

    @staticmethod
    def forward(ctx: Any, boxes: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:  # noqa: ARG004
        order = scores[0, 0].argsort(descending=True)[:KEEP_TOP_K]  # shapes only: the traced graph runs ONNX's NMS
        return torch.stack([torch.zeros_like(order), torch.zeros_like(order), order], 1)

    @staticmethod
    def symbolic(g: Any, boxes: Any, scores: Any) -> Any:
        max_out = g.op("Constant", value_t=torch.tensor([KEEP_TOP_K], dtype=torch.int64))
        iou = g.op("Constant", value_t=torch.tensor([IOU_THR], dtype=torch.float32))
        score = g.op("Constant", value_t=torch.tensor([SCORE_THR], dtype=torch.float32))
        return g.op("NonMaxSuppression", boxes, scores, max_out, iou, score)


class End2End(nn.Module):
    """A detector network with MMDeploy's end2end outputs: ``dets`` (1, N, 5) and ``labels`` (1, N)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        boxes, scores = self.net(x)
        best, labels = scores.max(-1)  # (1, A)
        top, idx = best.topk(min(PRE_TOP_K, best.shape[1]), dim=1)
        boxes, labels = boxes[0, idx[0]], labels[0, idx[0]]
        keep = _Nms.apply(boxes[None], top[:, None])[:, 2]
        return torch.cat([boxes[keep], top[0, keep, None]], 1)[None], labels[keep][None]


@dataclass
class Graph:
    """A built detector graph and its figures."""

    name: str
    family: str
    path: Path
    input_size: tuple[int, int]
    params: int
    gmacs: float


def build_net(name: str, prior: float = 0.01, spread: float = 0.0) -> nn.Module:
    """The torch network of ``name`` (a key of :data:`PUBLISHED`) with random weights, in eval mode.

    Args:
        prior: the score its class (and objectness) predictions start from (the published models' initialisation:
            0.01).
        spread: standard deviation of random logits added to those predictions' biases (0: none; a test uses it
            to get distinct scores).
    """
    torch.manual_seed(0)
    nets = {"yolox_nano": lambda: YoloxNet(0.25, depthwise=True, prior=prior),
            "yolox_tiny": lambda: YoloxNet(0.375, prior=prior), "rtmdet_tiny": lambda: RtmdetNet(prior=prior)}
    if name not in nets:
        raise SystemExit(f"unknown detector graph {name!r}; use one of {', '.join(nets)}")
    net = nets[name]().eval()
    if spread:
        for module_name, module in net.named_modules():
            if isinstance(module, nn.Conv2d) and module_name.startswith(("cls_preds", "obj_preds")):
                with torch.no_grad():
                    module.bias.add_(torch.randn_like(module.bias) * spread)
    return net


def gmacs(net: nn.Module, input_size: tuple[int, int]) -> float:
    """Giga multiply-accumulates of one forward pass (torch's FLOP counter / 2: convolutions and matmuls)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        net(torch.zeros(1, 3, *input_size))
    return counter.get_total_flops() / 2e9


def build_onnx(name: str, out_dir: Path, input_size: tuple[int, int] | None = None, prior: float = 0.01,
               spread: float = 0.0) -> Graph:
    """Export ``name`` at ``input_size`` (default: the published one; multiples of 32) to
    ``out_dir/NAME_HxW.onnx``."""
    family, published_size, *_ = PUBLISHED[name]
    h, w = input_size or published_size
    net = build_net(name, prior, spread)
    path = Path(out_dir) / f"{name}_{h}x{w}.onnx"
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation and tracer warnings
        torch.onnx.export(End2End(net), (torch.rand(1, 3, h, w) * 255,), str(path), input_names=["input"],
                          output_names=["dets", "labels"], opset_version=17, dynamo=False)
    return Graph(name, family, path, (h, w), sum(p.numel() for p in net.parameters()), gmacs(net, (h, w)))


def time_graph(graph: Graph, threads: int, repeats: int, image: np.ndarray) -> dict[str, Any]:
    """Median wall milliseconds of ``OnnxDetector(graph)(image)`` (letterbox, normalisation, the graph, decoding),
    and its mean CPU milliseconds (``time.process_time``, all the process's threads: the work done, which other
    processes on the machine disturb much less than the wall time)."""
    from fasterpose.detect import OnnxDetector

    det = OnnxDetector(graph.path, layout=graph.family, threads=threads)
    det(image)  # warm-up
    times, cpu = [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        det(image)
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return {"threads": threads, "median_ms": round(1e3 * float(np.median(times)), 2),
            "p90_ms": round(1e3 * float(np.percentile(times, 90)), 2), "cpu_ms": round(1e3 * float(np.mean(cpu)), 2)}


def main() -> None:
    from fasterpose.cpu import cpu_class, format_cpu
    from fasterpose.io_utils import atomic_write_json

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(PUBLISHED), help="graphs to build and time")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="onnxruntime threads (1 2)")
    parser.add_argument("--repeats", type=int, default=20, help="timed calls per setting (20)")
    parser.add_argument("--input-size", type=int, nargs=2, default=None, metavar=("H", "W"),
                        help="one input size for all (default: each model's published size)")
    parser.add_argument("--out", default=None, help="write the numbers as JSON here")
    args = parser.parse_args()
    image = np.random.default_rng(0).integers(0, 256, (576, 768, 3), dtype=np.uint8)  # a vtest-sized frame
    rows = []
    with tempfile.TemporaryDirectory(prefix="detector_graphs_") as tmp:
        for name in args.models:
            g = build_onnx(name, Path(tmp), tuple(args.input_size) if args.input_size else None)
            _, _, p_params, p_gflops, what = PUBLISHED[name]
            for threads in args.threads:
                row = {"model": name, "input_size": list(g.input_size), "params_m": round(g.params / 1e6, 3),
                       "gmacs": round(g.gmacs, 3), "published_params_m": p_params, "published_gflops": p_gflops,
                       "published_gflops_counts": what, **time_graph(g, threads, args.repeats, image)}
                rows.append(row)
                print(json.dumps(row), flush=True)
    print(f"\nCPU: {format_cpu()}\n\n| model | input | params (M) | published | GMACs | published GFLOPs | threads | "
          "median ms | p90 ms | CPU ms |\n|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['input_size'][0]}x{r['input_size'][1]} | {r['params_m']} | "
              f"{r['published_params_m']} | {r['gmacs']} | {r['published_gflops']} ({r['published_gflops_counts']}) "
              f"| {r['threads']} | {r['median_ms']} | {r['p90_ms']} | {r['cpu_ms']} |")
    if args.out:
        atomic_write_json(args.out, {"cpu": format_cpu(), "cpu_class": cpu_class(), "rows": rows}, indent=1)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
