"""Backbones (torchvision compatibility, strides), heads, registry, pretrained loading, complexity."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

import fasterpose
from fasterpose.errors import CheckpointError, ConfigError, FasterPoseError
from fasterpose.models import (
    DeconvHead,
    PoseModel,
    SubPixelHead,
    UnknownModelError,
    build_backbone,
    count_gmacs,
    count_params,
    create_model,
    list_models,
    load_pretrained,
    model_complexity,
    model_info,
    output_shape,
)

FIXTURES = Path(__file__).parent / "fixtures"
SMALL = (64, 32)  # smallest input valid for stride 32: LR feature 2x1, heatmaps 16x8

EXPECTED_MODELS = {
    "fasterpose_r18", "fasterpose_r18_l3", "fasterpose_r34", "fasterpose_r50", "fasterpose_r101", "fasterpose_r152",
    "fasterpose_mbv2", "fasterpose_shufflev2", "simplebaseline_r18", "simplebaseline_r34", "simplebaseline_r50",
    "simplebaseline_r101", "simplebaseline_r152",
}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # Tiny tensors: intra-op threading only adds synchronisation (and is slow on a shared, busy machine).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _torchvision_shapes(name: str) -> dict[str, list[int]]:
    """Names/shapes dumped from real torchvision 0.28 (see fixtures/README.md), minus the classifier."""
    shapes = json.loads((FIXTURES / f"torchvision_{name}.json").read_text())
    return {k: v for k, v in shapes.items() if not k.startswith(("fc.", "classifier."))}


def _shapes(module: nn.Module) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in module.state_dict().items()}


# --- backbones -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["resnet18", "resnet50", "mobilenet_v2", "shufflenet_v2_x1_0"])
@pytest.mark.parametrize("output_stride", [32, 16])
def test_backbone_state_dict_matches_torchvision(name: str, output_stride: int) -> None:
    ours = _shapes(build_backbone(name, output_stride))
    ref = _torchvision_shapes(name)
    assert set(ours) == set(ref), (sorted(set(ref) - set(ours))[:5], sorted(set(ours) - set(ref))[:5])
    assert ours == ref
    assert any(k.endswith("num_batches_tracked") for k in ours)


@pytest.mark.parametrize("name, channels", [("resnet18", 512), ("resnet50", 2048), ("mobilenet_v2", 1280),
                                            ("shufflenet_v2_x1_0", 1024)])
@pytest.mark.parametrize("output_stride", [32, 16])
def test_backbone_feature_shape(name: str, channels: int, output_stride: int) -> None:
    backbone = build_backbone(name, output_stride).eval()
    assert backbone.out_channels == channels and backbone.output_stride == output_stride
    with torch.no_grad():
        feature = backbone(torch.zeros(1, 3, 64, 96))
    assert feature.shape == (1, channels, 64 // output_stride, 96 // output_stride)


def test_backbone_rejects_bad_stride() -> None:
    with pytest.raises(ValueError, match="output_stride"):
        build_backbone("resnet18", 8)


# --- pretrained loading --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("wrapper, prefix", [(None, ""), ("state_dict", "module."), ("model", "")])
def test_load_pretrained_round_trip(tmp_path: Path, wrapper: str | None, prefix: str) -> None:
    src = build_backbone("resnet18")
    with torch.no_grad():
        src.bn1.running_mean.uniform_()  # buffers must travel too
    state = {f"{prefix}{k}": v for k, v in src.state_dict().items()}  # "module.": saved from a DDP-wrapped model
    state[f"{prefix}fc.weight"] = torch.randn(1000, 512)
    state[f"{prefix}fc.bias"] = torch.randn(1000)
    path = tmp_path / "resnet18_imagenet.pth"
    torch.save(state if wrapper is None else {wrapper: state, "epoch": 90}, path)

    model = create_model("fasterpose_r18", pretrained=path)
    for key, value in src.state_dict().items():
        assert torch.equal(model.backbone.state_dict()[key], value), key
    assert sorted(load_pretrained(build_backbone("resnet18"), path)) == ["fc.bias", "fc.weight"]
    # a 3-stage trunk (fasterpose_r18_l3) takes the same file: stages 1-3 load, layer4 is not part of it
    l3 = create_model("fasterpose_r18_l3", pretrained=path)
    assert not hasattr(l3.backbone, "layer4")
    for key, value in l3.backbone.state_dict().items():
        assert torch.equal(value, src.state_dict()[key]), key
    ignored = load_pretrained(build_backbone("resnet18", 16, num_stages=3), path)
    assert "fc.weight" in ignored and all(k.startswith(("fc.", "layer4.")) for k in ignored) and len(ignored) > 2


def test_three_stage_resnet_variant() -> None:
    """fasterpose_r18_l3: ResNet-18 up to layer3 (stride 16, 256 channels); half the MACs of fasterpose_r18 at
    stride 16, by hand: the dilated layer4 of ResNet-18 at a 12x8 grid is 2 blocks of 2 3x3 convs 512->512 (one
    256->512) plus a 1x1 downsample 256->512 = 0.805 GMACs of the 1.62, and the head's 1x1 reduction takes 256
    instead of 512 channels."""
    model = create_model("fasterpose_r18_l3")
    assert model.feature_stride == 16 and model.backbone.out_channels == 256 and model.backbone.num_stages == 3
    assert model(torch.randn(1, 3, 192, 128)).shape == (1, 17, 48, 32)
    full = create_model("fasterpose_r18", output_stride=16)
    cells = 12 * 8
    layer4 = cells * 9 * (256 * 512 + 3 * 512 * 512) + cells * 256 * 512
    head_in = cells * (512 - 256) * 256  # the head's 1x1 reduction: 512 -> 256 vs 256 -> 256
    expected = count_gmacs(full, (192, 128)) - (layer4 + head_in) / 1e9
    assert count_gmacs(model, (192, 128)) == pytest.approx(expected, rel=1e-6)  # integer MACs / 1e9 in float64
    with pytest.raises(ConfigError, match="stride 16"):
        create_model("fasterpose_r18_l3", output_stride=32)
    with pytest.raises(ConfigError, match="ResNet"):
        create_model("fasterpose_mbv2", num_stages=3)


def test_load_pretrained_without_num_batches_tracked(tmp_path: Path) -> None:
    src = build_backbone("shufflenet_v2_x1_0")
    state = {k: v for k, v in src.state_dict().items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / "old.pth"
    torch.save(state, path)
    dst = build_backbone("shufflenet_v2_x1_0")
    assert load_pretrained(dst, path) == []
    assert torch.equal(dst.conv5[0].weight, src.conv5[0].weight)


def test_load_pretrained_mismatch_lists_keys(tmp_path: Path) -> None:
    state = build_backbone("resnet18").state_dict()
    del state["layer4.1.bn2.weight"]
    state["layer5.0.conv1.weight"] = torch.zeros(1)
    path = tmp_path / "wrong.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError) as info:
        load_pretrained(build_backbone("resnet50"), path)  # resnet18 weights into a resnet50
    msg = str(info.value)
    assert "wrong.pth" in msg and "missing keys" in msg and "unexpected keys" in msg and "shape mismatches" in msg
    assert "layer5.0.conv1.weight" in msg and "layer1.0.conv3.weight" in msg
    assert "conv1.weight" in msg and "(64, 64, 3, 3)" in msg


def test_create_model_pretrained_errors_point_to_download(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="resnet50-0676ba61.pth"):
        create_model("simplebaseline_r50", pretrained=tmp_path / "missing.pth")
    with pytest.raises(ConfigError, match="mobilenet_v2-b0353104.pth"):
        create_model("fasterpose_mbv2", pretrained=True)


def test_load_pretrained_missing_or_garbage_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        load_pretrained(build_backbone("resnet18"), tmp_path / "nope.pth")
    bad = tmp_path / "garbage.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="garbage.pth"):
        load_pretrained(build_backbone("resnet18"), bad)


# --- heads ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("feature_stride, size", [(32, (2, 3)), (16, (4, 6))])
def test_subpixel_head_shape_and_init(feature_stride: int, size: tuple[int, int]) -> None:
    head = SubPixelHead(64, 5, feature_stride=feature_stride, channels=32)
    assert head.upscale == feature_stride // 4
    assert head.final.out_channels == 5 * head.upscale ** 2
    out = head.eval()(torch.randn(2, 64, *size))
    assert out.shape == (2, 5, size[0] * head.upscale, size[1] * head.upscale)
    # initial probabilities close to the small prior, for every pixel: the std-0.001 final weights over 32
    # channels move the logit by ~0.01, i.e. p by ~1e-4 (an initialisation bound, not round-off)
    assert torch.allclose(torch.sigmoid(out), torch.full_like(out, 0.01), atol=0.005)
    assert torch.all(SubPixelHead(64, 5, 32, final_bias=0.0).final.bias == 0)


def test_subpixel_head_without_conv_stack() -> None:
    head = SubPixelHead(64, 3, feature_stride=32, channels=0)
    assert len(head.layers) == 0 and head.final.in_channels == 64
    assert head(torch.randn(1, 64, 2, 2)).shape == (1, 3, 16, 16)


def test_subpixel_head_final_kernel_3_sees_neighbour_cells() -> None:
    """final_kernel=3 (ESPCN's sub-pixel layer): a heatmap block depends on the neighbouring feature cells."""
    torch.manual_seed(0)
    for k, expect_neighbour in ((1, False), (3, True)):
        head = SubPixelHead(8, 2, feature_stride=32, channels=0, final_kernel=k).eval()
        nn.init.normal_(head.final.weight)
        x = torch.randn(1, 8, 3, 3, requires_grad=True)
        out = head(x)
        assert out.shape == (1, 2, 24, 24)
        out[0, :, :8, :8].sum().backward()  # the block of feature cell (0, 0)
        touched = x.grad.abs().sum(dim=1)[0] > 0
        assert touched[0, 0] and bool(touched[0, 1]) == expect_neighbour and bool(touched[1, 1]) == expect_neighbour
        assert not touched[2, 2]
    with pytest.raises(ValueError, match="final_kernel"):
        SubPixelHead(8, 2, feature_stride=32, final_kernel=2)


def test_final_kernel_defaults_per_backbone() -> None:
    """3x3 sub-pixel conv on ResNets, 1x1 on the light backbones (where 3x3 would add 35-55% MACs)."""
    assert create_model("fasterpose_r18").head.final.kernel_size == (3, 3)
    assert create_model("fasterpose_r50").head.final.kernel_size == (3, 3)
    assert create_model("fasterpose_mbv2").head.final.kernel_size == (1, 1)
    assert create_model("fasterpose_shufflev2").head.final.kernel_size == (1, 1)
    assert create_model("fasterpose_r18", final_kernel=1).head.final.kernel_size == (1, 1)


@pytest.mark.parametrize("name, last_bn", [("fasterpose_r18", "bn2"), ("fasterpose_r50", "bn3")])
def test_zero_init_residual(name: str, last_bn: str) -> None:
    """Every residual block starts as the identity: its last BatchNorm scale is zero, the others are one."""
    model = create_model(name, num_keypoints=3, zero_init_residual=True)
    blocks = [b for layer in ("layer1", "layer2", "layer3", "layer4") for b in getattr(model.backbone, layer)]
    assert blocks and all(torch.all(getattr(b, last_bn).weight == 0) for b in blocks)
    assert all(torch.all(b.bn1.weight == 1) for b in blocks)
    assert torch.all(create_model(name, num_keypoints=3).backbone.layer1[0].bn1.weight == 1)
    with pytest.raises(ConfigError, match="ResNet"):
        create_model("fasterpose_mbv2", zero_init_residual=True)


def test_deconv_head_simplebaseline_layout() -> None:
    head = DeconvHead(128, 4, num_deconv=3, channels=16)
    deconvs = [m for m in head.deconv_layers if isinstance(m, nn.ConvTranspose2d)]
    assert len(deconvs) == 3
    for m in deconvs:
        assert (m.kernel_size, m.stride, m.padding, m.output_padding, m.bias) == ((4, 4), (2, 2), (1, 1), (0, 0), None)
    assert torch.all(head.final_layer.bias == 0)
    assert head(torch.randn(1, 128, 2, 3)).shape == (1, 4, 16, 24)


# --- registry and full models --------------------------------------------------------------------------------------

def test_registry_names() -> None:
    assert set(list_models()) == EXPECTED_MODELS
    assert fasterpose.list_models() == list_models()
    assert fasterpose.create_model is create_model
    assert model_info("fasterpose_mbv2").backbone == "mobilenet_v2"


@pytest.mark.parametrize("name", sorted(EXPECTED_MODELS))
def test_forward_backward_every_model(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name, num_keypoints=5)
    assert isinstance(model, PoseModel) and model.name == name and model.num_keypoints == 5
    x = torch.randn(2, 3, *SMALL)
    out = model(x)
    assert out.shape == (2, 5, SMALL[0] // 4, SMALL[1] // 4)
    assert torch.isfinite(out).all()
    out.float().square().mean().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    final = model.head.final_layer if isinstance(model.head, DeconvHead) else model.head.final
    assert final.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("name", ["fasterpose_r18", "fasterpose_mbv2", "fasterpose_shufflev2", "simplebaseline_r50"])
def test_stride16_models(name: str) -> None:
    model = create_model(name, num_keypoints=3, output_stride=16).eval()
    assert model.feature_stride == 16
    x = torch.randn(1, 3, 48, 32)  # multiple of 16 only
    with torch.no_grad():
        assert model.backbone(x).shape[-2:] == (3, 2)
        assert model(x).shape == (1, 3, 12, 8)
    if name.startswith("fasterpose"):
        assert model.head.upscale == 4


def test_overrides() -> None:
    model = create_model("fasterpose_r18", head_channels=64, head_num_convs=2, head_kernel_size=5, final_bias=0.0)
    convs = [m for m in model.head.layers.modules() if isinstance(m, nn.Conv2d)]
    assert [c.kernel_size for c in convs] == [(1, 1), (5, 5), (5, 5)] and convs[-1].out_channels == 64
    assert torch.all(model.head.final.bias == 0)
    with pytest.raises(ConfigError, match="head_channels") as info:
        create_model("fasterpose_r18", head_chanels=64)
    assert "head_chanels" in str(info.value)
    with pytest.raises(ConfigError, match="head_num_deconv"):
        create_model("simplebaseline_r50", head_num_convs=2)
    with pytest.raises(ConfigError, match="output_stride"):
        create_model("fasterpose_r18", output_stride=8)


def test_unknown_model_suggests_closest() -> None:
    with pytest.raises(UnknownModelError) as info:
        create_model("fasterpose_r05")
    msg = str(info.value)
    assert "fasterpose_r05" in msg and "Did you mean fasterpose_r50" in msg
    assert isinstance(info.value, KeyError) and isinstance(info.value, FasterPoseError)
    assert not msg.startswith("'")  # not KeyError's repr-quoting


# --- complexity ----------------------------------------------------------------------------------------------------

def test_fasterpose_cheaper_than_simplebaseline_at_256x192() -> None:
    fp = create_model("fasterpose_r50")
    sb = create_model("simplebaseline_r50")
    assert output_shape(fp, (256, 192)) == (1, 17, 64, 48)
    assert output_shape(sb, (256, 192)) == (1, 17, 64, 48)
    fp_gmacs, sb_gmacs = count_gmacs(fp, (256, 192)), count_gmacs(sb, (256, 192))
    assert fp_gmacs <= 0.80 * sb_gmacs, (fp_gmacs, sb_gmacs)  # exact MAC counts: 4.18 vs 5.43 GMACs
    assert count_params(sb) == pytest.approx(34.0e6, rel=0.01)  # SimpleBaseline paper: 34.0M (count 33,999,697)
    assert fp.training and sb.training  # measuring leaves the mode alone


def test_gmacs_hand_count() -> None:
    # One 3x3 conv 3->8 at 8x8 (64*8*27 MACs) and one stride-2 4x4 transposed conv 8->4 from 8x8 (64*8*4*16 MACs).
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                          nn.ConvTranspose2d(8, 4, 4, stride=2, padding=1), nn.PixelShuffle(2))
    c = model_complexity(model, (8, 8))
    assert c["gmacs"] * 1e9 == pytest.approx(64 * 8 * 27 + 64 * 8 * 4 * 16)  # integer count / 2e9 * 1e9: 1 ulp
    assert c["output_shape"] == [1, 1, 32, 32]
    assert c["params"] == 8 * 27 + 8 + 16 + 8 * 4 * 16 + 4


# --- export --------------------------------------------------------------------------------------------------------

@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the TorchScript exporter; dynamo needs onnxscript
def test_onnx_export_matches_torch(tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    torch.manual_seed(0)
    model = create_model("fasterpose_shufflev2")
    # At initialisation the BN statistics (mean 0, var 1) shrink the trunk's output to ~1e-5 and the head's final
    # weights (std 0.001) leave nothing but the constant bias (-4.6) in the output, which would hide any export
    # error. Calibrate the statistics on one batch and give the final conv unit-variance outputs (std ~1.2 here).
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = None  # cumulative average: one training-mode pass sets the batch's statistics
    with torch.no_grad():
        model.train()(torch.randn(8, 3, *SMALL))
        nn.init.normal_(model.head.final.weight, std=model.head.final.in_channels ** -0.5)
    model.eval()
    path = tmp_path / "model.onnx"
    torch.onnx.export(model, (torch.zeros(1, 3, *SMALL),), str(path), dynamo=False, input_names=["images"],
                      output_names=["heatmaps"], dynamic_axes={"images": {0: "n"}, "heatmaps": {0: "n"}})
    x = torch.randn(2, 3, *SMALL)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"images": x.numpy()})[0]
    with torch.no_grad():
        want = model(x).numpy()
    # Two float32 kernels (onnxruntime's MLAS with BN folded into the convs vs oneDNN; their blockings also differ
    # between AVX2 and AVX-512): ~55 conv layers, each adding ~sqrt(fan-in <= 2304) * u = 3e-6 relative, put each
    # ~1e-5 of max|out| from a float64 forward (measured: torch vs onnxruntime 1.7e-5 * max|out| with AVX2 and
    # AVX-512 kernels). 1e-4 * max|out| leaves ~6x; a wrong export (shuffled channels, lost BN) is O(1) off.
    assert got.shape == want.shape and abs(got - want).max() < 1e-4 * abs(want).max()
