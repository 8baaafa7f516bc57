"""``fasterpose info``: JSON output, human table, and clear errors."""

from __future__ import annotations

import json

import pytest

from fasterpose.cli import main


def test_info_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "fasterpose_r50", "--input-size", "256x192", "--json"]) == 0
    out = capsys.readouterr().out
    result = json.loads(out)  # exactly one JSON object, nothing else on stdout
    assert isinstance(result, dict) and out.strip().count("\n") == 0
    assert result["name"] == "fasterpose_r50"
    assert result["output_shape"] == [1, 17, 64, 48]
    assert 20e6 < result["params"] < 30e6  # exact count: 27,131,008
    assert 3.0 < result["gmacs"] < 5.0  # exact count / 1e9: 4.18
    assert result["input_size"] == [256, 192]


def test_info_table_and_stride16(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "fasterpose_shufflev2", "--input-size", "128x96", "--output-stride", "16"]) == 0
    out = capsys.readouterr().out
    assert "GMACs" in out and "not counted" in out and "1x17x32x24" in out and "stride 16" in out


def test_info_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "--list"]) == 0
    assert "simplebaseline_r50" in capsys.readouterr().out.split()


@pytest.mark.parametrize("size, message", [("256", "HEIGHTxWIDTH"), ("250x192", "multiples of 32"),
                                           ("0x192", "multiples of 32")])
def test_info_bad_input_size(size: str, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "fasterpose_mbv2", "--input-size", size]) == 2
    captured = capsys.readouterr()
    assert message in captured.err and size in captured.err and captured.out == ""


def test_info_unknown_model(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "fasterpose_resnet50"]) == 2
    err = capsys.readouterr().err
    assert "unknown model 'fasterpose_resnet50'" in err and "Did you mean" in err and "Traceback" not in err
