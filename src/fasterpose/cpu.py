"""What this CPU can do: the instruction sets that decide which kernels PyTorch and onnxruntime run.

Two facts matter for fasterpose, and both differ between machines of the same "x86-64" name:

* **native bfloat16** (AVX512-BF16 or AMX-BF16): bfloat16 autocast makes CPU training about 1.5x faster there. On a
  CPU without it, oneDNN still *accepts* bf16 (it emulates it on any AVX-512 core, so
  ``torch.ops.mkldnn._is_mkldnn_bf16_supported()`` is true on an AVX-512 CPU without BF16) but runs it about 4x
  slower than fp32 (measured: ResNet-18 training steps on a Xeon with AVX-512 + VNNI and no BF16). So autocast is
  only turned on where the CPU itself has bf16 instructions.
* **VNNI** (AVX512-VNNI or AVX-VNNI): onnxruntime's int8 convolutions multiply u8 x s8 with ``vpdpbusd`` there;
  without it (AVX2-only CPUs, AVX-512 CPUs before Cascade Lake) they use ``vpmaddubsw``, whose pairwise 16-bit sums
  saturate unless the weights are quantised to 7 bits (``reduce_range``). See :mod:`fasterpose.deploy.quantize`.

The instruction sets are read with CPUID through numpy's runtime dispatcher (``__cpu_features__``), so they are right
under an emulator too (``qemu-x86_64 -cpu Haswell`` reports AVX2 without AVX-512), plus ``/proc/cpuinfo`` for what
numpy does not probe (AMX, AVX-VNNI). PyTorch's kernel choice can be capped per process with
``ATEN_CPU_CAPABILITY=avx2`` and ``ONEDNN_MAX_CPU_ISA=AVX2``; :func:`cpu_info` honours those caps, so a run with them
reports (and picks recipes for) the CPU class it imitates.
"""

from __future__ import annotations

import os
import platform
from functools import lru_cache
from typing import Any

__all__ = ["cpu_info", "cpu_class", "native_bf16", "has_vnni", "format_cpu", "check_threads", "MAX_THREADS"]

# The most intra-op threads any option accepts: more than the largest servers have hardware threads; beyond it
# OpenMP thread pools fail (a segmentation fault at 100,000) or the run seems to hang while they start.
MAX_THREADS = 1024


def check_threads(value: int | None, label: str) -> None:
    """Refuse a thread count outside ``1 .. MAX_THREADS`` with a message naming ``label`` (e.g. ``"--threads"``);
    ``None`` (the library default) passes.

    Raises:
        ConfigError: naming ``label``, the value and this machine's CPU count.
    """
    from .errors import ConfigError

    if value is not None and not 1 <= value <= MAX_THREADS:
        raise ConfigError(f"{label} must be between 1 and {MAX_THREADS}, got {value} (this machine has "
                          f"{os.cpu_count()} logical CPUs; one thread per physical core is usually fastest)")

# oneDNN's ISA caps, in order (ONEDNN_MAX_CPU_ISA / DNNL_MAX_CPU_ISA); the features each one allows.
_ONEDNN_ORDER = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI",
                 "AVX512_CORE_BF16", "AVX10_1_512", "AVX512_CORE_AMX", "AVX10_1_512_AMX", "AVX10_1_512_AMX_FP16",
                 "ALL")


def _proc_cpuinfo() -> tuple[str, set[str]]:
    """``(model name, flags)`` from ``/proc/cpuinfo`` (Linux); empty elsewhere."""
    model, flags = "", set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip().lower()
                if key in ("model name", "hardware", "cpu model") and not model:
                    model = value.strip()
                elif key in ("flags", "features") and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    return model, flags


def _numpy_features() -> dict[str, bool]:
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as feats  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        try:
            from numpy.core._multiarray_umath import __cpu_features__ as feats
        except ImportError:
            feats = {}
    return dict(feats)


def _onednn_cap() -> int:
    """Index in :data:`_ONEDNN_ORDER` of the ISA cap set in the environment (the last entry when none)."""
    value = (os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "ALL").upper()
    return _ONEDNN_ORDER.index(value) if value in _ONEDNN_ORDER else len(_ONEDNN_ORDER) - 1


