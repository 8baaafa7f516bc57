"""``fasterpose.Predictor``: torch vs onnxruntime, no torch on the ORT path, box handling, clear errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")

from fasterpose import Predictor, create_model  # noqa: E402
from fasterpose.checkpoint import save_checkpoint  # noqa: E402
from fasterpose.codec import HeatmapCodec, flip_back, sigmoid  # noqa: E402
from fasterpose.deploy.export import export_onnx  # noqa: E402
from fasterpose.deploy.predictor import clip_boxes  # noqa: E402
from fasterpose.errors import CheckpointError, DataError  # noqa: E402
from fasterpose.geometry import box_to_center_scale, crop_person, crop_to_image, normalize_crop  # noqa: E402
from fasterpose.keypoints import COCO17  # noqa: E402
from fasterpose.spec import PoseSpec  # noqa: E402

DATA = Path(__file__).parent / "data"
PHOTO = DATA / "people" / "basketball1.png"
# The two detector boxes of basketball1.png in tests/data/people/person_detections.json (x, y, w, h, score).
BOXES = np.array([[432.56, 22.95, 206.64, 457.05, 0.9206], [33.28, 80.38, 136.36, 398.77, 0.8972]])
SIZE = (128, 96)


def _spec(**kw) -> PoseSpec:
    return PoseSpec(**{"model_name": "fasterpose_r18", "input_size": SIZE, "codec": {"input_size": list(SIZE)}, **kw})


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """A seeded random fasterpose_r18 checkpoint and its fixed-batch ONNX export."""
    torch.manual_seed(1)
    folder = tmp_path_factory.mktemp("predictor")
    ckpt = folder / "r18.pth"
    model = create_model("fasterpose_r18")
    # Spread the final layer so that heatmap maxima are well separated (random init gives near-flat maps).
    with torch.no_grad():
        final = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)][-1]
        final.weight.mul_(50.0)
    save_checkpoint(ckpt, {"spec": _spec(), "model": model.state_dict(), "config": None})
    onnx_path = folder / "r18.onnx"
    export_onnx(ckpt, onnx_path)
    return {"ckpt": ckpt, "onnx": onnx_path}


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    image = cv2.imread(str(PHOTO))
    assert image is not None
    return image


def test_torch_and_onnxruntime_agree(models, photo):
    pt = Predictor(models["ckpt"], backend="torch", threads=1)
    ort = Predictor(models["onnx"], backend="onnxruntime", threads=1)
    assert ort.flip_test and pt.flip_test  # the spec's default
    a, b = pt(photo, BOXES), ort(photo, BOXES)
    assert len(a) == len(b) == 2
    # oneDNN and MLAS float32 convs (blocked differently on AVX2 and AVX-512) give logits (|x| <= 25) that differ
    # by <= ~5e-5 (each is within 1.3e-5 of a float64 forward with AVX-512 kernels, 4e-5 with AVX2 ones). Scores are
    # sigmoid averages, so they move by <= 0.25 * 5e-5 = 1.3e-5 (< 1e-4). The quarter decoding's decisions (argmax
    # and neighbour signs) have margins >= 2.1e-4 in probability here, so both backends pick the same pixels and
    # the keypoints agree up to float64 mapping round-off; 0.5 px is far below one flipped decision (>= 3.9 px).
    for pa, pb, box in zip(a, b, BOXES):
        assert pa["keypoints"].shape == (17, 3)
        assert np.abs(pa["keypoints"][:, :2] - pb["keypoints"][:, :2]).max() <= 0.5
        assert np.abs(pa["keypoints"][:, 2] - pb["keypoints"][:, 2]).max() <= 1e-4
        np.testing.assert_allclose(pa["box"], box[:4])  # a copy
        assert pa["box_score"] == pytest.approx(box[4]) and pa["valid"]
    assert ort.last_timing["persons"] == 2 and ort.last_timing["model_ms"] > 0


def test_pipeline_is_the_shared_functions(models, photo):
    """The predictor equals geometry + model + codec written out by hand (what evaluation does)."""
    from fasterpose.models import model_from_checkpoint

    model, spec = model_from_checkpoint(models["ckpt"])
    codec = HeatmapCodec(**spec.codec)
    center, scale = box_to_center_scale(BOXES[:, :4], aspect_ratio=SIZE[1] / SIZE[0], padding=1.25)
    crops = np.stack([crop_person(photo, c, s, SIZE)[0] for c, s in zip(center, scale)])
    x = torch.from_numpy(normalize_crop(crops))
    with torch.inference_mode():
        heat = sigmoid(model(x).numpy())
        flipped = flip_back(sigmoid(model(torch.flip(x, dims=[3])).numpy()), COCO17.flip_index, shift=True)
    pts, scores = codec.decode(0.5 * (heat + flipped))
    expected = crop_to_image(pts, center, scale, SIZE)
    got = Predictor(models["ckpt"], threads=1)(photo, BOXES)
    # The predictor runs one batch of 4 (crops + mirrored crops), this test two batches of 2: oneDNN may block a
    # batch of 4 differently, so the float32 logits may differ by round-off (<= ~5e-5, see above) and the
    # scores by <= 0.25 * 5e-5; the decisions have >= 2.1e-4 margins, so the keypoints only see float64 ulps.
    np.testing.assert_allclose(np.stack([p["keypoints"][:, :2] for p in got]), expected, atol=1e-3)
    np.testing.assert_allclose(np.stack([p["keypoints"][:, 2] for p in got]), scores, atol=1e-4)


def test_onnxruntime_path_imports_no_torch(models, tmp_path):
    code = (
        "import sys, numpy as np\n"
        "from fasterpose import Predictor\n"
        f"p = Predictor({str(models['onnx'])!r}, backend='onnxruntime', threads=1)\n"
        "img = np.full((240, 320, 3), 127, np.uint8)\n"
        "out = p(img, np.array([[50, 20, 80, 200, 0.9], [150, 30, 60, 180, 0.8]]))\n"
        "assert len(out) == 2 and out[0]['keypoints'].shape == (17, 3)\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_empty_and_outside_boxes(models, photo, caplog):
    p = Predictor(models["onnx"], threads=1, flip_test=False)
    assert p(photo, np.zeros((0, 4))) == []
    assert p(photo, []) == []
    h, w = photo.shape[:2]
    boxes = np.array([
        [-50.0, -40.0, 200.0, 300.0],  # partly outside: clipped
        [w + 10.0, 10.0, 50.0, 100.0],  # wholly outside: zero scores, kept for alignment
        [100.0, 100.0, 0.0, 50.0],  # no area
    ])
    with caplog.at_level("WARNING"):
        out = p(photo, boxes)
    assert len(out) == 3
    assert out[0]["valid"] and not out[1]["valid"] and not out[2]["valid"]
    assert np.all(out[1]["keypoints"] == 0) and np.all(out[2]["keypoints"] == 0)
    assert "outside" in caplog.text
    # The partly-outside box is predicted as its clipped version.
    clipped, valid = clip_boxes(boxes[:1], photo.shape)
    np.testing.assert_allclose(clipped[0], [0, 0, 150, 260])  # integer pixel arithmetic: exact
    # The same crop through the same batch-1 session (invalid boxes are not run): bit-identical.
    np.testing.assert_allclose(out[0]["keypoints"], p(photo, clipped)[0]["keypoints"])


def test_fixed_batch_onnx_loops_over_persons(models, photo):
    p = Predictor(models["onnx"], threads=1, flip_test=False)
    many = p(photo, np.repeat(BOXES, 3, axis=0))
    assert len(many) == 6
    # same box, same batch-1 session call, same result (bit-identical)
    np.testing.assert_allclose(many[0]["keypoints"], many[2]["keypoints"])


def test_wrong_keypoint_set_and_input_size(models, photo, tmp_path):
    with pytest.raises(CheckpointError, match="mpii16"):
        Predictor(models["onnx"], keypoint_set="mpii16")
    # A checkpoint whose spec says MPII (16 keypoints) but whose weights have 17 heatmaps.
    state = torch.load(models["ckpt"], weights_only=False)
    state["spec"] = _spec(keypoint_set="mpii16").to_dict()
    wrong = tmp_path / "wrong.pth"
    torch.save(state, wrong)
    with pytest.raises(CheckpointError, match="keypoint set"):
        Predictor(wrong, backend="torch")
    # An ONNX file whose spec disagrees with its graph's input size.
    import onnx

    proto = onnx.load(str(models["onnx"]))
    for prop in proto.metadata_props:
        if prop.key == "fasterpose_spec":
            prop.value = _spec(input_size=(256, 192), codec={"input_size": [256, 192]}).to_json()
    bad = tmp_path / "bad_size.onnx"
    onnx.save(proto, str(bad))
    with pytest.raises(CheckpointError, match="input is 128x96 but its spec says input_size 256x192"):
        Predictor(bad)
    with pytest.raises(CheckpointError, match="backend='onnxruntime'"):
        Predictor(models["onnx"], backend="torch")
    with pytest.raises(CheckpointError, match="does not exist"):
        Predictor(tmp_path / "missing.onnx")
    p = Predictor(models["onnx"])
    with pytest.raises(DataError, match="boxes must be"):
        p(photo, np.zeros((2, 3)))
    with pytest.raises(DataError, match="BGR uint8"):
        p(photo.astype(np.float32), BOXES)
