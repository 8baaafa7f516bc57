"""``fasterpose data coco``: stand-in COCO archives served from 127.0.0.1; download, resume, checks, layout, and the
files it must never touch."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import pytest
from _http_server import closed_port_url, serve, zip_bytes

from fasterpose.cli import main
from fasterpose.data import coco_fetch
from fasterpose.engine.config import load_config

VAL_IMAGES = {"val2017/000000000139.jpg": b"\xff\xd8val-139",
              "val2017/000000000285.jpg": random.Random(0).randbytes(50000)}  # incompressible: the zip is > 50 kB
TRAIN_IMAGES = {"train2017/000000000009.jpg": b"\xff\xd8train-9"}
ANNOTATIONS = {"annotations/person_keypoints_val2017.json": b'{"images": [], "annotations": []}',
               "annotations/person_keypoints_train2017.json": b'{"images": [1], "annotations": []}',
               "annotations/instances_val2017.json": b"{}"}  # in the real zip too; the configs do not read it


@pytest.fixture()
def stand_ins(monkeypatch: pytest.MonkeyPatch) -> dict[str, bytes]:
    """The three archives as small zips with the real ones' member layout; ARCHIVES carries their sizes and MD5s."""
    blobs = {"annotations": zip_bytes(ANNOTATIONS), "val": zip_bytes(VAL_IMAGES), "train": zip_bytes(TRAIN_IMAGES)}
    table = {key: coco_fetch.Archive(a.url_path, len(blobs[key]), hashlib.md5(blobs[key]).hexdigest(), a.outputs)
             for key, a in coco_fetch.ARCHIVES.items()}
    monkeypatch.setattr(coco_fetch, "ARCHIVES", table)
    monkeypatch.delenv(coco_fetch.BASE_URL_ENV, raising=False)
    return blobs


def _publish(server, blobs: dict[str, bytes]) -> None:  # noqa: ANN001 - the test server
    for key, blob in blobs.items():
        server.files["/" + coco_fetch.ARCHIVES[key].url_path] = blob


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_published_table_is_the_official_archives() -> None:
    """The URLs, sizes and MD5s as cited in the module (PaddleDetection's DATASETS['coco'] and others)."""
    a = coco_fetch.ARCHIVES
    assert f"{coco_fetch.COCO_URL}/{a['val'].url_path}" == "http://images.cocodataset.org/zips/val2017.zip"
    assert (a["annotations"].size, a["annotations"].md5) == (252_907_541, "f4bbac642086de4f52a3fdda2de5fa2c")
    assert (a["val"].size, a["val"].md5) == (815_585_330, "442b8da7639aecaf257c1dceb8ba8c80")
    assert (a["train"].size, a["train"].md5) == (19_336_861_798, "cced6f7f71b7629ddf16f17bbcfab6b2")
    # the outputs are exactly what the shipped COCO configs read under data/coco
    config = load_config("coco_fasterpose_r50_256x192")
    read = {config.data.train_ann, config.data.val_ann, config.data.train_images, config.data.val_images,
            config.eval.boxes}
    made = {f"data/coco/{o}" for arch in a.values() for o in arch.outputs} | {f"data/coco/{coco_fetch.DETECTIONS}"}
    assert read == made


