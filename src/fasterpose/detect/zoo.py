"""Published person detectors by name: rtmlib's YOLOX models trained on Human-Art (people in photos and art; class
0 = person), exported by MMDeploy with NMS in the graph (``dets``, ``labels``). Each URL is a zip holding
``end2end.onnx`` (plus MMDeploy's json files); the URLs are those rtmlib's ``Body`` solutions use.

``--detector yolox_tiny_humanart`` (or :func:`open_detector`) downloads the zip once into the weights cache
(:func:`fasterpose.hub.cached_download`: same folder, offline and interrupted-download rules as the weights), then
extracts ``end2end.onnx`` beside it, atomically, as ``<zip name>.end2end.onnx``.

Trust on first use: the eight hex digits in these names are OpenMMLab's prefix of the training checkpoint's
SHA-256, not the zip's, and no published hash of the zips exists, so nothing can be checked on the first download.
Its SHA-256 is then recorded beside the zip (``<zip name>.sha256``, ``sha256sum`` format) and printed; every later
use checks the zip against the record, and a zip that changed is reported and not used. An entry with a pinned
``sha256`` (a verified download) is checked against it instead.

The zip is read with :mod:`zipfile`, never a shell tool: it must hold exactly one ``end2end.onnx``, no member may
have an absolute path or a ``..`` part, none may be a link, a device or a FIFO, and the model may be at most
:data:`MAX_ONNX_BYTES` (checked on the declared size and again while streaming, so a zip bomb stops there).
"""

from __future__ import annotations

import logging
import os
import stat
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from ..errors import ConfigError
from ..hub import DownloadError, cache_path, cached_download, sha256_of

__all__ = ["DETECTORS", "DetectorFile", "MAX_ONNX_BYTES", "extract_onnx", "fetch_detector", "open_detector",
           "open_export"]

logger = logging.getLogger(__name__)

_SDK = "https://download.openmmlab.com/mmpose/v1/projects/rtmposev1/onnx_sdk/"
MAX_ONNX_BYTES = 2 << 30  # protobuf's limit for one ONNX file; yolox_x's end2end.onnx is about 400 MB
_MEMBER = "end2end.onnx"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class DetectorFile:
    """A published detector: where it is and how to run it."""

    url: str
    layout: str
    input_size: tuple[int, int]  # (height, width)
    sha256: str | None = None  # of the downloaded zip when verified; None = trust on first use


DETECTORS: dict[str, DetectorFile] = {
    "yolox_nano_humanart": DetectorFile(_SDK + "yolox_nano_8xb8-300e_humanart-40f6f0d0.zip", "yolox", (416, 416)),
    "yolox_tiny_humanart": DetectorFile(_SDK + "yolox_tiny_8xb8-300e_humanart-6f3252f9.zip", "yolox", (416, 416)),
    "yolox_m_humanart": DetectorFile(_SDK + "yolox_m_8xb8-300e_humanart-c2c7a14a.zip", "yolox", (640, 640)),
    "yolox_x_humanart": DetectorFile(_SDK + "yolox_x_8xb8-300e_humanart-a39d44ed.zip", "yolox", (640, 640)),
}


def _record_path(zip_path: Path) -> Path:
    return zip_path.with_name(zip_path.name + ".sha256")


def _trust_on_first_use(zip_path: Path, url: str) -> None:
    """Check ``zip_path`` against its recorded SHA-256, or record it (and say so) when there is no record."""
    from ..io_utils import atomic_write_text

    record = _record_path(zip_path)
    actual = sha256_of(zip_path)
    if record.is_file():
        recorded = (record.read_text(encoding="utf-8", errors="replace").split() or [""])[0].lower()
        if recorded != actual:
            raise DownloadError(f"{zip_path} is not the file first downloaded from {url}: its SHA-256 is {actual}, "
                                f"{record} recorded {recorded or 'nothing readable'}. It is not used. If the "
                                f"publisher replaced the file on purpose, delete {zip_path} and {record} to download "
                                "and trust it afresh")
        return
    atomic_write_text(record, f"{actual}  {zip_path.name}\n")
    logger.warning("downloaded %s with SHA-256 %s: no published hash exists for it, so this one is recorded in %s and "
                   "checked on every later use (trust on first use)", url, actual, record)


