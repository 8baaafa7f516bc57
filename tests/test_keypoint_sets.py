"""Keypoint sets from names and data: flip pairs and sides inferred from many spellings, sets read from a COCO
category (COCO-17 through ``auto`` is exactly ``coco17``), config overrides and inline sets, serialisation (and the
old name-only spec layout), flip decisions, and PCK against hand-computed values."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fasterpose.engine.config import load_config
from fasterpose.errors import ConfigError, DataError
from fasterpose.evaluation.pck import pck
from fasterpose.keypoints import COCO17, MPII16, KeypointSet
from fasterpose.keypoints.category import keypoint_set_from_category, keypoint_set_from_file, override_fields
from fasterpose.keypoints.config import apply_flip_choice, flip_enabled, resolve_keypoint_set
from fasterpose.keypoints.names import infer_flip_pairs, infer_sides, infer_upper_body, name_words
from fasterpose.spec import PoseSpec

DATA = Path(__file__).parent / "data"
COCO_ANN = DATA / "coco_val2017_samples" / "person_keypoints.json"


@pytest.mark.parametrize(("names", "pairs", "sides"), [
    # COCO's and MPII's own spellings
    (["nose", "left_eye", "right_eye"], [(1, 2)], "CLR"),
    (["r_ankle", "l_ankle", "pelvis"], [(0, 1)], "RLC"),
    # camelCase, prefixes and suffixes, any case, separators _ - . space
    (["LeftHand", "RightHand", "Head"], [(0, 1)], "LRC"),
    (["hand_L", "hand_R"], [(0, 1)], "LR"),
    (["left-eye", "right-eye", "L.ear", "R.ear"], [(0, 1), (2, 3)], "LRLR"),
    (["leftEye", "rightEye", "LEFT_FOOT", "RIGHT_FOOT"], [(0, 1), (2, 3)], "LRLR"),
    (["Left Front Paw", "Right Front Paw", "tail end"], [(0, 1)], "LRC"),
    # AP-10K / MacaquePose style: order of the partners does not matter, pairs are (lower, higher) index
    (["R_Eye", "L_Eye", "Nose", "Neck", "Root of tail", "L_Shoulder", "L_Elbow", "R_Shoulder", "R_Elbow"],
     [(0, 1), (5, 7), (6, 8)], "RLCCCLLRR"),
    (["right_front_paw", "left_front_paw", "right_back_paw", "left_back_paw"], [(0, 1), (2, 3)], "RLRL"),
    # a car set (mmpose#2527) whose partners are spelled differently from each other, side word in the middle
    (["front_left_wheel", "FrontRightWheel", "rear-left-door", "rear_right_door", "RearLeftLight", "rear right light",
      "front_plate"], [(0, 1), (2, 3), (4, 5)], "LRLRLRC"),
    # a side without its partner maps to itself; glued spellings are not guessed
    (["left_wing_tip", "beak"], [], "LC"),
    (["lknee", "rknee"], [], "CC"),
    # hand sets (thumb1 ...) and car sets without sides: no pairs at all
    (["wrist", "thumb1", "thumb2", "index1", "index2"], [], "CCCCC"),
    (["front_bumper", "roof", "rear_bumper"], [], "CCC"),
])
def test_flip_pairs_and_sides_from_names(names: list[str], pairs: list[tuple[int, int]], sides: str) -> None:
    assert list(infer_flip_pairs(names)) == pairs
    assert "".join(s[0].upper() for s in infer_sides(names)) == sides


def test_name_words_and_upper_body() -> None:
    assert name_words("LeftHand") == ["left", "hand"]
    assert name_words("hand_L") == ["hand", "l"]
    assert name_words("left-eye.tip  X") == ["left", "eye", "tip", "x"]
    assert name_words("HTMLParser") == ["html", "parser"]
    assert infer_upper_body(COCO17.names) == COCO17.upper_body
    assert infer_upper_body(MPII16.names) == MPII16.upper_body
    assert infer_upper_body(["wrist", "thumb1"]) == ()  # no lower body: the half-body augmentation is off


def test_named_sets_are_what_the_names_say() -> None:
    # The hand-written metadata of the named sets is the reference the inference is checked against.
    for kset in (COCO17, MPII16):
        assert infer_flip_pairs(kset.names) == kset.flip_pairs
        assert infer_sides(kset.names) == kset.side


def test_keypoint_set_round_trips_through_json() -> None:
    for kset in (COCO17, MPII16):
        d = json.loads(json.dumps(kset.to_dict()))
        back = KeypointSet.from_dict(d)
        assert back == kset and back.to_dict() == kset.to_dict()
        assert (back.sigmas is None) == (kset.sigmas is None)
        assert np.array_equal(back.flip_index, kset.flip_index)
    assert COCO17.to_dict()["sigmas"][0] == pytest.approx(0.026)
    assert COCO17 != MPII16


@pytest.mark.parametrize(("change", "match"), [
    ({"flip_pairs": [[0, 17]]}, "two indices in 0..16"),
    ({"flip_pairs": [[1, 2], [2, 3]]}, "use a keypoint twice"),
    ({"sigmas": [0.1] * 16}, "17 positive numbers"),
    ({"names": ["a", "a"]}, "duplicate keypoint names"),
    ({"side": ["up"] * 17}, "'left', 'right' or 'center'"),
])
def test_invalid_sets_are_refused(change: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        KeypointSet.from_dict({**COCO17.to_dict(), **change})


def test_old_spec_layout_with_a_set_name_still_loads() -> None:
    new = PoseSpec(model_name="fasterpose_r18", input_size=(64, 48), keypoint_set=MPII16)
    old = {**new.to_dict(), "keypoint_set": "mpii16"}  # what checkpoints and ONNX files held before sets were stored
    assert PoseSpec.from_dict(old).keypoint_set == MPII16
    assert PoseSpec.from_json(new.to_json()).keypoint_set == MPII16
    assert new.to_dict()["keypoint_set"]["names"] == list(MPII16.names)
    with pytest.raises(ValueError, match="unknown keypoint set 'mpii17'"):
        PoseSpec.from_dict({**old, "keypoint_set": "mpii17"})


def test_coco17_through_auto_is_exactly_coco17(tmp_path: Path) -> None:
    kset = keypoint_set_from_file(COCO_ANN)
    assert kset == COCO17 and kset.name == "coco17"
    assert np.array_equal(kset.sigmas, COCO17.sigmas) and kset.skeleton == COCO17.skeleton
    # A config with auto resolves to the same set, and it reaches the spec whole.
    cfg = load_config("coco_fasterpose_r50_256x192", ["data.keypoint_set=auto", f"data.train_ann={COCO_ANN}"])
    assert resolve_keypoint_set(cfg) == COCO17
    # The same names with a renamed category and without a skeleton: still coco17's metadata.
    data = json.loads(COCO_ANN.read_text())
    cat = next(c for c in data["categories"] if c.get("keypoints"))
    assert keypoint_set_from_category({**cat, "name": "people", "skeleton": []}, "x") == COCO17


def test_category_sigmas_and_skeleton_are_read(tmp_path: Path) -> None:
    cat = {"id": 3, "name": "mycar", "keypoints": ["front_left_wheel", "front_right_wheel", "roof", "rear_left_wheel",
                                                     "rear_right_wheel"],
           "skeleton": [[1, 2], [4, 5], [1, 4], [2, 5], [3, 1]], "sigmas": [0.05, 0.05, 0.1, 0.06, 0.06]}
    kset = keypoint_set_from_category(cat, "cars.json")
    assert kset.name == "mycar" and kset.num_keypoints == 5
    assert kset.skeleton == ((0, 1), (3, 4), (0, 3), (1, 4), (2, 0))  # COCO's 1-based pairs -> 0-based
    assert kset.flip_pairs == ((0, 1), (3, 4))
    assert kset.sigmas.tolist() == [0.05, 0.05, 0.1, 0.06, 0.06]
    assert kset.side == ("left", "right", "center", "left", "right")
    with pytest.raises(DataError, match=r"skeleton: index 6 is out of range \(1-based, 1..5\)"):
        keypoint_set_from_category({**cat, "skeleton": [[1, 6]]}, "cars.json")
    with pytest.raises(DataError, match="sigmas must be 5 positive numbers"):
        keypoint_set_from_category({**cat, "sigmas": [0.1, 0.1]}, "cars.json")


def test_several_categories_need_a_choice(tmp_path: Path) -> None:
    ann = tmp_path / "two.json"
    cats = [{"id": 1, "name": "person", "keypoints": list(COCO17.names)},
            {"id": 2, "name": "hand", "keypoints": ["wrist", "thumb1"]}]
    ann.write_text(json.dumps({"images": [], "annotations": [], "categories": cats}))
    with pytest.raises(DataError, match=r"several keypoint categories: 'person' \(id 1, 17 keypoints\), 'hand' "
                                        r"\(id 2, 2 keypoints\); choose one with --opt data.keypoint_category"):
        keypoint_set_from_file(ann)
    assert keypoint_set_from_file(ann, "hand").names == ("wrist", "thumb1")
    cfg = load_config("coco_fasterpose_r50_256x192", ["data.keypoint_set=auto", f"data.train_ann={ann}",
                                                      "data.keypoint_category=2"])
    assert resolve_keypoint_set(cfg).name == "hand"
    # one category per species with the same keypoints (AP-10K): the message says how to train on all of them
    species = [{"id": i, "name": n, "keypoints": ["L_Eye", "R_Eye", "Nose"]} for i, n in ((1, "antelope"), (2, "bob"))]
    ann.write_text(json.dumps({"images": [], "annotations": [], "categories": species}))
    with pytest.raises(DataError, match=r"'bob' \(id 2, 3 keypoints\); choose one .* same keypoints .* category_id"):
        keypoint_set_from_file(ann)
    ann.write_text(json.dumps({"images": [], "annotations": [], "categories": [{"id": 1, "name": "person"}]}))
    with pytest.raises(DataError, match="no category declares 'keypoints'"):
        keypoint_set_from_file(ann)


def test_overrides_by_name_or_index_and_inline_sets(tmp_path: Path) -> None:
    kset = override_fields(COCO17, {"flip_pairs": [["left_eye", "right_eye"], [3, 4]], "upper_body": ["nose"],
                                    "sigmas": None}, "data")
    assert kset.flip_pairs == ((1, 2), (3, 4)) and kset.upper_body == (0,)
    assert np.array_equal(kset.sigmas, COCO17.sigmas)
    with pytest.raises(DataError, match="data.flip_pairs: 'left_eyes' is not a keypoint name"):
        override_fields(COCO17, {"flip_pairs": [["left_eyes", "right_eye"]]}, "data")
    cfg_file = tmp_path / "mine.yaml"
    cfg_file.write_text("""
