"""Plumbing of ``benchmarks/ablation.py`` on fake run records: overrides, statistics, comparisons, table, plots."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ab() -> Any:
    spec = importlib.util.spec_from_file_location("ablation", ROOT / "benchmarks" / "ablation.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["ablation"] = module  # dataclasses need the module registered
    spec.loader.exec_module(module)
    return module


def fake(variant: str, seed: int, ap: list[float]) -> dict[str, Any]:
    return {"variant": variant, "seed": seed, "status": "ok", "epochs": [float(i + 1) for i in range(len(ap))],
            "ap": ap, "final_ap": ap[-1], "best_ap": max(ap), "train_seconds": 10.0}


def test_variant_overrides(ab: Any) -> None:
    from fasterpose.engine.config import load_config

    v = ab.VARIANTS
    a = ab.variant_overrides(v["a"], "fasterpose_r18")
    assert a == ["model.name=simplebaseline_r18", "model.kwargs={}", "loss.name=mse"]
    b = ab.variant_overrides(v["b"], "fasterpose_r18")
    assert "model.name=fasterpose_r18" in b and "loss.name=mse" in b
    assert json.loads(b[1].split("=", 1)[1]) == {"final_bias": 0.0}  # MSE must not start at the RCE prior
    c = ab.variant_overrides(v["c"], "fasterpose_r50", {"head_channels": 128, "final_bias": -2.0})
    assert json.loads(c[1].split("=", 1)[1]) == {"head_channels": 128} and "loss.name=rce" in c
    d = ab.variant_overrides(v["d16"], "fasterpose_r18")
    assert json.loads(d[1].split("=", 1)[1]) == {"output_stride": 16}
    cut = ab.variant_overrides(v["d16_l3"], "fasterpose_r18")
    assert json.loads(cut[1].split("=", 1)[1]) == {"output_stride": 16, "num_stages": 3}
    udp = ab.variant_overrides(v["e_udp"], "fasterpose_r18", codec_base=v["d16"])
    assert udp == [*d, "data.codec.unbiased=true"]
    assert ab.variant_overrides(v["e_dark"], "fasterpose_r18", codec_base=v["c"])[-1] == "data.codec.decode=dark"
    with pytest.raises(ValueError):
        ab.variant_overrides(v["e_udp"], "fasterpose_r18")  # no codec base
    # every override list loads as a valid config (COCO base: ResNet-50 family names exist on both sides)
    for key in ("a", "b", "c", "d16", "d16_l3"):
        ovr = ab.run_overrides(ab.variant_overrides(v[key], "fasterpose_r50"), seed=2, threads=1, epochs=3)
        cfg = load_config("coco_fasterpose_r50_256x192", ovr)
        assert cfg.train.seed == 2 and cfg.train.val_every == 1 and cfg.train.epochs == 3
        assert cfg.train.deterministic  # CPU runs are exactly reproducible
    assert "train.deterministic=true" not in ab.run_overrides([], seed=0, threads=1, epochs=None, device="cuda")


def test_epochs_to_reach_and_summary(ab: Any) -> None:
    assert ab.epochs_to_reach([1, 2, 3], [0.1, 0.5, 0.7], 0.5) == 2.0
    assert ab.epochs_to_reach([1, 2, 3], [0.1, 0.2, 0.3], 0.5) is None
    recs = [fake("c", 0, [0.2, 0.5, 0.6]), fake("c", 1, [0.1, 0.4, 0.8]), fake("c", 2, [0.0, 0.1, 0.4]),
            {"variant": "c", "seed": 3, "status": "failed"}]
    s = ab.summarize_variant(recs, threshold=0.5)
    assert s["n"] == 3 and s["failed_seeds"] == [3]
    assert s["final_ap_mean"] == pytest.approx(0.6)
    assert s["final_ap_std"] == pytest.approx(0.2)  # sample std (ddof=1) of 0.6, 0.8, 0.4
    assert s["epochs_to_threshold"] == [2.0, 3.0, None]
    assert s["epochs_to_threshold_reached"] == 2 and s["epochs_to_threshold_mean"] == pytest.approx(2.5)
    assert s["curve_max"] == [0.2, 0.5, 0.8] and s["curve_min"] == [0.0, 0.1, 0.4]
    assert s["ap_auc"][0] == pytest.approx((0.2 + 0.5 + 0.6) / 3)


def test_compare_verdicts(ab: Any) -> None:
    a = {"final_ap": [0.50, 0.51, 0.49]}
    far = {"final_ap": [0.70, 0.71, 0.69]}
    near = {"final_ap": [0.505, 0.49, 0.515]}
    r = ab.compare(a, far)
    assert r["diff"] == pytest.approx(0.2) and r["verdict"] == "larger than seed noise" and r["p"] < 0.01
    assert ab.compare(a, near)["verdict"] == "within seed noise"
    assert ab.compare(a, {"final_ap": [0.6]})["verdict"] == "not enough seeds"
    # paired: a consistent +0.01 on the same checkpoints is significant even though it is tiny vs the spread
    p = ab.compare({"final_ap": [0.3, 0.5, 0.7]}, {"final_ap": [0.311, 0.509, 0.71]}, paired=True)
    assert p["verdict"] == "larger than seed noise"
    assert ab.compare({"final_ap": [0.3, 0.5, 0.7]}, {"final_ap": [0.311, 0.509, 0.71]})["verdict"] != (
        "larger than seed noise")


def test_pareto_front(ab: Any) -> None:
    pts = [(10.0, 0.6), (5.0, 0.5), (7.0, 0.4), (5.0, 0.55), (12.0, 0.6)]
    assert ab.pareto_front(pts) == [3, 0]


def test_metrics_complete(ab: Any) -> None:
    hist = [{"epoch": 1, "AP": 0.1}, {"epoch": 2, "AP": 0.2}]
    assert ab.metrics_complete(hist, 2)
    assert not ab.metrics_complete(hist, 3)
    assert not ab.metrics_complete([{"epoch": 1, "AP": 0.1}, {"epoch": 2}], 2)
    assert not ab.metrics_complete([{"epoch": 1, "AP": 0.1}, {"epoch": 1.5, "AP": 0.2}], 2)


def test_tables_and_plots(ab: Any, tmp_path: Path) -> None:
    recs = {k: [fake(k, s, [0.1 * (i + 1) + 0.01 * s + off for i in range(4)]) for s in range(3)]
            for k, off in (("a", 0.0), ("c", 0.2))}
    summary = {k: ab.summarize_variant(r, threshold=0.5) for k, r in recs.items()}
    info = {"a": {"model": "simplebaseline_r18", "loss": "mse", "stride": 32, "codec": "MSRA, quarter",
                  "params_m": 15.4, "gmacs": 1.2, "ort_ms": 9.0},
            "c": {"model": "fasterpose_r18", "loss": "rce", "stride": 32, "codec": "MSRA, quarter",
                  "params_m": 12.0, "gmacs": 0.6, "ort_ms": 4.0}}
    table = ab.make_table(summary, info, 0.5)
    rows = table.splitlines()
    assert len(rows) == 4 and rows[0].count("|") == rows[2].count("|") == rows[3].count("|")
    assert "| c | fasterpose_r18 | rce | 32 |" in rows[3]
    assert "0.610 ± 0.010 (3)" in rows[3]  # final APs 0.6, 0.61, 0.62
    assert "not reached (0/3)" in rows[2] and "3.0 (3/3)" in rows[3]  # 0.3, 0.4, 0.5: epoch 3
    comps = ab.comparisons(summary, codec_base="c")
    assert [c["comparison"].split(",")[0] for c in comps] == ["claim 3"]
    assert comps[0]["verdict"] == "larger than seed noise"
    assert "claim 3" in ab.comparison_table(comps)
    ab.plot_curves(summary, tmp_path / "curves.png", 0.5)
    ab.plot_pareto(summary, info, tmp_path / "pareto.png")
    assert (tmp_path / "curves.png").stat().st_size > 1000 and (tmp_path / "pareto.png").stat().st_size > 1000


def test_cached_run_is_not_retrained(ab: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fasterpose.engine.config import CONFIG_DIR

    cfg = tmp_path / "cfg.yaml"
    text = (CONFIG_DIR / "synthetic_fasterpose_r18.yaml").read_text()
    cfg.write_text(text)
    run_dir = tmp_path / "c" / "seed0"
    run_dir.mkdir(parents=True)
    overrides = ["train.seed=0"]
    request = {"config": str(cfg), "overrides": overrides, "fingerprint": ab.run_fingerprint(str(cfg), overrides)}
    rec = {**fake("c", 0, [0.3, 0.4]), "request": request}
    (run_dir / "run.json").write_text(json.dumps(rec))

    def boom(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a cached run must not start a subprocess")

    monkeypatch.setattr(ab.subprocess, "run", boom)
    assert ab.train_run(str(cfg), "c", 0, overrides, run_dir, 2, "cpu", 1)["final_ap"] == 0.4
    # different overrides: the cache does not apply, a subprocess is started
    with pytest.raises(AssertionError, match="cached run"):
        ab.train_run(str(cfg), "c", 0, ["train.seed=1"], run_dir, 2, "cpu", 1)
    # same name and overrides, but the config file's contents changed: retrained too
    (run_dir / "run.json").write_text(json.dumps(rec))
    cfg.write_text(text.replace("lr: 2.0e-3", "lr: 1.0e-3"))
    assert "lr: 1.0e-3" in cfg.read_text()
    with pytest.raises(AssertionError, match="cached run"):
        ab.train_run(str(cfg), "c", 0, overrides, run_dir, 2, "cpu", 1)
