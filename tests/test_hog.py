"""HOG people detector: availability (OpenCV 5 dropped it), settings, person sizes and regions of interest."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from fasterpose.detect import hog as hog_module
from fasterpose.detect.hog import HogDetector, HogUnavailableError, hog_available, merge_regions
from fasterpose.errors import ConfigError, FasterPoseError

PEOPLE = Path(__file__).parent / "data" / "people"
# The left player of basketball1.png as a real detector boxed it (person_detections.json, score 0.90).
PLAYER = np.array([33.28, 80.38, 136.36, 398.77])

needs_hog = pytest.mark.skipif(not hog_available(), reason="this OpenCV has no HOG people detector (OpenCV >= 5)")


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    lo, hi = np.maximum(a[:2], b[:2]), np.minimum(a[:2] + a[2:4], b[:2] + b[2:4])
    inter = float(np.prod(np.clip(hi - lo, 0, None)))
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def test_without_hog_a_clear_error(monkeypatch) -> None:
    """OpenCV 5 has no cv2.HOGDescriptor: the constructor says so, with the OpenCV version and what to do."""
    if hasattr(cv2, "HOGDescriptor"):  # OpenCV 4: pretend it is 5
        monkeypatch.delattr(cv2, "HOGDescriptor")
    assert hog_available() is False
    with pytest.raises(HogUnavailableError) as err:
        HogDetector()
    assert isinstance(err.value, FasterPoseError)
    for part in (cv2.__version__, "--detector yolox_tiny_humanart", "--detector FILE.onnx", "--boxes FILE",
                 "--full-image"):
        assert part in str(err.value)
    with pytest.raises(HogUnavailableError):
        hog_module.hog_people_boxes(np.zeros((128, 64, 3), np.uint8))


@needs_hog
def test_settings_out_of_range() -> None:
    for kwargs in ({"win_stride": 12}, {"scale": 1.0}, {"min_height": 8}, {"min_height": 100, "max_height": 50},
                   {"max_roi_share": 0}, {"box": "tight"}):
        with pytest.raises(ConfigError):
            HogDetector(**kwargs)


def test_merge_regions_by_hand() -> None:
    # a and b overlap; their union then overlaps c; d touches nobody (touching edges do not overlap).
    a, b, c, d = [0, 0, 10, 10], [5, 5, 20, 12], [18, 11, 30, 30], [30, 0, 40, 10]
    got = merge_regions(np.array([a, b, c, d], float))
    assert sorted(got.tolist()) == [[0, 0, 30, 30], [30, 0, 40, 10]]
    assert merge_regions(np.zeros((0, 4))).shape == (0, 4)


@needs_hog
def test_regions_grow_merge_and_fall_back_to_the_frame() -> None:
    det = HogDetector(roi_margin=0.5, padding=0, max_roi_share=0.6)
    shape = (480, 640, 3)
    # One 40x100 box at (100, 200): 50 px more on every side (half its height), inside the frame.
    assert det.regions(np.array([[100, 200, 40, 100]]), shape).tolist() == [[50, 150, 190, 350]]
    # A small box grows to a window at the detection scale (64x128 at factor 1), centred, then clipped.
    assert det.regions(np.array([[0, 0, 10, 20, 0.9]]), shape).tolist() == [[0, 0, 37, 74]]
    # Two near boxes merge; tracks over most of the frame: the whole frame (None).
    two = det.regions(np.array([[100, 200, 40, 100], [150, 210, 40, 100]]), shape)
    assert two.tolist() == [[50, 150, 240, 360]]
    assert det.regions(np.array([[0, 0, 400, 400]]), shape) is None
    # min_height 48 upscales twice: a window is 32x64 frame pixels.
    assert HogDetector(min_height=48, roi_margin=0, padding=0).regions(np.array([[300, 300, 4, 4]]), shape).tolist() \
        == [[286, 270, 318, 334]]


@needs_hog
def test_detect_finds_the_player_in_the_frame_and_in_its_region() -> None:
    image = cv2.imread(str(PEOPLE / "basketball1.png"))
    det = HogDetector(roi_margin=0.25)
    full = det.detect(image)
    assert len(full) >= 1 and (np.diff(full[:, 4]) <= 0).all()  # by descending score
    assert max(_iou(b, PLAYER) for b in full) > 0.5
    rects = det.regions(PLAYER[None], image.shape)
    assert rects is not None and len(rects) == 1
    x0, y0, x1, y1 = rects[0].tolist()
    in_roi = det.detect(image, roi=PLAYER[None])
    # Found in the region and mapped back to frame pixels: the crop's own detections moved by its corner.
    own = det.detect(np.ascontiguousarray(image[y0:y1, x0:x1]))
    np.testing.assert_allclose(in_roi[:, :4], own[:, :4] + [x0, y0, 0, 0])
    assert max(_iou(b, PLAYER) for b in in_roi) > 0.5
    assert (in_roi[:, 0] >= x0).all() and (in_roi[:, 0] + in_roi[:, 2] <= x1 + 1e-6).all()
    assert det.detect(image, roi=np.zeros((0, 4))).shape == (0, 5)  # nobody tracked, nowhere to look


@needs_hog
def test_person_boxes_are_the_inside_of_the_windows() -> None:
    image = cv2.imread(str(PEOPLE / "basketball1.png"))
    windows = HogDetector(box="window").detect(image)
    people = HogDetector().detect(image)
    assert len(windows) == len(people) >= 1
    w = windows[:, 2:4]
    np.testing.assert_allclose(people[:, :2], windows[:, :2] + w * [12 / 64, 16 / 128])
    np.testing.assert_allclose(people[:, 2:], np.concatenate([w * [40 / 64, 96 / 128], windows[:, 4:]], 1))


@needs_hog
def test_person_sizes_bound_the_search() -> None:
    """The ~400-pixel player is found when the sizes allow it and not when max_height says people are smaller."""
    image = cv2.imread(str(PEOPLE / "basketball1.png"))
    found = HogDetector(min_height=250, max_height=500).detect(image)
    assert max(_iou(b, PLAYER) for b in found) > 0.5
    small_only = HogDetector(max_height=160).detect(image)
    assert all(b[3] <= 160 * 1.1 for b in small_only)
    assert all(_iou(b, PLAYER) < 0.3 for b in small_only)
