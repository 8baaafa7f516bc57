"""Published person detectors by name (fasterpose.detect.zoo): download through the weights cache from a local HTTP
server, trust-on-first-use hash record, safe extraction of end2end.onnx from the zip, and every failure leaving the
cache as it was."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from _http_server import closed_port_url, serve, zip_bytes  # noqa: E402
from test_detect import MMDEPLOY_DETS, MMDEPLOY_LABELS, _graph, _image  # noqa: E402

from fasterpose.cli import main  # noqa: E402
from fasterpose.detect import zoo  # noqa: E402
from fasterpose.errors import ConfigError  # noqa: E402
from fasterpose.hub import DownloadError  # noqa: E402

ZIP_NAME = "yolox_test_8xb8-300e_humanart-6f3252f9.zip"  # the 8 hex digits are NOT this zip's hash (as published)


@pytest.fixture(scope="module")
def onnx_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A YOLOX (MMDeploy) detector graph at 320x320 whose boxes are known (see test_detect.test_yolox_mmdeploy)."""
    path = tmp_path_factory.mktemp("zoo") / "end2end.onnx"
    return _graph(path, (320, 320), {"dets": MMDEPLOY_DETS, "labels": MMDEPLOY_LABELS}, stem="Slice").read_bytes()


def _sdk_zip(onnx: bytes) -> bytes:
    """The layout of MMDeploy's onnx_sdk zips: one folder with end2end.onnx and json files."""
    return zip_bytes({"yolox_test/end2end.onnx": onnx, "yolox_test/pipeline.json": b"{}",
                      "yolox_test/deploy.json": b"{}"})


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch" / "hub" / "checkpoints"


def _listing(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())} if folder.exists() else {}


def _register(monkeypatch: pytest.MonkeyPatch, url: str) -> str:
    monkeypatch.setitem(zoo.DETECTORS, "yolox_test", zoo.DetectorFile(url, "yolox", (320, 320)))
    return "yolox_test"


def test_by_name_download_extract_trust_on_first_use(cache: Path, onnx_bytes: bytes, monkeypatch, caplog) -> None:
    payload = _sdk_zip(onnx_bytes)
    sha = hashlib.sha256(payload).hexdigest()
    with serve() as server:
        server.files["/sdk/" + ZIP_NAME] = payload
        name = _register(monkeypatch, server.url("/sdk/" + ZIP_NAME))
        with caplog.at_level(logging.WARNING, logger="fasterpose.detect.zoo"):
            det = zoo.open_detector(name)
        # the name's hex digits are not checked against the zip, its full hash is recorded and printed
        assert sha in caplog.text and "trust on first use" in caplog.text
        assert det.layout.name == "yolox" and det.input_size == (320, 320)
        np.testing.assert_allclose(det(_image()), [[100, 50, 100, 100, 0.9]], rtol=1e-6)
        assert sorted(p.name for p in cache.iterdir()) == [ZIP_NAME, ZIP_NAME + ".end2end.onnx", ZIP_NAME + ".sha256"]
        assert (cache / (ZIP_NAME + ".end2end.onnx")).read_bytes() == onnx_bytes
        assert (cache / (ZIP_NAME + ".sha256")).read_text().split() == [sha, ZIP_NAME]
        # later uses: no download, no new record message; a damaged extracted file is extracted again
        caplog.clear()
        (cache / (ZIP_NAME + ".end2end.onnx")).write_bytes(b"x" * len(onnx_bytes))
        assert zoo.fetch_detector(name) == cache / (ZIP_NAME + ".end2end.onnx")
        assert (cache / (ZIP_NAME + ".end2end.onnx")).read_bytes() == onnx_bytes
        assert len(server.requests) == 1 and "trust on first use" not in caplog.text
    # a cached zip that changed since its first download is reported and not used (server gone: no network needed)
    (cache / ZIP_NAME).write_bytes(_sdk_zip(onnx_bytes + b"\0"))
    with pytest.raises(DownloadError, match=r"not the file first downloaded.*It is not used"):
        zoo.fetch_detector(name)