def test_val_only_layout_then_nothing_twice(stand_ins: dict[str, bytes], tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "coco"
    with serve() as server:
        _publish(server, stand_ins)
        assert main(["data", "coco", str(root), "--val-only", "--base-url", server.url("")]) == 0
        assert sorted(server.requests) == ["/annotations/annotations_trainval2017.zip", "/zips/val2017.zip"]
        out = capsys.readouterr().out
        tree = _tree(root)
        assert tree.pop(coco_fetch.RECORD)  # the record of what it wrote; the zips it downloaded are gone
        assert tree == {**VAL_IMAGES, **{k: v for k, v in ANNOTATIONS.items() if "person_keypoints" in k}}
        assert "person detections: not downloaded" in out and str(root / coco_fetch.DETECTIONS) in out
        assert "eval.boxes=gt" in out and "deep-high-resolution-net" in out
        # a second run downloads nothing; with the detections put in place it names them
        (root / coco_fetch.DETECTIONS).parent.mkdir()
        (root / coco_fetch.DETECTIONS).write_text("[]")
        assert main(["data", "coco", str(root), "--val-only", "--base-url", server.url("")]) == 0
        assert len(server.requests) == 2
    out = capsys.readouterr().out
    assert "already unpacked" in out and f"person detections: {root / coco_fetch.DETECTIONS}" in out


def test_interrupted_download_resumes_with_a_range_request(stand_ins: dict[str, bytes], tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "coco"
    val = stand_ins["val"]
    with serve() as server:
        _publish(server, stand_ins)
        monkeypatch.setenv(coco_fetch.BASE_URL_ENV, server.url(""))  # the documented way to name a mirror
        del server.files["/zips/val2017.zip"]
        server.truncated["/zips/val2017.zip"] = (val[:20000], len(val))
        assert main(["data", "coco", str(root), "--val-only", "--keep-archives"]) == 2
        part = root / "val2017.zip.part"
        assert part.read_bytes() == val[:20000] and not (root / "val2017").exists()
        server.files["/zips/val2017.zip"] = val
        del server.truncated["/zips/val2017.zip"]
        assert main(["data", "coco", str(root), "--val-only", "--keep-archives"]) == 0
        assert server.ranges_asked[-1] == "bytes=20000-"  # only the rest was asked for
    assert (root / "val2017.zip").read_bytes() == val and not part.exists()
    assert _tree(root / "val2017") == {k.split("/", 1)[1]: v for k, v in VAL_IMAGES.items()}


def test_server_without_ranges_sends_it_all_again(stand_ins: dict[str, bytes], tmp_path: Path) -> None:
    root = tmp_path / "coco"
    with serve() as server:
        _publish(server, stand_ins)
        server.ranges = False
        root.mkdir()
        assert main(["data", "coco", str(root), "--val-only", "--base-url", server.url("")]) == 0  # a fresh record
        part = root / "annotations_trainval2017.zip.part"
        assert not part.exists()
    # a half file this command left (recorded as its own) is completed correctly when the range is ignored
    root2 = tmp_path / "coco2"
    with serve() as server:
        _publish(server, stand_ins)
        server.ranges = False
        del server.files["/zips/val2017.zip"]
        server.truncated["/zips/val2017.zip"] = (stand_ins["val"][:5000], len(stand_ins["val"]))
        assert main(["data", "coco", str(root2), "--val-only", "--base-url", server.url("")]) == 2
        server.files["/zips/val2017.zip"] = stand_ins["val"]
        del server.truncated["/zips/val2017.zip"]
        assert main(["data", "coco", str(root2), "--val-only", "--base-url", server.url("")]) == 0
    assert _tree(root2 / "val2017") == {k.split("/", 1)[1]: v for k, v in VAL_IMAGES.items()}


def test_wrong_bytes_are_deleted_and_named(stand_ins: dict[str, bytes], tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "coco"
    with serve() as server:
        _publish(server, stand_ins)
        bad = bytearray(stand_ins["val"])
        bad[100] ^= 0xFF  # same size, one byte off: only the MD5 can tell
        server.files["/zips/val2017.zip"] = bytes(bad)
        assert main(["data", "coco", str(root), "--val-only", "--base-url", server.url("")]) == 2
    err = capsys.readouterr().err
    assert "not the published one" in err and "MD5" in err and coco_fetch.ARCHIVES["val"].md5 in err
    assert not (root / "val2017.zip").exists() and not (root / "val2017.zip.part").exists()
    assert not (root / "val2017").exists()


def test_files_it_did_not_write_are_never_touched(stand_ins: dict[str, bytes], tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "coco"
    (root / "val2017").mkdir(parents=True)
    (root / "val2017" / "mine.jpg").write_bytes(b"user's")
    (root / "annotations").mkdir()
    (root / "annotations" / "person_keypoints_val2017.json").write_text("user's")
    (root / "train2017.zip.part").write_bytes(b"user's")
    before = _tree(root)
    with serve() as server:
        _publish(server, stand_ins)
        assert main(["data", "coco", str(root), "--base-url", server.url("")]) == 2
        assert server.requests == []  # refused before any download
    err = capsys.readouterr().err
    for path in ("val2017", "annotations/person_keypoints_val2017.json", "train2017.zip.part"):
        assert str(root / path) in err
    assert "never replaces files it did not write" in err and _tree(root) == before


def test_archive_put_there_by_hand_is_checked_used_and_kept(stand_ins: dict[str, bytes], tmp_path: Path) -> None:
    root = tmp_path / "coco"
    root.mkdir()
    (root / "val2017.zip").write_bytes(stand_ins["val"])
    (root / "annotations_trainval2017.zip").write_bytes(stand_ins["annotations"])
    assert main(["data", "coco", str(root), "--val-only", "--base-url", closed_port_url("")]) == 0
    assert (root / "val2017.zip").read_bytes() == stand_ins["val"]  # the user's: left where it was
    assert (root / "val2017" / "000000000139.jpg").read_bytes() == VAL_IMAGES["val2017/000000000139.jpg"]
    # one that is not the published file is named and left alone
    other = tmp_path / "other"
    other.mkdir()
    (other / "annotations_trainval2017.zip").write_bytes(b"not a zip")
    assert main(["data", "coco", str(other), "--val-only", "--base-url", closed_port_url("")]) == 2
    assert (other / "annotations_trainval2017.zip").read_bytes() == b"not a zip"


def test_offline_names_every_url_and_the_folder(stand_ins: dict[str, bytes], tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "coco"
    base = closed_port_url("").rstrip("/")
    assert main(["data", "coco", str(root), "--base-url", base]) == 2
    err = capsys.readouterr().err
    for archive in coco_fetch.ARCHIVES.values():
        assert f"{base}/{archive.url_path}" in err and archive.md5 in err
    assert str(root) in err and "no network" in err and "Traceback" not in err


def test_unsafe_member_paths_are_refused(stand_ins: dict[str, bytes], tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    evil = zip_bytes({"val2017/../../escaped.jpg": b"x", "val2017/a.jpg": b"y"})
    table = dict(coco_fetch.ARCHIVES)
    table["val"] = coco_fetch.Archive("zips/val2017.zip", len(evil), hashlib.md5(evil).hexdigest(), ("val2017",))
    monkeypatch.setattr(coco_fetch, "ARCHIVES", table)
    root = tmp_path / "coco"
    with serve() as server:
        _publish(server, {**stand_ins, "val": evil})
        with pytest.raises(coco_fetch.DataError, match="climbs out"):
            coco_fetch.fetch_coco(root, val_only=True, base_url=server.url(""), progress=False, say=lambda s: None)
    assert not (tmp_path / "escaped.jpg").exists() and not (root / "val2017").exists()
    record = json.loads((root / coco_fetch.RECORD).read_text())
    assert "unpacking" in record["archives"]["val2017.zip"]  # the next run may clear its own staging folder


def test_what_it_unpacks_is_what_the_data_tools_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Stand-ins made of real COCO val2017 samples: after `data coco`, check-data finds a clean dataset and every
    image where the annotation says (the configs' layout, read as training reads it)."""
    samples = Path(__file__).parent / "data" / "coco_val2017_samples"
    annotation = (samples / "person_keypoints.json").read_bytes()
    images = {f"val2017/{p.name}": p.read_bytes() for p in sorted(samples.glob("*.jpg"))}
    blobs = {"annotations": zip_bytes({"annotations/person_keypoints_val2017.json": annotation,
                                  "annotations/person_keypoints_train2017.json": annotation}),
             "val": zip_bytes(images)}
    table = dict(coco_fetch.ARCHIVES)
    for key, blob in blobs.items():
        table[key] = coco_fetch.Archive(table[key].url_path, len(blob), hashlib.md5(blob).hexdigest(),
                                        table[key].outputs)
    monkeypatch.setattr(coco_fetch, "ARCHIVES", table)
    root = tmp_path / "data" / "coco"
    with serve() as server:
        _publish(server, blobs)
        assert main(["data", "coco", str(root), "--val-only", "--base-url", server.url("")]) == 0
    ann = root / "annotations" / "person_keypoints_val2017.json"
    assert main(["check-data", str(ann), "--images", str(root / "val2017"), "--json"]) == 0
    from fasterpose.data.coco import CocoKeypoints

    dataset = CocoKeypoints(ann, root / "val2017", input_size=(64, 48), train=False)
    assert len(dataset) > 0 and dataset[0]["image"].shape[-2:] == (64, 48)
