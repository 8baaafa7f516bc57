"""Tests for fasterpose.codec: Gaussian targets (classic/UDP), decoding (argmax/quarter/DARK), flip_back, sigmoid."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from fasterpose.codec import HeatmapCodec, flip_back, sigmoid
from fasterpose.errors import ConfigError
from fasterpose.geometry import flip_keypoints
from fasterpose.keypoints import COCO17, MPII16


def _random_keypoints(codec: HeatmapCodec, n: int, margin: float = 16.0, seed: int = 0) -> np.ndarray:
    """``(n, 2)`` random sub-pixel keypoints in crop-input pixels, ``margin`` away from the border."""
    in_h, in_w = codec.input_size
    return np.random.default_rng(seed).uniform([margin, margin], [in_w - margin, in_h - margin], (n, 2))


def _round_trip_error(codec: HeatmapCodec, n: int = 400, seed: int = 0) -> np.ndarray:
    """Per-axis encode -> decode error ``(n, 2)`` measured in heatmap pixels (input error / stride)."""
    kpts = _random_keypoints(codec, n, seed=seed)
    heatmaps, weight = codec.encode(kpts, np.full(n, 2))
    assert weight.min() == 1
    decoded, _ = codec.decode(heatmaps.reshape(20, n // 20, *codec.heatmap_size))
    return np.abs(decoded.reshape(n, 2) - kpts) / np.array(codec.stride)


# ---------------------------------------------------------------------------------------------- construction


def test_defaults_and_to_dict_round_trip():
    codec = HeatmapCodec()
    assert codec.input_size == (256, 192) and codec.heatmap_size == (64, 48)
    assert codec.stride == (4.0, 4.0) and codec.sigma == 2.0
    assert codec.unbiased is False and codec.decode_mode == "quarter"
    other = HeatmapCodec(input_size=(384, 288), sigma=3, unbiased=True, decode="dark", dark_kernel=17)
    assert other.heatmap_size == (96, 72)
    rebuilt = HeatmapCodec(**json.loads(json.dumps(other.to_dict())))
    assert rebuilt == other and rebuilt.to_dict() == other.to_dict() and rebuilt != codec
    assert HeatmapCodec(input_size=(256, 256), heatmap_size=(32, 32)).stride == (8.0, 8.0)


@pytest.mark.parametrize(
    "kwargs",
    [{"decode": "soft-argmax"}, {"sigma": 0}, {"dark_kernel": 4}, {"input_size": (256,)}, {"heatmap_size": (0, 48)}],
)
def test_invalid_config_raises_config_error(kwargs):
    with pytest.raises(ConfigError):
        HeatmapCodec(**kwargs)


# ---------------------------------------------------------------------------------------------- encoding


def test_classic_encoding_peaks_at_rounded_position():
    codec = HeatmapCodec(sigma=2.0)
    kpts = np.array([[50.3, 70.9], [101.9, 30.1]])  # heatmap (12.575, 17.725) -> (13, 18); (25.475, 7.525) -> (25, 8)
    heatmaps, weight = codec.encode(kpts, np.array([2, 1]))
    assert heatmaps.shape == (2, 64, 48) and heatmaps.dtype == np.float32
    assert weight.dtype == np.float32 and weight.tolist() == [1.0, 1.0]
    for hm, (x, y) in zip(heatmaps, [(13, 18), (25, 8)]):
        assert np.unravel_index(hm.argmax(), hm.shape) == (y, x)
        assert hm[y, x] == 1.0 and hm.max() == 1.0 and hm.min() == 0.0
        # Symmetric around the integer centre, exp(-d^2 / 8) at distance d, cut beyond 3 sigma = 6 pixels. The float64
        # exp is rounded to float32 once (rel. 6e-8), well inside approx's default rel=1e-6.
        assert hm[y, x - 1] == hm[y, x + 1] == pytest.approx(np.exp(-1 / 8))
        assert hm[y, x + 6] == pytest.approx(np.exp(-36 / 8)) and hm[y, x + 7] == 0.0
        assert hm[y + 6, x - 6] > 0 and hm[y - 7, x] == 0.0


def test_unbiased_encoding_is_centred_at_sub_pixel_position():
    codec = HeatmapCodec(unbiased=True, sigma=2.0)
    kpt = np.array([[50.3, 70.9]])
    heatmaps, weight = codec.encode(kpt, np.array([2]))
    mx, my = 50.3 * 47 / 191, 70.9 * 63 / 255  # UDP factor (input - 1) / (heatmap - 1)
    ys, xs = np.mgrid[:64, :48]
    window = (np.abs(xs - round(mx)) <= 6) & (np.abs(ys - round(my)) <= 6)  # around the rounded position
    expected = np.exp(-((xs - mx) ** 2 + (ys - my) ** 2) / 8) * window
    # Values in [0, 1]: two float64 -> float32 roundings and one float32 product, <= 3 * 6e-8 = 1.8e-7 absolute.
    np.testing.assert_allclose(heatmaps[0], expected, atol=1e-6)
    assert weight[0] == 1 and heatmaps.max() < 1.0


def test_target_weight_unlabelled_and_outside():
    codec = HeatmapCodec()
    kpts = np.array(
        [
            [100.0, 100.0],  # visible
            [100.0, 100.0],  # unlabelled (v = 0)
            [-100.0, 50.0],  # far left of the crop
            [50.0, 300.0],  # below the crop
            [-12.0, 50.0],  # heatmap x = -3: outside, but the 3-sigma window still overlaps
            [-27.0, 50.0],  # heatmap x = -6.75 -> -7: the window [-13, -1] misses the heatmap
            [np.nan, 50.0],  # undefined
        ]
    )
    vis = np.array([2, 0, 2, 2, 1, 2, 2])
    heatmaps, weight = codec.encode(kpts, vis)
    assert weight.tolist() == [1, 0, 0, 0, 1, 0, 0]
    assert np.all(heatmaps[weight == 0] == 0)
    assert np.all(heatmaps[weight == 1].reshape(2, -1).max(axis=1) > 0)
    assert np.isfinite(heatmaps).all()


# ---------------------------------------------------------------------------------------------- decoding


def test_dark_round_trip_on_unbiased_targets():
    err = _round_trip_error(HeatmapCodec(unbiased=True, decode="dark"))
    # Method error of DARK's Taylor step (measured 0.014 heatmap px); float32 blur round-off moves it by ~1e-5.
    assert err.max() < 0.05, err.max()


def test_quarter_round_trip_on_unbiased_targets():
    quarter = _round_trip_error(HeatmapCodec(unbiased=True, decode="quarter"))
    argmax = _round_trip_error(HeatmapCodec(unbiased=True, decode="argmax"))
    # Discrete bounds in stride units (errors are divided by 4, the UDP factor is 191/47 = 4.06 input px): argmax
    # <= 0.5 * 4.06 / 4 = 0.508, quarter <= 0.25 * 4.06 / 4 = 0.254; float32 ties only pick the other neighbour.
    assert quarter.max() < 0.35, quarter.max()
    assert argmax.max() < 0.55
    # The shift goes toward the true position: on average it halves the argmax error (0.25 vs 0.125 per axis).
    assert quarter.mean() < 0.7 * argmax.mean()


def test_classic_targets_decode_to_grid_positions():
    codec = HeatmapCodec(decode="quarter")
    kpts = _random_keypoints(codec, 50)
    decoded, scores = codec.decode(codec.encode(kpts, np.full(50, 2))[0])
    # Symmetric targets leave nothing to refine: the result is the rounded heatmap position times the stride
    # (exact: the two neighbours are the same float32 number, so the quarter offset is sign(0) = 0).
    np.testing.assert_allclose(decoded, np.floor(kpts / 4 + 0.5) * 4)
    np.testing.assert_allclose(scores, 1.0)


def test_decode_shapes_scores_and_single_person():
    codec = HeatmapCodec(unbiased=True, decode="dark")
    rng = np.random.default_rng(5)
    heatmaps = np.stack([codec.encode(_random_keypoints(codec, 17, seed=i), np.full(17, 2))[0] for i in range(3)])
    heatmaps *= rng.uniform(0.2, 1.0, (3, 17, 1, 1)).astype(np.float32)
    keypoints, scores = codec.decode(heatmaps)
    assert keypoints.shape == (3, 17, 2) and scores.shape == (3, 17)
    np.testing.assert_allclose(scores, heatmaps.reshape(3, 17, -1).max(axis=2))  # before the blur: exact
    k1, s1 = codec.decode(heatmaps[1])
    assert k1.shape == (17, 2) and s1.shape == (17,)
    # DARK blurs all maps of a call as channels of one OpenCV image: 17 instead of 51 channels move maps between
    # SIMD body and scalar tail, a few float32 ulps (~1e-6 relative) in the blurred logs, which the Newton step
    # divides by |d2 log h| ~ 1/8: ~1e-5 heatmap px = 4e-5 input px. A mixed-up person is pixels off.
    np.testing.assert_allclose(k1, keypoints[1], rtol=0, atol=1e-4)
    np.testing.assert_allclose(s1, scores[1])  # maxima of the unblurred maps: exact


def test_dark_blur_of_more_maps_than_one_opencv_call_takes():
    """680 maps (OpenCV 5 takes 128 channels per call, 4.x 512): each equals the map blurred alone by a float64
    separable Gaussian with OpenCV's taps and a zero border, rescaled to the map's own maximum (DARK's modulation)."""
    import cv2

    from fasterpose.codec import _blur

    rng = np.random.default_rng(3)
    heatmaps = (rng.random((40, 17, 16, 12)) ** 4).astype(np.float32)
    taps = cv2.getGaussianKernel(11, 0).ravel()  # sigma 0.3 * (11 / 2 - 1 - 0.5) + 0.8 = 2, as GaussianBlur
    padded = np.pad(heatmaps.astype(np.float64), ((0, 0), (0, 0), (5, 5), (5, 5)))
    rows = sum(t * padded[..., i : i + 16, :] for i, t in enumerate(taps))
    ref = sum(t * rows[..., :, i : i + 12] for i, t in enumerate(taps))
    ref *= heatmaps.max(axis=(2, 3), keepdims=True) / ref.max(axis=(2, 3), keepdims=True)
    out = _blur(heatmaps, 11)
    assert out.shape == heatmaps.shape and out.dtype == np.float32
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-7)  # float32 round-off only
    # a map's blur does not depend on the other maps of the call
    np.testing.assert_allclose(_blur(heatmaps[7:8], 11)[0], out[7], rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("mode", ["argmax", "quarter", "dark"])
def test_decode_degenerate_heatmaps_stay_finite(mode):
    codec = HeatmapCodec(decode=mode)
    heatmaps = np.zeros((2, 3, 64, 48), np.float32)
    heatmaps[0, 1] = -5.0  # raw MSE outputs can be negative everywhere
    heatmaps[1, 2, 0, 0] = 1.0  # maximum in the corner: no neighbours to refine with
    heatmaps[1, 0, 30, 20] = 1.0  # a single spike
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        keypoints, scores = codec.decode(heatmaps)
    assert np.isfinite(keypoints).all()
    np.testing.assert_allclose(keypoints[1, 2], [0.0, 0.0])  # corner: no refinement, exactly 0
    # (20, 30) * stride 4; a refinement may move it by at most one heatmap pixel (DARK's clip) = 4 input px.
    np.testing.assert_allclose(keypoints[1, 0], [80.0, 120.0], atol=4.0)
    assert scores[0, 1] == -5.0


# ---------------------------------------------------------------------------------------------- flip_back, sigmoid


def test_flip_back_round_trip_swaps_channels():
    rng = np.random.default_rng(6)
    heatmaps = rng.random((2, 16, 64, 48)).astype(np.float32)
    flipped = heatmaps[:, MPII16.flip_index, :, ::-1]
    restored = flip_back(flipped, MPII16.flip_index)
    np.testing.assert_array_equal(restored, heatmaps)
    assert restored.flags.c_contiguous
    # Channel r_ankle (0) of the flipped output is the mirrored l_ankle (5).
    np.testing.assert_array_equal(flipped[:, 0], heatmaps[:, 5, :, ::-1])
    shifted = flip_back(flipped, MPII16.flip_index, shift=True)
    np.testing.assert_array_equal(shifted[..., 1:], heatmaps[..., :-1])
    np.testing.assert_array_equal(shifted[..., 0], heatmaps[..., 0])
    np.testing.assert_array_equal(flip_back(flipped[0], MPII16.flip_index), heatmaps[0])


def test_flip_back_matches_targets_of_flipped_keypoints_with_udp():
    codec = HeatmapCodec(unbiased=True, decode="dark")
    kpts = _random_keypoints(codec, 17, seed=7)
    vis = np.full(17, 2)
    heatmaps, _ = codec.encode(kpts, vis)
    # Targets of the horizontally flipped crop (width 192), flipped back, equal the original targets: UDP maps
    # the flipped heatmap grid exactly onto the mirrored one, so no shift is needed.
    fk, fv = flip_keypoints(kpts, vis, codec.input_size[1], COCO17.flip_index)
    flipped_heatmaps, _ = codec.encode(fk, fv)
    # x' = 191 - x moves the float64 centres by ~1e-14; the float32 values in [0, 1] differ by <= 2 ulp (1.2e-7).
    np.testing.assert_allclose(flip_back(flipped_heatmaps[None], COCO17.flip_index)[0], heatmaps, atol=1e-6)


def test_sigmoid_stable_and_correct():
    x = np.array([-1000.0, -20.0, -1.0, 0.0, 1.0, 20.0, 1000.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = sigmoid(x)
    # float64: e / (1 + e) vs 1 / (1 + 1 / e), a few ulps (~1e-15 relative) on any libm / SIMD exp.
    np.testing.assert_allclose(y[1:-1], 1 / (1 + np.exp(-x[1:-1])), rtol=1e-12)
    assert y[0] == 0.0 and y[-1] == 1.0 and y[3] == 0.5
    assert sigmoid(x.astype(np.float32)).dtype == np.float32
