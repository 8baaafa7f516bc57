"""Configs: shipped files load, overrides are typed, mistakes give clear messages; schedule and sampler."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import yaml

from fasterpose.cli import main
from fasterpose.engine.config import CONFIG_DIR, Config, list_configs, load_config, save_config
from fasterpose.engine.distributed import ShardedBatchSampler
from fasterpose.engine.schedule import lr_factor
from fasterpose.errors import ConfigError
from fasterpose.keypoints import get_keypoint_set
from fasterpose.models import list_models

ROOT = Path(__file__).resolve().parents[1]


def test_shipped_configs_load_and_name_registered_models() -> None:
    names = list_configs()
    for expected in ("coco_fasterpose_r50_256x192", "coco_fasterpose_r101_384x288", "coco_fasterpose_r152_256x192",
                     "coco_simplebaseline_r50_256x192", "coco_fasterpose_mbv2_256x192",
                     "coco_fasterpose_shufflev2_256x192", "mpii_fasterpose_r50_256x256", "synthetic_fasterpose_r18"):
        assert expected in names
    for name in names:
        cfg = load_config(name)
        assert cfg.name == name
        assert cfg.model.name in list_models()
        get_keypoint_set(cfg.data.keypoint_set)
        assert all(s % 32 == 0 for s in cfg.data.input_size)  # stride-32 features
        if cfg.model.name.startswith("simplebaseline"):
            assert cfg.loss.name == "mse"
    # the SimpleBaseline schedule is the default of COCO configs
    cfg = load_config("coco_fasterpose_r50_256x192")
    assert (cfg.optim.name, cfg.optim.lr, cfg.optim.milestones, cfg.optim.gamma) == ("adam", 1e-3, [90, 120], 0.1)
    assert (cfg.train.epochs, cfg.train.batch_size) == (140, 32)


def test_top_level_configs_is_the_package_folder() -> None:
    assert (ROOT / "configs").resolve() == CONFIG_DIR.resolve()


def test_path_and_bare_name_and_overrides() -> None:
    by_path = load_config(CONFIG_DIR / "synthetic_fasterpose_r18.yaml")
    by_name = load_config("synthetic_fasterpose_r18.yaml")
    assert by_path == by_name
    cfg = load_config("synthetic_fasterpose_r18", [
        "train.epochs=3", "optim.milestones=[1, 2]", "data.input_size=256x192", "optim.lr=1e-4",
        "model.kwargs.output_stride=16", "model.pretrained=null", "train.time_budget_s=60"])
    assert cfg.train.epochs == 3 and cfg.optim.milestones == [1, 2] and cfg.data.input_size == (256, 192)
    assert cfg.optim.lr == 1e-4 and isinstance(cfg.optim.lr, float)
    assert cfg.model.kwargs == {"output_stride": 16} and cfg.model.pretrained is None
    assert cfg.train.time_budget_s == 60.0


def test_unknown_keys_suggest_the_closest(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown config key 'optim\.lrr'.*did you mean 'optim\.lr'"):
        load_config("synthetic_fasterpose_r18", ["optim.lrr=0.1"])
    with pytest.raises(ConfigError, match=r"did you mean 'train\.batch_size'"):
        load_config("synthetic_fasterpose_r18", ["train.batchsize=8"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  epoch: 3\n")
    with pytest.raises(ConfigError, match=rf"{re.escape(str(bad))}.*'train\.epoch'.*did you mean 'train\.epochs'"):
        load_config(bad)
    bad.write_text("optimizer:\n  lr: 0.1\n")
    with pytest.raises(ConfigError, match=r"'optimizer'.*did you mean 'optim'"):
        load_config(bad)


def test_wrong_types_name_key_and_expected_type(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"train\.epochs must be an integer, got 'ten'"):
        load_config("synthetic_fasterpose_r18", ["train.epochs=ten"])
    with pytest.raises(ConfigError, match=r"train\.amp must be a boolean.*true or false"):
        load_config("synthetic_fasterpose_r18", ["train.amp=1"])
    with pytest.raises(ConfigError, match=r"data\.input_size must be a list of 2"):
        load_config("synthetic_fasterpose_r18", ["data.input_size=[256]"])
    with pytest.raises(ConfigError, match=r"loss\.name must be one of rce, mse; got 'rcee'.*'rce'"):
        load_config("synthetic_fasterpose_r18", ["loss.name=rcee"])
    with pytest.raises(ConfigError, match=r"train\.cpu_amp must be one of off, bf16, auto; got 'fp16'"):
        load_config("synthetic_fasterpose_r18", ["train.cpu_amp=fp16"])
    # YAML reads a bare off/on as a boolean: accepted for cpu_amp
    assert load_config("synthetic_fasterpose_r18", ["train.cpu_amp=off"]).train.cpu_amp == "off"
    assert load_config("synthetic_fasterpose_r18", ["train.cpu_amp=on"]).train.cpu_amp == "auto"
    with pytest.raises(ConfigError, match=r"not of the form key=value"):
        load_config("synthetic_fasterpose_r18", ["train.epochs"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim:\n  milestones: 90\n")
    with pytest.raises(ConfigError, match=rf"{re.escape(str(bad))}: optim\.milestones must be a list of integers"):
        load_config(bad)
    bad.write_text("data:\n  augment: {rotation_prob: 2.0}\n")
    with pytest.raises(ConfigError, match=r"data\.augment.*rotation_prob"):
        load_config(bad)
    bad.write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match=r"not valid YAML"):
        load_config(bad)


def test_input_size_must_fit_the_feature_stride() -> None:
    from fasterpose.engine.trainer import build_model

    cfg = load_config("synthetic_fasterpose_r18", ["data.input_size=[240,144]", "model.kwargs.output_stride=32"])
    with pytest.raises(ConfigError, match=re.escape("data.input_size 240x144: fasterpose_r18 has a stride-32 feature "
                                                    "map, so both sides must be multiples of 32")) as err:
        build_model(cfg)
    assert "--opt 'data.input_size=[256,160]'" in str(err.value)
    s16 = load_config("synthetic_fasterpose_r18", ["data.input_size=[240,144]", "model.kwargs.output_stride=16"])
    assert build_model(s16).feature_stride == 16  # 240 and 144 are multiples of 16


def test_missing_file_is_clear(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"does not exist.*Did you mean synthetic_fasterpose_r18"):
        load_config("synthetic_fasterpose_r81")
    with pytest.raises(ConfigError, match=r"nope\.yaml does not exist"):
        load_config(tmp_path / "nope.yaml")


def test_cli_prints_config_errors_without_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "no_such_config.yaml"]) == 2
    err = capsys.readouterr().err
    assert "fasterpose train: error: config file no_such_config.yaml does not exist" in err
    assert "Traceback" not in err
    assert main(["train", "synthetic_fasterpose_r18", "--opt", "train.epohcs=1"]) == 2
    assert "did you mean 'train.epochs'" in capsys.readouterr().err


def test_saved_config_round_trips(tmp_path: Path) -> None:
    cfg = load_config("coco_fasterpose_r50_256x192", ["train.epochs=7"])
    save_config(cfg, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == cfg
    assert Config.from_dict(yaml.safe_load((tmp_path / "config.yaml").read_text())) == cfg


def test_lr_schedule_step_cosine_warmup() -> None:
    optim = load_config(None).optim  # Adam 1e-3, step at 90/120, gamma 0.1
    # Python float64 closed forms (0.1 ** 2, cos(pi / 2) = 6e-17): ~1e-16 round-off, isclose's rel_tol is 1e-9.
    assert lr_factor(0.0, 140, optim, 1000, 0) == 1.0
    assert lr_factor(89.99, 140, optim, 10**6, 0) == 1.0
    assert math.isclose(lr_factor(90.0, 140, optim, 10**6, 0), 0.1)
    assert math.isclose(lr_factor(139.0, 140, optim, 10**6, 0), 0.01)
    optim.warmup_factor = 0.0
    assert lr_factor(0.0, 140, optim, 0, 100) == 0.0
    assert math.isclose(lr_factor(0.1, 140, optim, 50, 100), 0.5)
    optim.schedule, optim.min_lr_factor = "cosine", 0.01
    assert math.isclose(lr_factor(0.0, 10, optim, 10**6, 0), 1.0)
    assert math.isclose(lr_factor(5.0, 10, optim, 10**6, 0), 0.505)
    assert math.isclose(lr_factor(10.0, 10, optim, 10**6, 0), 0.01)


def test_sharded_sampler_matches_one_process_and_resumes() -> None:
    one = ShardedBatchSampler(50, 8, seed=3)
    ranks = [ShardedBatchSampler(50, 4, rank=r, world_size=2, seed=3) for r in range(2)]
    for epoch in (0, 1):
        for s in (one, *ranks):
            s.set_epoch(epoch)
        single = list(one)
        assert len(single) == 6 and all(len(b) == 8 for b in single)
        split = [a + b for a, b in zip(*[list(r) for r in ranks])]
        assert split == single
    assert list(one) != (one.set_epoch(0) or list(one))  # a new permutation per epoch
    one.set_epoch(1, start_batch=4)
    assert list(one) == single[4:]
    # evaluation: every index exactly once over the ranks, in order
    ev = [ShardedBatchSampler(11, 4, rank=r, world_size=3, shuffle=False, drop_last=False) for r in range(3)]
    seen = sorted(i for s in ev for b in s for i in b)
    assert seen == list(range(11))


def test_synthetic_difficulty_preset_and_generator_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    """data.synthetic.difficulty picks SynthConfig.preset; generator overrides apply on top of it."""
    from fasterpose.data import synthetic
    from fasterpose.engine import trainer

    seen = []
    monkeypatch.setattr(synthetic, "ensure_synthetic_dataset", lambda *a, config=None, **k: seen.append(config))
    for overrides in (["data.synthetic.difficulty=default"], ["data.synthetic.difficulty=easy"],
                      ["data.synthetic.difficulty=easy", "data.synthetic.generator={max_persons: 1}"]):
        trainer.synthetic_split(load_config("synthetic_fasterpose_r18", overrides), "train")
    default, easy, easy1 = seen
    assert default is None  # the generator's defaults: the same cache key as before presets were selectable
    assert easy == synthetic.SynthConfig.preset("easy") and easy.max_persons == 2
    assert easy1.max_persons == 1 and easy1.height_range == easy.height_range
    with pytest.raises(ConfigError, match=r"data\.synthetic\.difficulty must be one of easy, default, hard"):
        load_config("synthetic_fasterpose_r18", ["data.synthetic.difficulty=medium"])