keypoint_sets:
  mycar:
    names: [front_left, front_right, roof, antenna]
    skeleton: [[front_left, front_right], [2, 3]]
    sigmas: [0.05, 0.05, 0.08, 0.1]
data:
  keypoint_set: mycar
  upper_body: [roof, antenna]
""")
    cfg = load_config(cfg_file)
    kset = resolve_keypoint_set(cfg)
    assert kset.name == "mycar" and kset.flip_pairs == ((0, 1),) and kset.skeleton == ((0, 1), (2, 3))
    assert kset.upper_body == (2, 3) and kset.sigmas.tolist() == [0.05, 0.05, 0.08, 0.1]
    with pytest.raises(ConfigError, match=r"data.keypoint_set must be one of auto, coco17, mpii16, mycar .* got "
                                          r"'mycat'. Did you mean 'mycar'\?"):
        load_config(cfg_file, ["data.keypoint_set=mycat"])
    with pytest.raises(ConfigError, match=r"keypoint_sets.mycar: unknown field\(s\) \['flip'\]"):
        resolve_keypoint_set(load_config(cfg_file, ["keypoint_sets.mycar.flip=true"]))
    with pytest.raises(ConfigError, match="data.sigmas must be 4 positive numbers"):
        resolve_keypoint_set(load_config(cfg_file, ["data.sigmas=[1, 2]"]))


def test_flip_is_off_without_partners() -> None:
    hand = KeypointSet(name="hand", names=("wrist", "thumb1", "thumb2"), flip_pairs=(), skeleton=(), sigmas=None,
                       upper_body=())
    lone = KeypointSet(name="bird", names=("beak", "left_wing", "right_wing", "left_eye"), flip_pairs=((1, 2),),
                       skeleton=(), sigmas=None, upper_body=())
    assert flip_enabled(COCO17, None) and not flip_enabled(hand, None) and not flip_enabled(lone, None)
    assert flip_enabled(hand, True) and not flip_enabled(COCO17, False)
    cfg = load_config("synthetic_fasterpose_r18")
    assert cfg.data.augment.flip and cfg.train.flip_test and cfg.eval.flip_test
    off = apply_flip_choice(cfg, hand)
    assert not (off.data.augment.flip or off.train.flip_test or off.eval.flip_test)
    assert apply_flip_choice(cfg, COCO17) is cfg


def test_pck_auc_epe_hand_computed() -> None:
    gt = np.zeros((2, 3, 2))
    # Box sizes 100 and 50. Errors: person 0: 10, 30, (unlabelled) px -> 0.1, 0.3; person 1: 5, 0, 40 px -> 0.1,
    # 0, 0.8.
    pred = gt.copy()
    pred[0, 0] = (6, 8)  # 10 px
    pred[0, 1] = (30, 0)
    pred[0, 2] = (99, 99)  # not labelled: ignored
    pred[1, 0] = (3, 4)  # 5 px
    pred[1, 2] = (0, 40)
    visible = np.array([[1, 1, 0], [1, 1, 1]], bool)
    out = pck(pred, gt, visible, np.array([100.0, 50.0]), names=["a", "b", "c"])
    assert out["PCK"] == pytest.approx(3 / 5)  # 0.1, 0.1, 0 <= 0.2; 0.3 and 0.8 are not
    assert out["EPE"] == pytest.approx((10 + 30 + 5 + 0 + 40) / 5)
    assert out["per_keypoint"] == {"a": 1.0, "b": 0.5, "c": 0.0}
    # AUC over thresholds 0..0.5: the PCK curve is 1/5 on [0, 0.1), 3/5 on [0.1, 0.3), 4/5 on [0.3, 0.5]; the
    # trapezoid rule on 0.01 steps smears each jump over one step.
    exact = (0.1 * 1 / 5 + 0.2 * 3 / 5 + 0.2 * 4 / 5) / 0.5
    assert out["AUC"] == pytest.approx(exact, abs=0.01 * 3 / 5 / 0.5 + 1e-12)
    assert pck(pred, gt, np.zeros((2, 3), bool), np.array([100.0, 50.0]))["num_keypoints_labelled"] == 0


@pytest.mark.parametrize("with_sigmas", [True, False])
def test_eval_results_uses_the_category_sigmas(tmp_path: Path, with_sigmas: bool,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """A renamed 17-point category: its own ``sigmas``, else the default sigma; checked against plain COCOeval."""
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from fasterpose.cli import main
    from fasterpose.evaluation.coco import DEFAULT_OKS_SIGMA, STAT_NAMES

    data = json.loads(COCO_ANN.read_text())
    cat = next(c for c in data["categories"] if c.get("keypoints"))
    cat["keypoints"] = [f"point{i}" for i in range(17)]  # not COCO's names: no sigmas to borrow
    sigmas = np.linspace(0.03, 0.12, 17)
    if with_sigmas:
        cat["sigmas"] = sigmas.tolist()
    gt_file = tmp_path / "gt.json"
    gt_file.write_text(json.dumps(data))
    rng = np.random.default_rng(0)
    results = []
    for a in data["annotations"]:
        if a.get("iscrowd") or not a["num_keypoints"]:
            continue
        kp = np.asarray(a["keypoints"], dtype=np.float64).reshape(17, 3)
        kp[:, :2] += rng.normal(0, 6, (17, 2))
        kp[:, 2] = 0.9
        results.append({"image_id": a["image_id"], "category_id": cat["id"], "keypoints": kp.reshape(-1).tolist(),
                        "score": float(rng.uniform(0.5, 1))})
    res_file = tmp_path / "res.json"
    res_file.write_text(json.dumps(results))
    assert main(["eval-results", str(gt_file), str(res_file), "--no-rescore", "--no-nms", "--json"]) == 0
    ours = json.loads(capsys.readouterr().out)
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(gt_file))
        ev = COCOeval(coco, coco.loadRes(str(res_file)), "keypoints")
        ev.params.kpt_oks_sigmas = sigmas if with_sigmas else np.full(17, DEFAULT_OKS_SIGMA)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert ours == pytest.approx(dict(zip(STAT_NAMES, ev.stats.tolist())), abs=1e-12)
    assert main(["eval-results", str(gt_file), str(res_file)]) == 0
    text = capsys.readouterr().out
    assert ("of keypoint set 'person'" if with_sigmas else "default 0.05 for every keypoint") in text


def test_auto_on_the_synthetic_data_is_coco17() -> None:
    """The generator writes COCO-17's names; ``auto`` knows it without generating anything."""
    from _engine_utils import tiny_config

    from fasterpose.engine.trainer import synthetic_split

    written = synthetic_split(tiny_config(), "train")["annotations"]  # the tests' shared cached split
    assert keypoint_set_from_file(written) == COCO17
    cfg = load_config("synthetic_fasterpose_r18", ["data.keypoint_set=auto"])
    assert cfg.data.dataset == "synthetic" and resolve_keypoint_set(cfg) == COCO17
    with pytest.raises(ConfigError, match="auto reads the keypoint set from a COCO-format annotation file"):
        resolve_keypoint_set(load_config("mpii_fasterpose_r50_256x256", ["data.keypoint_set=auto"]))