_SPECIAL = {stat.S_IFLNK: "a symbolic link", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
            stat.S_IFIFO: "a FIFO", stat.S_IFSOCK: "a socket"}


def _special_kind(info: zipfile.ZipInfo) -> str | None:
    """What a zip member is when it is not a plain file or folder (a Unix mode in its external attributes).

    Zip has no hard links; a symbolic link is stored as a member whose data is the link's target, and some tools
    recreate it as a link on extraction.
    """
    mode = info.external_attr >> 16
    return _SPECIAL.get(stat.S_IFMT(mode)) if info.create_system == 3 and mode else None


def _onnx_member(zf: zipfile.ZipFile, zip_path: Path) -> zipfile.ZipInfo:
    """The zip's one ``end2end.onnx``, after refusing unsafe member paths and oversized or encrypted models."""
    for info in zf.infolist():
        name = info.filename.replace("\\", "/")
        parts = PurePosixPath(name).parts
        if name.startswith("/") or ".." in parts or (parts and parts[0].endswith(":")):
            raise DownloadError(f"{zip_path}: refusing the zip, its member {info.filename!r} has an absolute path or "
                                "a '..' part (a path trick); it is not the published detector")
        kind = _special_kind(info)
        if kind:
            raise DownloadError(f"{zip_path}: refusing the zip, its member {info.filename!r} is {kind}, not a file "
                                "(a path trick: extracting it could reach outside the cache); it is not the published "
                                "detector")
    found = [i for i in zf.infolist()
             if not i.is_dir() and PurePosixPath(i.filename.replace("\\", "/")).name == _MEMBER]
    if len(found) != 1:
        listed = ", ".join(i.filename for i in found) or "none"
        raise DownloadError(f"{zip_path} holds {len(found)} files named {_MEMBER} ({listed}), not exactly one; it is "
                            "not an MMDeploy detector zip")
    info = found[0]
    if info.flag_bits & 0x1:
        raise DownloadError(f"{zip_path}: {info.filename} is encrypted; it is not the published detector")
    if info.file_size > MAX_ONNX_BYTES:
        raise DownloadError(f"{zip_path}: {info.filename} declares {info.file_size} bytes, more than the "
                            f"{MAX_ONNX_BYTES} an ONNX file can hold; refusing to extract it")
    return info


def _crc32_of(path: Path) -> int:
    crc = 0
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            crc = zlib.crc32(chunk, crc)
    return crc


def extract_onnx(zip_path: str | os.PathLike) -> Path:
    """Extract the zip's ``end2end.onnx`` to ``<zip name>.end2end.onnx`` beside it (atomically), unless a file with
    the member's CRC-32 is already there; returns its path.

    Raises:
        DownloadError: not a zip, damaged, no or several ``end2end.onnx``, a path trick, or an oversized model.
    """
    from ..io_utils import atomic_path

    zip_path = Path(zip_path)
    target = zip_path.with_name(zip_path.name + "." + _MEMBER)
    try:
        with zipfile.ZipFile(zip_path) as zf:
            info = _onnx_member(zf, zip_path)
            if target.is_file() and target.stat().st_size == info.file_size and _crc32_of(target) == info.CRC:
                return target
            with atomic_path(target) as tmp, zf.open(info) as src, open(tmp, "wb") as dst:
                done = 0
                for chunk in iter(lambda: src.read(_CHUNK), b""):
                    done += len(chunk)
                    if done > min(info.file_size, MAX_ONNX_BYTES):
                        raise DownloadError(f"{zip_path}: {info.filename} inflates past its declared "
                                            f"{info.file_size} bytes; refusing it")
                    dst.write(chunk)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as e:
        raise DownloadError(f"{zip_path} is not a valid zip file or is damaged ({e})") from None
    return target


