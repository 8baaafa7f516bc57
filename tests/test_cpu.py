"""``fasterpose.cpu``: instruction sets read through CPUID, the PyTorch caps honoured, bf16 autocast only if native."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

from fasterpose import cpu

X86 = platform.machine().lower() in ("x86_64", "amd64")


def _info_with(env: dict[str, str]) -> dict:
    code = "import json; from fasterpose.cpu import cpu_info; print(json.dumps(cpu_info()))"
    clean = {k: v for k, v in os.environ.items() if k not in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**clean, **env}, check=True)
    return json.loads(out.stdout)


def test_cpu_info_is_consistent() -> None:
    info = cpu.cpu_info()
    assert info["model"] and info["cores"] >= 1 and info["class"]
    assert info["vnni"] == (info["avx512_vnni"] or info["avx_vnni"])
    assert info["native_bf16"] == cpu.native_bf16() and info["vnni"] == cpu.has_vnni()
    if info["avx512_bf16"] or info["amx"]:
        assert info["native_bf16"] and "BF16" in info["class"]
    assert cpu.cpu_class() in cpu.format_cpu()


@pytest.mark.skipif(not X86 or not _info_with({})["avx2"], reason="needs an x86-64 CPU with AVX2")
def test_avx2_caps_report_the_avx2_class() -> None:
    """ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 (the README's way to imitate an AVX2-only CPU in PyTorch):
    the report then describes what PyTorch may use, on any machine."""
    info = _info_with({"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"})
    assert info["avx2"] and not info["avx512"] and not info["vnni"] and not info["native_bf16"] and not info["amx"]
    assert info["class"].startswith("x86-64 AVX2") and "no AVX-512, VNNI, BF16" in info["class"]
    assert info["caps"] == {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
    # a cap of AVX512_CORE_VNNI keeps AVX-512 but drops bf16
    capped = _info_with({"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_VNNI"})
    assert not capped["native_bf16"] and capped["avx512"] == _info_with({})["avx512"]


def test_bf16_autocast_auto_needs_native_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    """``train.cpu_amp=auto`` never turns on emulated bf16 (oneDNN accepts bf16 on any AVX-512 CPU, 4x slower)."""
    torch = pytest.importorskip("torch")
    from fasterpose.engine.trainer import cpu_bf16_enabled

    monkeypatch.setattr(cpu, "native_bf16", lambda: False)
    assert not cpu_bf16_enabled("auto") and not cpu_bf16_enabled("off")
    assert cpu_bf16_enabled("bf16")  # asked for explicitly: on, with a warning
    monkeypatch.setattr(cpu, "native_bf16", lambda: True)
    assert cpu_bf16_enabled("auto") == bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
