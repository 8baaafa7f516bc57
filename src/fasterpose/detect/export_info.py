"""What an MMDeploy export says about itself: the detector family, its input size and its normalisation.

MMDeploy's SDK export (``tools/deploy.py --dump-info``, the files inside rtmlib's detector zips) writes three json
files beside ``end2end.onnx`` (``mmdeploy/backend/sdk/export_info.py``):

- ``deploy.json``: ``models[0].name``, the mmdet model type lowercased (``"yolox"``, ``"rtmdet"``), and
  ``models[0].net``, the graph's file name;
- ``pipeline.json``: ``pipeline.tasks[0].transforms``, the test pipeline with a ``Normalize`` built from the model's
  data preprocessor (``mean``, ``std``, ``to_rgb``; ``[0, 0, 0]`` / ``[1, 1, 1]`` when it has none, as YOLOX) and a
  ``Resize`` whose ``size`` is mmdet's ``scale``, ``(width, height)``; the ``Net`` task is named after the model;
- ``detail.json``: ``codebase.config`` (the model config's file name), ``onnx_config.input_shape``
  (``(width, height)`` or null) and ``onnx_config.output_names``.

Reading these is surer than guessing from the graph: MMDeploy rewrites YOLOX's Focus stem, so the graph alone can
be ambiguous. This module imports neither onnx nor onnxruntime.
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from ..errors import ConfigError

__all__ = ["DESCRIPTION_FILES", "ExportInfo", "find_export_onnx", "info_beside", "info_from_texts", "info_in_zip"]

DESCRIPTION_FILES = ("deploy.json", "pipeline.json", "detail.json")
_MAX_JSON_BYTES = 1 << 20  # the real files are a few kB
# mmdet model types (deploy.json's lowercased name) and config-file prefixes -> our layout names.
_FAMILIES = (("yolox", "yolox"), ("rtmdet", "rtmdet"))


@dataclass(frozen=True)
class ExportInfo:
    """The detector as its export describes it.

    Attributes:
        layout: ``"yolox"`` or ``"rtmdet"`` (MMDeploy's end2end graphs: NMS in the graph).
        mean, std: per-channel normalisation of the network input, in its channel order; ``None`` = none.
        rgb: the network takes RGB (``Normalize.to_rgb``); MMDeploy's YOLOX and RTMDet take BGR.
        input_size: ``(height, width)`` from the pipeline's ``Resize`` or ``onnx_config.input_shape``, if stated.
        reason: which file and field said what, for the user.
        normalisation_stated: pipeline.json has a ``Normalize``; otherwise ``mean``, ``std`` and ``rgb`` are unset
            and the family's usual normalisation applies.
    """

    layout: str
    mean: tuple[float, float, float] | None
    std: tuple[float, float, float] | None
    rgb: bool
    input_size: tuple[int, int] | None
    reason: str
    normalisation_stated: bool = True


def _load(text: str | None, name: str, where: str) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{where}/{name} is not valid JSON ({e.msg} at line {e.lineno}); it is part of the MMDeploy "
                          "export that describes the detector: restore it, or give --detector-layout") from None


def _family(name: Any) -> str | None:
    text = str(name or "").lower()
    text = PurePosixPath(text).name
    for prefix, layout in _FAMILIES:
        if text.startswith(prefix):
            return layout
    return None


def _tasks(pipeline: Any) -> list[dict]:
    """pipeline.json's ``pipeline.tasks`` (Preprocess transform, Net, postprocess); empty when malformed."""
    inner = pipeline.get("pipeline") if isinstance(pipeline, dict) else None
    tasks = inner.get("tasks") if isinstance(inner, dict) else None
    return [t for t in tasks if isinstance(t, dict)] if isinstance(tasks, list) else []


def _transforms(pipeline: Any) -> list[dict]:
    for task in _tasks(pipeline):
        if task.get("module") == "Transform" and isinstance(task.get("transforms"), list):
            return [t for t in task["transforms"] if isinstance(t, dict)]
    return []


def _triple(values: Any, field: str, where: str) -> tuple[float, float, float]:
    try:
        out = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        out = ()
    if len(out) != 3:
        raise ConfigError(f"{where}/pipeline.json: Normalize.{field} must be three numbers, got {values!r}")
    return out  # type: ignore[return-value]


def _size_wh(value: Any) -> tuple[int, int] | None:
    """``(height, width)`` from mmdet's ``(width, height)`` (or one int for a square)."""
    if isinstance(value, int) and value > 0:
        return value, value
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, int) and v > 0 for v in value):
        return int(value[1]), int(value[0])
    return None


