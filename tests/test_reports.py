"""Reports say what is true: every path a JSON report names exists after the command, and the keys that the
docstrings promise are the keys the report holds (``fasterpose eval``, ``export`` with and without ``--int8``,
``synth``; the demo's report is checked in test_demo.py the same way)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from _reports import assert_paths_exist  # noqa: E402

from fasterpose.cli import main  # noqa: E402

PEOPLE = Path(__file__).parent / "data" / "people"


def _doc_keys(doc: str, after: str) -> set[str]:
    """The ``key`` names a docstring lists after ``after`` (lowercase identifiers only, not quoted values)."""
    return set(re.findall(r"``([a-z][a-z0-9_]*)``", doc.split(after, 1)[1]))


def test_eval_report_holds_the_documented_keys(tiny_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from fasterpose.engine.evaluate import evaluate_checkpoint

    assert main(["eval", "--checkpoint", str(tiny_run / "last.pt"), "--json", "--no-flip"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) == _doc_keys(evaluate_checkpoint.__doc__ or "", "Its keys:")
    assert report["metric"] == "AP" and report["ap"] == report["value"] == report["stats"]["AP"]
    assert report["pckh"] is None and report["pck"] is None
    assert assert_paths_exist(report) == [str(tiny_run / "last.pt")]


def test_export_reports_name_the_files_written(tiny_model: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """``int8.path`` is the file at --out (it was a deleted temporary file); the fp32 graph of an int8 export is not
    kept, so ``export.path`` is None there."""
    import fasterpose.commands.export as export_command

    documented = _doc_keys(export_command.__doc__ or "", "``--json`` prints one object:")
    fp32 = tmp_path / "fp32.onnx"
    assert main(["export", "--checkpoint", str(tiny_model), "--out", str(fp32), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["export"]["path"] == report["out"] == str(fp32) and report["precision"] == "fp32"
    assert set(report) <= documented and {"checkpoint", "out", "precision", "export"} <= set(report)
    assert_paths_exist(report)

    int8 = tmp_path / "int8.onnx"
    assert main(["export", "--checkpoint", str(tiny_model), "--out", str(int8), "--int8", "--calib", str(PEOPLE),
                 "--calib-size", "8", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["int8"]["path"] == report["out"] == str(int8) and report["precision"] == "int8"
    assert report["export"]["path"] is None
    assert set(report) <= documented and {"int8", "int8_vs_fp32"} <= set(report)
    assert str(int8) in assert_paths_exist(report)


def test_synth_report_paths(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["synth", str(tmp_path / "set"), "--images", "2", "--size", "64x64"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert len(assert_paths_exist(report)) == 4  # root, images, annotations, detections