@lru_cache(maxsize=1)
def cpu_info() -> dict[str, Any]:
    """The CPU's model name, architecture and the instruction sets that matter here.

    Returns:
        ``model``, ``arch``, ``cores`` (logical CPUs usable by this process), and booleans ``avx2``, ``fma``,
        ``avx512`` (AVX512F), ``avx512_vnni``, ``avx_vnni``, ``vnni`` (either), ``avx512_bf16``, ``amx``,
        ``neon``, ``native_bf16``; ``caps``: the ``ATEN_CPU_CAPABILITY`` / ``ONEDNN_MAX_CPU_ISA`` caps in force
        (``None`` when unset) and ``class``: a short label such as ``"x86-64 AVX2 (no AVX-512, VNNI, BF16)"``.
        With a cap of AVX2 in the environment the AVX-512, VNNI and bf16 entries are reported false: that is what
        PyTorch can use in this process.
    """
    model, flags = _proc_cpuinfo()
    feats = _numpy_features()
    arch = platform.machine().lower()
    x86 = arch in ("x86_64", "amd64", "i686", "x86")
    avx512 = bool(feats.get("AVX512F", "avx512f" in flags))
    info: dict[str, Any] = {
        "model": model or platform.processor() or arch,
        "arch": arch,
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "avx2": bool(feats.get("AVX2", "avx2" in flags)),
        "fma": bool(feats.get("FMA3", "fma" in flags)),
        "avx512": avx512,
        "avx512_vnni": bool(feats.get("AVX512VNNI", "avx512_vnni" in flags)),
        "avx_vnni": "avx_vnni" in flags and bool(feats.get("AVX2", True)),
        "avx512_bf16": bool(feats.get("AVX512BF16", "avx512_bf16" in flags)),
        # numpy does not probe AMX; /proc/cpuinfo is the host's even under an emulator, so AMX also needs AVX-512
        # as CPUID reports it.
        "amx": "amx_bf16" in flags and avx512,
        "neon": bool(feats.get("ASIMD", False)) or ("asimd" in flags and not x86),
    }
    aten = os.environ.get("ATEN_CPU_CAPABILITY")
    cap = _onednn_cap()
    info["caps"] = {"ATEN_CPU_CAPABILITY": aten, "ONEDNN_MAX_CPU_ISA": os.environ.get("ONEDNN_MAX_CPU_ISA")}
    if (aten and aten.lower() in ("avx2", "default")) or cap < _ONEDNN_ORDER.index("AVX512_CORE"):
        info.update(avx512=False, avx512_vnni=False, avx512_bf16=False, amx=False)
    if cap < _ONEDNN_ORDER.index("AVX512_CORE_BF16"):
        info.update(avx512_bf16=False, amx=False)
    if cap < _ONEDNN_ORDER.index("AVX2_VNNI"):
        info.update(avx_vnni=False)
    if cap < _ONEDNN_ORDER.index("AVX2"):
        info.update(avx2=False)
    info["vnni"] = info["avx512_vnni"] or info["avx_vnni"]
    info["native_bf16"] = info["avx512_bf16"] or info["amx"] or ("bf16" in flags and not x86)
    info["class"] = _label(info, x86)
    return info


def _label(info: dict[str, Any], x86: bool) -> str:
    if not x86:
        return f"{info['arch']}" + (" NEON" if info["neon"] else "") + (" BF16" if info["native_bf16"] else "")
    if info["avx512"]:
        base = "x86-64 AVX-512"
    elif info["avx2"]:
        base = "x86-64 AVX2"
    else:
        base = "x86-64 (no AVX2)"
    have = [n for n, k in (("VNNI", "vnni"), ("BF16", "native_bf16"), ("AMX", "amx")) if info[k]]
    lack = [n for n, k in (("AVX-512", "avx512"), ("VNNI", "vnni"), ("BF16", "native_bf16")) if not info[k]]
    return base + "".join(f" + {n}" for n in have) + (f" (no {', '.join(lack)})" if lack else "")


def native_bf16() -> bool:
    """Whether this CPU executes bfloat16 natively (AVX512-BF16 or AMX), as PyTorch may use it in this process."""
    return bool(cpu_info()["native_bf16"])


def has_vnni() -> bool:
    """Whether this CPU has VNNI (int8 dot products without 16-bit saturation)."""
    return bool(cpu_info()["vnni"])


def cpu_class() -> str:
    """A short label of the CPU class, e.g. ``"x86-64 AVX-512 + VNNI (no BF16)"``."""
    return str(cpu_info()["class"])


def format_cpu() -> str:
    """``"<model> [<class>], N cores"`` for reports and benchmark tables."""
    info = cpu_info()
    caps = {k: v for k, v in info["caps"].items() if v}
    capped = f", capped by {' '.join(f'{k}={v}' for k, v in caps.items())}" if caps else ""
    return f"{info['model']} [{info['class']}{capped}], {info['cores']} cores"