def info_from_texts(texts: dict[str, str | None], where: str) -> ExportInfo | None:
    """The :class:`ExportInfo` from the json files' texts (``None`` for a missing file).

    Returns ``None`` when no file names a detector family this module knows (then the graph decides).

    Raises:
        ConfigError: a file is not valid JSON or its ``Normalize`` is malformed.
    """
    deploy, pipeline, detail = (_load(texts.get(n), n, where) for n in DESCRIPTION_FILES)
    layout, said = None, ""
    if isinstance(deploy, dict):
        models = deploy.get("models")
        if isinstance(models, list) and models and isinstance(models[0], dict):
            layout = _family(models[0].get("name"))
            said = f"deploy.json names the model {models[0].get('name')!r}"
    if layout is None:
        for task in _tasks(pipeline):
            if task.get("module") == "Net" and _family(task.get("name")):
                layout, said = _family(task.get("name")), f"pipeline.json's Net task is {task.get('name')!r}"
                break
    if layout is None and isinstance(detail, dict) and isinstance(detail.get("codebase"), dict):
        config = detail["codebase"].get("config")
        if _family(config):
            layout, said = _family(config), f"detail.json's model config is {PurePosixPath(str(config)).name!r}"
    if layout is None:
        return None
    transforms = _transforms(pipeline)
    mean = std = None
    rgb = False
    norm = next((t for t in transforms if t.get("type") == "Normalize"), None)
    if norm is not None:
        mean, std = _triple(norm.get("mean"), "mean", where), _triple(norm.get("std"), "std", where)
        rgb = bool(norm.get("to_rgb", False))
        if any(s == 0 for s in std):
            raise ConfigError(f"{where}/pipeline.json: Normalize.std {list(std)} has a zero")
        if mean == (0.0, 0.0, 0.0) and std == (1.0, 1.0, 1.0):
            mean = std = None
        said += (f"; pipeline.json's Normalize: mean {list(norm.get('mean'))}, std {list(norm.get('std'))}, "
                 f"to_rgb {str(rgb).lower()}")
    else:
        said += "; no Normalize in pipeline.json: the family's usual normalisation"
    size = None
    resize = next((t for t in transforms if t.get("type") == "Resize"), None)
    if resize is not None and _size_wh(resize.get("size")):
        size = _size_wh(resize.get("size"))
        said += f"; input {size[0]}x{size[1]} from pipeline.json's Resize"
    elif isinstance(detail, dict) and isinstance(detail.get("onnx_config"), dict) \
            and _size_wh(detail["onnx_config"].get("input_shape")):
        size = _size_wh(detail["onnx_config"]["input_shape"])
        said += f"; input {size[0]}x{size[1]} from detail.json's onnx_config.input_shape"
    return ExportInfo(layout, mean, std, rgb, size, f"{said} (MMDeploy's description in {where})", norm is not None)


def _read_small(path: Path) -> str | None:
    if not path.is_file():
        return None
    if path.stat().st_size > _MAX_JSON_BYTES:
        raise ConfigError(f"{path} is larger than {_MAX_JSON_BYTES} bytes; it is not MMDeploy's description file")
    return path.read_text(encoding="utf-8", errors="replace")


def info_beside(onnx_path: str | os.PathLike) -> ExportInfo | None:
    """The description in the graph's folder, when its ``deploy.json`` (or, lacking one, ``pipeline.json``) is
    there and does not name another net file; ``None`` otherwise."""
    onnx_path = Path(onnx_path)
    folder = onnx_path.parent
    texts = {n: _read_small(folder / n) for n in DESCRIPTION_FILES}
    if texts["deploy.json"] is None and texts["pipeline.json"] is None:
        return None
    deploy = _load(texts["deploy.json"], "deploy.json", str(folder))
    try:
        net = deploy["models"][0]["net"] if isinstance(deploy, dict) else None
    except (KeyError, IndexError, TypeError):
        net = None
    if net and PurePosixPath(str(net)).name != onnx_path.name:
        return None  # the folder describes another graph
    return info_from_texts(texts, str(folder))


def find_export_onnx(folder: str | os.PathLike) -> Path:
    """The graph of an MMDeploy export folder (the folder, or its one subfolder, holding the description files):
    ``deploy.json``'s net, else its one ``end2end.onnx``, else its one ``.onnx``.

    Raises:
        ConfigError: not an export (no description file), no graph, or several that could be it.
    """
    folder = Path(folder)
    described = [b for b in [folder, *sorted(p for p in folder.iterdir() if p.is_dir())]
                 if any((b / n).is_file() for n in DESCRIPTION_FILES)]
    if not described:
        raise ConfigError(f"--detector {folder} is a directory, not an MMDeploy export (none of "
                          f"{', '.join(DESCRIPTION_FILES)} in it or one level down); give the detector's .onnx file")
    candidates = []
    for base in described[:1] if described[0] == folder else described:
        deploy = _load(_read_small(base / "deploy.json"), "deploy.json", str(base))
        try:
            net = deploy["models"][0]["net"] if isinstance(deploy, dict) else None
        except (KeyError, IndexError, TypeError):
            net = None
        if net and (base / PurePosixPath(str(net)).name).is_file():
            candidates.append(base / PurePosixPath(str(net)).name)
        elif (base / "end2end.onnx").is_file():
            candidates.append(base / "end2end.onnx")
        else:
            candidates.extend(sorted(base.glob("*.onnx")))
    if len(candidates) != 1:
        found = ", ".join(str(c) for c in candidates) or "none"
        raise ConfigError(f"--detector {folder}: an MMDeploy export folder must hold one detector graph (its "
                          f"end2end.onnx); found {found}. Give the .onnx file instead")
    return candidates[0]


def info_in_zip(zip_path: str | os.PathLike, member: str) -> ExportInfo | None:
    """The description stored beside the zip member ``member`` (the graph), read without extracting it."""
    zip_path = Path(zip_path)
    parent = PurePosixPath(member.replace("\\", "/")).parent
    texts: dict[str, str | None] = {}
    with zipfile.ZipFile(zip_path) as zf:
        names = {i.filename.replace("\\", "/"): i for i in zf.infolist() if not i.is_dir()}
        for n in DESCRIPTION_FILES:
            info = names.get(str(parent / n) if str(parent) != "." else n)
            if info is None or info.file_size > _MAX_JSON_BYTES:
                texts[n] = None
                continue
            texts[n] = zf.read(info).decode("utf-8", errors="replace")
    return info_from_texts(texts, f"{zip_path}:{parent}" if str(parent) != "." else str(zip_path))