@pytest.mark.parametrize("case", ["404", "truncated", "not_a_zip", "two_models", "no_model", "path_trick",
                                  "crc_damaged", "no_network"])
def test_failures_leave_the_cache_as_it_was(case: str, cache: Path, onnx_bytes: bytes, monkeypatch) -> None:
    cache.mkdir(parents=True)
    (cache / "other-0123abcd.pth").write_bytes(b"someone else's file")
    before = _listing(cache)
    good = _sdk_zip(onnx_bytes)
    bodies = {
        "not_a_zip": b"<html>an error page</html>",
        "two_models": zip_bytes({"a/end2end.onnx": onnx_bytes, "b/end2end.onnx": onnx_bytes}),
        "no_model": zip_bytes({"a/model.onnx": onnx_bytes}),
        "path_trick": zip_bytes({"a/end2end.onnx": onnx_bytes, "../../evil.sh": b"rm -rf ~"}),
        # flip one byte of the compressed model data: the listing reads fine, the CRC check fails while extracting
        "crc_damaged": good[:200] + bytes([good[200] ^ 0xFF]) + good[201:],
    }
    expected = {"404": "HTTP 404", "truncated": "ended after", "not_a_zip": "not a valid zip",
                "two_models": "2 files named end2end.onnx", "no_model": "0 files named end2end.onnx",
                "path_trick": "path trick", "crc_damaged": "not a usable detector zip.*Bad CRC-32",
                "no_network": "no network"}[case]
    with serve() as server:
        if case == "truncated":
            server.truncated["/" + ZIP_NAME] = (good[:len(good) // 2], len(good))
        elif case in bodies:
            server.files["/" + ZIP_NAME] = bodies[case]
        url = closed_port_url("/" + ZIP_NAME) if case == "no_network" else server.url("/" + ZIP_NAME)
        name = _register(monkeypatch, url)
        with pytest.raises(DownloadError, match=expected) as info:
            zoo.open_detector(name)
    if case in ("404", "no_network"):
        assert url in str(info.value) and str(cache) in str(info.value)
    assert _listing(cache) == before


def test_names_in_weights_list_and_download(cache: Path, onnx_bytes: bytes, monkeypatch, capsys) -> None:
    assert main(["weights", "list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in zoo.DETECTORS) and "yolox_tiny_humanart" in out
    assert zoo.DETECTORS["yolox_tiny_humanart"].input_size == (416, 416)
    with serve() as server:
        server.files["/" + ZIP_NAME] = _sdk_zip(onnx_bytes)
        name = _register(monkeypatch, server.url("/" + ZIP_NAME))
        assert main(["weights", "download", name]) == 0
    assert capsys.readouterr().out.strip() == str(cache / (ZIP_NAME + ".end2end.onnx"))
    with pytest.raises(ConfigError, match="not a detector name"):
        zoo.open_detector("yolox_tiny")


def test_predict_with_detector_by_name(cache: Path, onnx_bytes: bytes, tiny_model: Path, tmp_path: Path,
                                       monkeypatch, capsys) -> None:
    import json

    import cv2

    image = tmp_path / "in" / "street.png"
    image.parent.mkdir()
    cv2.imwrite(str(image), _image())
    with serve() as server:
        server.files["/" + ZIP_NAME] = _sdk_zip(onnx_bytes)
        name = _register(monkeypatch, server.url("/" + ZIP_NAME))
        assert main(["predict", str(image), "--onnx", str(tiny_model.with_suffix(".onnx")), "--detector", name,
                     "--no-draw", "--out", str(tmp_path / "out")]) == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [r["bbox"] for r in results] == [[100.0, 50.0, 100.0, 100.0]]
    # the summary says which detector gave the boxes, and which layout and normalisation it was read with
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("person boxes:"))
    assert name in line and "yolox" in line.lower(), line
