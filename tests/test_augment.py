"""Training augmentations: explicit generators, SimpleBaseline ranges, half-body boxes, colour jitter."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fasterpose.data import AugmentConfig, color_jitter, half_body_transform, random_flip, random_scale_rotation
from fasterpose.keypoints import COCO17

COCO_ANN = Path(__file__).parent / "data" / "coco_val2017_samples" / "person_keypoints.json"


def _real_person() -> tuple[np.ndarray, np.ndarray]:
    ann = json.loads(COCO_ANN.read_text())["annotations"][0]  # 17 labelled keypoints
    kps = np.array(ann["keypoints"], dtype=np.float32).reshape(17, 3)
    return kps[:, :2], kps[:, 2]


def test_defaults_follow_simplebaseline() -> None:
    cfg = AugmentConfig()
    assert (cfg.flip, cfg.flip_prob, cfg.half_body_prob, cfg.half_body_min_keypoints) == (True, 0.5, 0.3, 8)
    assert (cfg.scale_factor, cfg.rotation_factor, cfg.rotation_prob, cfg.color_jitter) == (0.35, 45.0, 0.6, False)
    with pytest.raises(ValueError, match="rotation_dist"):
        AugmentConfig(rotation_dist="gamma")
    with pytest.raises(ValueError, match="flip_prob"):
        AugmentConfig(flip_prob=1.5)


def test_scale_rotation_ranges_and_rates() -> None:
    cfg = AugmentConfig()
    rng = np.random.default_rng(0)
    base = np.array([150.0, 200.0], dtype=np.float32)
    out = [random_scale_rotation(base, cfg, rng) for _ in range(4000)]
    factors = np.array([s[0] / 150.0 for s, _ in out])
    rots = np.array([r for _, r in out])
    # The factor is clipped in float64, then 150 * factor is rounded to float32 (u = 6e-8): <= 1.35 * 1.2e-7 off.
    assert factors.min() >= 0.65 - 1e-6 and factors.max() <= 1.35 + 1e-6
    # Bernoulli(0.6) rate over 4000 seeded draws: standard error sqrt(0.24 / 4000) = 0.008, so 0.03 is ~4 sigma.
    assert abs(np.mean(rots != 0) - 0.6) < 0.03
    assert np.abs(rots).max() <= 90.0 and np.abs(rots).max() > 45.0  # clipped at 2 * rf (np.clip is exact)
    assert all(s.dtype == np.float32 for s, _ in out[:5])
    uni = AugmentConfig(rotation_dist="uniform", rotation_prob=1.0)
    rots_u = np.array([random_scale_rotation(base, uni, rng)[1] for _ in range(4000)])
    # rf * erf(.) never exceeds rf; the sample std of 4000 uniform draws has a relative standard error of
    # sqrt((9/5 - 1) / (4 * 4000)) = 0.7%, so rel=0.05 is ~7 sigma (statistics, not round-off).
    assert np.abs(rots_u).max() <= 45.0 and np.std(rots_u) == pytest.approx(45 / np.sqrt(3), rel=0.05)
    # Switched off: identity, but the same number of draws (the following draws do not move).
    off = AugmentConfig.none()
    r1, r2 = np.random.default_rng(5), np.random.default_rng(5)
    s_off, rot_off = random_scale_rotation(base, off, r1)
    random_scale_rotation(base, cfg, r2)
    assert rot_off == 0.0 and np.array_equal(s_off, base) and r1.random() == r2.random()


def test_flip_probability() -> None:
    rng = np.random.default_rng(1)
    flips = [random_flip(AugmentConfig(), rng) for _ in range(4000)]
    assert abs(np.mean(flips) - 0.5) < 0.03
    assert not any(random_flip(AugmentConfig(flip=False), rng) for _ in range(100))


def test_half_body_on_real_person() -> None:
    kp, vis = _real_person()
    upper = list(COCO17.upper_body)
    lower = list(COCO17.lower_body)
    seen = set()
    for seed in range(40):
        center, scale = half_body_transform(kp, vis, COCO17, 0.75, np.random.default_rng(seed))
        assert center.dtype == np.float32 and scale.shape == (2,)
        assert scale[0] / scale[1] == pytest.approx(0.75, rel=1e-5)  # float32: 3 roundings of u = 6e-8 each
        for part, idx in (("upper", upper), ("lower", lower)):
            pts = kp[idx]
            # float32 means of <= 12 points (|x| < 640 px) summed in another order: <= 11 * u * 640 = 4e-4 apart;
            # the upper- and lower-body centres are tens of pixels apart.
            if np.allclose(center, pts.mean(axis=0), atol=1e-3):
                seen.add(part)
                tight = pts.max(axis=0) - pts.min(axis=0)
                # The padded box contains the half body; 1e-3 covers float32 rounding of values < 1000 (ulp 6e-5).
                assert np.all(scale >= tight * 1.5 - 1e-3)
    assert seen == {"upper", "lower"}
    # Fewer than 2 selected keypoints: no box.
    only_one = np.zeros(17)
    only_one[0] = 2
    assert half_body_transform(kp, only_one, COCO17, 0.75, np.random.default_rng(0)) is None


def test_half_body_upper_probability_matches_reference_draw() -> None:
    """HRNet picks the upper body when ``np.random.randn() < 0.5``: measured on 20,000 reference draws against the
    setting 0.6915 (= Phi(0.5)) on the same number of our draws; both within 4 binomial standard deviations."""
    kp, vis = _real_person()
    upper_centre = kp[list(COCO17.upper_body)].mean(axis=0)
    n = 20000
    reference = float((np.random.RandomState(0).randn(n) < 0.5).mean())
    ours = np.mean([np.allclose(half_body_transform(kp, vis, COCO17, 0.75, rng, upper_prob=0.6915)[0], upper_centre,
                                atol=1e-3) for rng in np.random.default_rng(1).spawn(n)])
    sd = (0.6915 * 0.3085 / n) ** 0.5
    assert abs(reference - 0.6915) < 4 * sd and abs(ours - 0.6915) < 4 * sd
    assert AugmentConfig().half_body_upper_prob == 0.5
    with pytest.raises(ValueError, match="half_body_upper_prob"):
        AugmentConfig(half_body_upper_prob=1.2)


def test_reproduction_configs_follow_their_recipes() -> None:
    from fasterpose.engine.config import list_configs, load_config

    sb = load_config("coco_simplebaseline_r50_256x192").data.augment
    assert (sb.half_body_prob, sb.scale_factor, sb.rotation_factor, sb.rotation_prob) == (0.0, 0.3, 40.0, 0.6)
    hrnet_style = [load_config(n).data.augment for n in list_configs() if n.startswith("coco_fasterpose_")]
    assert hrnet_style and all(a.half_body_upper_prob == 0.6915 and a.half_body_prob == 0.3 for a in hrnet_style)


def test_color_jitter() -> None:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, size=(64, 48, 3), dtype=np.uint8)
    out = color_jitter(img, np.random.default_rng(3), 0.4, 0.4, 0.4)
    assert out.dtype == np.uint8 and out.shape == img.shape and not np.array_equal(out, img)
    np.testing.assert_array_equal(out, color_jitter(img, np.random.default_rng(3), 0.4, 0.4, 0.4))
    same = color_jitter(img, np.random.default_rng(3), 0.0, 0.0, 0.0)
    assert np.abs(same.astype(int) - img).max() <= 1  # factors 1.0: at most one uint8 rounding step per blend
    grey = np.full((8, 8, 3), 100, np.uint8)
    assert np.all(color_jitter(grey, np.random.default_rng(0), 0.0, 0.5, 0.5) == 100)  # no contrast/colour to change
