"""A model whose keypoints are not a person's (an animal, a hand, a car) with a person detector as box source:
predict warns and says what to use instead."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
from _opencv import HAS_HOG

from fasterpose.keypoints import KEYPOINT_SETS, KeypointSet
from fasterpose.keypoints.names import infer_flip_pairs, infer_sides, looks_like_person

DOG = ("nose", "left_front_paw", "right_front_paw", "tail_base")
HAND = ("wrist", "thumb_tip", "index_finger_tip", "middle_finger_tip", "ring_finger_tip", "pinky_tip")
CAR = ("front_left_wheel", "front_right_wheel", "left_headlight", "right_headlight")
HUMAN = ("left_shoulder", "right_shoulder", "left_hip", "right_hip", "left_knee", "right_knee")


def test_looks_like_person() -> None:
    for named in KEYPOINT_SETS.values():
        assert looks_like_person(named.name, named.names)
    assert looks_like_person("person", ("a", "b"))  # COCO's category name says it
    assert looks_like_person("custom", HUMAN)  # a person's joints, a category name that says nothing
    assert not looks_like_person("custom", ("a", "b", "c"))
    for name, names in (("dog", DOG), ("hand", HAND), ("car", CAR), ("quadruped", HUMAN + ("tail",))):
        assert not looks_like_person(name, names), name


@pytest.fixture(scope="module")
def dog_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch = pytest.importorskip("torch")
    from fasterpose import create_model
    from fasterpose.checkpoint import save_checkpoint
    from fasterpose.spec import PoseSpec

    kset = KeypointSet(name="dog", names=DOG, flip_pairs=infer_flip_pairs(DOG), skeleton=((0, 3),), sigmas=None,
                       upper_body=(0, 1, 2), side=infer_sides(DOG))
    spec = PoseSpec(model_name="fasterpose_r18_l3", input_size=(64, 64), keypoint_set=kset,
                    codec={"input_size": [64, 64]})
    torch.manual_seed(0)
    ckpt = tmp_path_factory.mktemp("dog") / "dog.pt"
    save_checkpoint(ckpt, {"spec": spec, "model": create_model("fasterpose_r18_l3", num_keypoints=4).state_dict()})
    return ckpt


def test_predict_warns_for_person_detector(dog_model: Path, tmp_path: Path, caplog) -> None:
    from fasterpose.cli import main

    image = tmp_path / "dog.png"
    cv2.imwrite(str(image), np.full((96, 80, 3), 90, np.uint8))
    if HAS_HOG:  # the default box source; OpenCV 5 has no HOG (the --detector case below warns the same way)
        with caplog.at_level(logging.WARNING, logger="fasterpose.commands.predict"):
            assert main(["predict", str(image), "--checkpoint", str(dog_model), "--no-draw",
                         "--out", str(tmp_path / "hog")]) == 0
        assert "(dog: nose, left_front_paw, right_front_paw, tail_base) are not a person's" in caplog.text
        assert "HOG people detector" in caplog.text and "--boxes" in caplog.text and "--full-image" in caplog.text
        caplog.clear()
    with caplog.at_level(logging.WARNING, logger="fasterpose.commands.predict"):
        assert main(["predict", str(image), "--checkpoint", str(dog_model), "--full-image", "--no-draw",
                     "--out", str(tmp_path / "full")]) == 0
    assert "not a person's" not in caplog.text
    pytest.importorskip("onnx")
    from test_detect import MMDEPLOY_DETS, MMDEPLOY_LABELS, _graph

    detector = _graph(tmp_path / "yolox.onnx", (64, 64), {"dets": MMDEPLOY_DETS, "labels": MMDEPLOY_LABELS},
                      stem="Slice")
    with caplog.at_level(logging.WARNING, logger="fasterpose.commands.predict"):
        assert main(["predict", str(image), "--checkpoint", str(dog_model), "--detector", str(detector),
                     "--no-draw", "--out", str(tmp_path / "det")]) == 0
    assert f"not a person's, but its boxes come from --detector {detector}" in caplog.text