def fetch_detector(name: str, progress: bool = True) -> Path:
    """The ``end2end.onnx`` of the published detector ``name``, downloaded, checked and extracted on first use.

    Raises:
        ConfigError: ``name`` is not a key of :data:`DETECTORS`.
        DownloadError: the download failed (the message names the URL and the cache folder), the zip changed since
            its first download, or it is not a valid detector zip. A zip that arrives broken is not kept.
    """
    if name not in DETECTORS:
        raise ConfigError(f"unknown detector name {name!r}; known: {', '.join(DETECTORS)} (or give an .onnx file)")
    entry = DETECTORS[name]
    before = cache_path(entry.url).is_file()
    zip_path = cached_download(entry.url, sha256_prefix=entry.sha256, hash_from_name=False, progress=progress)
    record = _record_path(zip_path)
    if entry.sha256 is None and (before or record.is_file()):
        _trust_on_first_use(zip_path, entry.url)  # checks against the record: a changed zip is not opened
    try:
        onnx_path = extract_onnx(zip_path)
    except DownloadError as e:
        if not before:  # what just arrived is unusable: keep the cache as it was
            zip_path.unlink(missing_ok=True)
            raise DownloadError(f"the file downloaded from {entry.url} is not a usable detector zip ({e}); nothing "
                                "was kept") from None
        raise DownloadError(f"{e}. Delete {zip_path} (and {record.name} beside it) to download it afresh") from None
    if entry.sha256 is None and not record.is_file():
        _trust_on_first_use(zip_path, entry.url)  # first use: records (and prints) the hash
    return onnx_path


def open_detector(detector: str | os.PathLike, layout: str | None = None, score_thr: float = 0.3,
                  threads: int | None = None) -> Any:
    """An :class:`~fasterpose.detect.OnnxDetector` from an ``.onnx`` file or a :data:`DETECTORS` name.

    An existing file wins over a name; a name sets the layout and input size from the table (``layout`` overrides).
    An MMDeploy export folder or zip is read with its description (:func:`open_export`).
    """
    from .onnx_detector import OnnxDetector

    text = os.fspath(detector)
    if not Path(text).exists() and text in DETECTORS:
        entry = DETECTORS[text]
        why = "given (--detector-layout)" if layout else f"the published detector {text}'s fixed layout"
        return OnnxDetector(fetch_detector(text), layout=layout or entry.layout, score_thr=score_thr,
                            input_size=entry.input_size, threads=threads, reason=why)
    if Path(text).is_dir() or (Path(text).is_file() and text.lower().endswith(".zip")):
        return open_export(text, layout=layout, score_thr=score_thr, threads=threads)
    if not Path(text).exists() and not text.lower().endswith(".onnx"):
        raise ConfigError(f"--detector {text}: no such file, and not a detector name ({', '.join(DETECTORS)}); give "
                          "an .onnx file or one of those names")
    return OnnxDetector(text, layout=layout, score_thr=score_thr, threads=threads)


def open_export(path: str | os.PathLike, layout: str | None = None, score_thr: float = 0.3,
                threads: int | None = None) -> Any:
    """A detector from an MMDeploy export folder or zip (rtmlib's detector zips are these), with the layout,
    normalisation and input size its ``deploy.json`` / ``pipeline.json`` / ``detail.json`` state; the graph decides
    when they name no family. A zip's ``end2end.onnx`` is extracted beside it (as :func:`extract_onnx` does)."""
    from .export_info import find_export_onnx, info_in_zip
    from .onnx_detector import OnnxDetector

    path = Path(path)
    if path.is_dir():
        return OnnxDetector(find_export_onnx(path), layout=layout, score_thr=score_thr, threads=threads)
    try:
        with zipfile.ZipFile(path) as zf:
            member = _onnx_member(zf, path).filename
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as e:
        raise DownloadError(f"{path} is not a valid zip file or is damaged ({e})") from None
    info = None if layout else info_in_zip(path, member)
    return OnnxDetector(extract_onnx(path), layout=layout, score_thr=score_thr, threads=threads, description=info)
