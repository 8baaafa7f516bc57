"""``fasterpose predict`` on real photos, a real video clip and broken inputs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")

from _opencv import HAS_HOG, NO_HOG  # noqa: E402

from fasterpose import create_model  # noqa: E402
from fasterpose.checkpoint import save_checkpoint  # noqa: E402
from fasterpose.cli import main  # noqa: E402
from fasterpose.deploy.export import export_onnx  # noqa: E402
from fasterpose.spec import PoseSpec  # noqa: E402

PEOPLE = Path(__file__).parent / "data" / "people"
PHOTOS = ["messi5.jpg", "basketball1.png", "basketball2.png", "astronaut.png"]
SIZE = (128, 96)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("predict_cli")
    spec = PoseSpec(model_name="fasterpose_r18", input_size=SIZE, codec={"input_size": list(SIZE)})
    ckpt = folder / "r18.pth"
    save_checkpoint(ckpt, {"spec": spec, "model": create_model("fasterpose_r18").state_dict(), "config": None})
    onnx_path = folder / "r18.onnx"
    export_onnx(ckpt, onnx_path, dynamic_batch=True)
    return {"ckpt": ckpt, "onnx": onnx_path}


@pytest.fixture()
def photo_dir(tmp_path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in PHOTOS:
        shutil.copy(PEOPLE / name, folder / name)
    return folder


def _coco_gt(dets_file: Path) -> dict:
    """A minimal COCO keypoint ground truth over the images listed in a detection wrapper file."""
    images = json.loads(dets_file.read_text())["images"]
    return {"images": images, "annotations": [],
            "categories": [{"id": 1, "name": "person", "keypoints": [f"k{i}" for i in range(17)], "skeleton": []}]}


def test_predict_folder_with_boxes(models, photo_dir, tmp_path, capsys):
    from pycocotools.coco import COCO

    out = tmp_path / "out"
    dets = PEOPLE / "person_detections.json"
    assert main(["predict", str(photo_dir), "--checkpoint", str(models["ckpt"]), "--boxes", str(dets),
                 "--out", str(out), "--show-boxes", "--threads", "1"]) == 0
    summary = capsys.readouterr().out
    assert "4 images" in summary and "ms per image" in summary
    results = json.loads((out / "results.json").read_text())
    wrapper = json.loads(dets.read_text())
    # Every detection with score >= 0.3 gives one result, with the detection file's image id and the file name.
    expected = [d for d in wrapper["detections"] if d["score"] >= 0.3]
    assert len(results) == len(expected) and f"{len(expected)} persons" in summary
    names = {img["id"]: img["file_name"] for img in wrapper["images"]}
    for r in results:
        assert r["category_id"] == 1 and len(r["keypoints"]) == 51 and np.isfinite(r["keypoints"]).all()
        assert r["file_name"] == names[r["image_id"]]
    # Box scores, not rescored, only stored as float32 by read_detections: <= 2^-24 off (the scores differ by
    # >= 4e-3, so a rescoring or a mix-up is caught).
    assert sorted(r["score"] for r in results) == pytest.approx(sorted(d["score"] for d in expected), abs=1e-6)
    gt = COCO()
    gt.dataset = _coco_gt(dets)
    gt.createIndex()
    assert len(gt.loadRes(str(out / "results.json")).getAnnIds()) == len(results)
    for name in PHOTOS:
        drawn = cv2.imread(str(out / f"{Path(name).stem}.jpg"))
        assert drawn is not None and drawn.shape == cv2.imread(str(PEOPLE / name)).shape
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no staging leftovers


def test_predict_video_frame_index_boxes(models, tmp_path, capsys):
    out = tmp_path / "vid"
    assert main(["predict", str(PEOPLE / "vtest_short.avi"), "--onnx", str(models["onnx"]), "--boxes",
                 str(PEOPLE / "vtest_detections.json"), "--out", str(out), "--no-flip"]) == 0
    assert "20 frames" in capsys.readouterr().out
    video = out / "vtest_short_pose.mp4"
    cap = cv2.VideoCapture(str(video))
    frames = 0
    while cap.read()[0]:
        frames += 1
    assert frames == 20
    assert (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (768, 576)
    results = json.loads((out / "results.json").read_text())
    dets = json.loads((PEOPLE / "vtest_detections.json").read_text())["detections"]
    expected = [d for d in dets if d["image_id"] < 20 and d["score"] >= 0.3]
    assert sorted(r["image_id"] for r in results) == sorted(d["image_id"] for d in expected)
    assert all(r["frame"] == r["image_id"] and r["file_name"] == "vtest_short.avi" for r in results)


def test_predict_single_image_full_image_and_hog(models, tmp_path, capsys):
    out = tmp_path / "one"
    assert main(["predict", str(PEOPLE / "messi5.jpg"), "--onnx", str(models["onnx"]), "--full-image",
                 "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert len(results) == 1 and results[0]["image_id"] == 0 and results[0]["bbox"] == [0, 0, 548, 342]
    assert (out / "messi5.jpg").is_file()
    # Default person boxes: OpenCV's HOG detector (finds the two players in basketball1.png).
    if not HAS_HOG:
        pytest.skip(NO_HOG)
    out2 = tmp_path / "hog"
    assert main(["predict", str(PEOPLE / "basketball1.png"), "--onnx", str(models["onnx"]), "--out", str(out2),
                 "--det-thr", "0"]) == 0
    assert len(json.loads((out2 / "results.json").read_text())) >= 1


def test_unreadable_inputs(models, photo_dir, tmp_path, capsys):
    """One unreadable image in a folder: the others are kept and the bad one is reported. A truncated JPEG (it
    decodes, grey where the file ends) is predicted with a warning. A lone unreadable image or video: exit 2 and no
    output."""
    (photo_dir / "zz_broken.jpg").write_bytes(b"\xff\xd8 this is not a jpeg")
    data = (PEOPLE / "messi5.jpg").read_bytes()
    (photo_dir / "cut.jpg").write_bytes(data[: len(data) // 2])
    out = tmp_path / "out"
    rc = main(["predict", str(photo_dir), "--onnx", str(models["onnx"]), "--full-image", "--out", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "1 images could not be read and were skipped: zz_broken.jpg" in printed
    assert "suspect input" in printed and "cut.jpg" in printed
    drawn = sorted(p.name for p in out.iterdir())
    assert drawn == sorted(["cut.jpg", "keypoint_set.json", "results.json"] + [Path(n).stem + ".jpg" for n in PHOTOS])
    single = tmp_path / "single"
    assert main(["predict", str(photo_dir / "zz_broken.jpg"), "--onnx", str(models["onnx"]), "--full-image",
                 "--out", str(single)]) == 2
    err = capsys.readouterr().err
    assert "zz_broken.jpg" in err and "nothing was written" in err
    assert not single.exists() or list(single.iterdir()) == []
    out = single
    broken_video = tmp_path / "broken.avi"
    broken_video.write_bytes(b"RIFF garbage")
    assert main(["predict", str(broken_video), "--onnx", str(models["onnx"]), "--full-image",
                 "--out", str(out)]) == 2
    assert "broken.avi" in capsys.readouterr().err
    assert not out.exists() or list(out.iterdir()) == []
    assert main(["predict", str(tmp_path / "missing.jpg"), "--onnx", str(models["onnx"])]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_images_missing_from_boxes_file(models, photo_dir, tmp_path, capsys):
    shutil.copy(PEOPLE / "messi5.jpg", photo_dir / "unknown_photo.jpg")
    out = tmp_path / "out"
    assert main(["predict", str(photo_dir), "--onnx", str(models["onnx"]), "--boxes",
                 str(PEOPLE / "person_detections.json"), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "1 images skipped: no entry in" in captured.out
    assert not (out / "unknown_photo.jpg").exists() and (out / "messi5.jpg").exists()
    # A boxes file that knows none of the images is an error.
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"images": [{"id": 7, "file_name": "elsewhere.jpg"}], "detections": []}))
    assert main(["predict", str(photo_dir), "--onnx", str(models["onnx"]), "--boxes", str(other),
                 "--out", str(tmp_path / "out2")]) == 2
    assert "none of the 5 images" in capsys.readouterr().err
