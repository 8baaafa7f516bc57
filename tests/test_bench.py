"""``fasterpose bench``: JSON output format with tiny settings."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("torch")

from fasterpose.cli import main  # noqa: E402
from fasterpose.deploy.bench import format_table  # noqa: E402

REQUIRED = {"model", "backend", "precision", "threads", "median_ms", "p90_ms", "gmacs", "params", "gflops_per_s",
            "input_size", "batch"}


def test_bench_json(tmp_path, capsys):
    out = tmp_path / "latency.json"
    assert main(["bench", "--models", "fasterpose_mbv2", "--input-size", "128x96", "--repeats", "3", "--warmup", "1",
                 "--threads", "1", "--int8", "--json", "--out", str(out)]) == 0
    rows = json.loads(capsys.readouterr().out)  # stdout holds the JSON array and nothing else
    assert json.loads(out.read_text()) == rows
    assert [(r["backend"], r["precision"]) for r in rows] == [
        ("torch", "fp32"), ("onnxruntime", "fp32"), ("onnxruntime", "int8")]
    for r in rows:
        assert REQUIRED <= set(r)
        assert r["model"] == "fasterpose_mbv2" and r["threads"] == 1 and r["batch"] == 1
        assert r["input_size"] == [128, 96]
        assert 0 < r["median_ms"] <= r["p90_ms"]  # order statistics, both rounded to 3 decimals (monotone)
        assert r["gmacs"] > 0 and r["params"] > 1e6 and r["gflops_per_s"] > 0
        assert r["preprocess_ms_per_person"] > 0 and r["postprocess_ms_per_person"] > 0
    assert rows[2]["calibration"] == "random inputs"
    table = format_table(rows)
    assert table.count("\n| fasterpose_mbv2 |") == 3 and "pre-processing" in table


def test_bench_errors(capsys):
    assert main(["bench", "--models", "fasterpose_nope", "--repeats", "1"]) == 2
    assert "fasterpose_nope" in capsys.readouterr().err
    assert main(["bench", "--models", "fasterpose_mbv2", "--backends", "torch", "--int8"]) == 2
    assert "onnxruntime" in capsys.readouterr().err
