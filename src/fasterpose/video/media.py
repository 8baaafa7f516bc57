"""The files a prediction reads and writes: a video or webcam opened and read ahead, drawn videos written and read
back, truncated images noticed, output names that fit the file system (a folder's images:
:func:`fasterpose.data.images.list_images`).

:mod:`fasterpose.video.frames` reads and writes the frames in background threads; this module opens the files and
checks what came of them.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..data.images import VIDEO_SUFFIXES
from ..errors import DataError
from .frames import FrameReader, FrameWriter

__all__ = ["VIDEO_SUFFIXES", "VideoInput", "VideoOutput", "drawn_image_names", "fit_name", "truncated"]

NAME_MAX = 255  # bytes in one file name on Linux, macOS and Windows file systems (ext4, APFS, NTFS)


def truncated(path: Path) -> bool:
    """Whether a JPEG or PNG file ends before its end marker (a partial download or copy). Other formats: False."""
    suffix = path.suffix.lower()
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64))
            tail = f.read()
    except OSError:
        return False
    if suffix in (".jpg", ".jpeg"):
        return b"\xff\xd9" not in tail  # EOI marker (some writers pad after it)
    if suffix == ".png":
        return b"IEND" not in tail
    return False


def fit_name(base: str, suffix: str, limit: int = NAME_MAX) -> str:
    """``base + suffix``, or when that is longer than ``limit`` bytes (a file system's name limit), ``base`` cut to
    fit with ``~`` and 8 hex digits of its hash before the suffix: still unique, still readable."""
    name = base + suffix
    if len(name.encode()) <= limit:
        return name
    tag = "~" + hashlib.sha1(base.encode()).hexdigest()[:8]
    room = limit - len((tag + suffix).encode())
    cut = base.encode()[:room].decode(errors="ignore")  # never half a character
    return cut + tag + suffix


def drawn_image_names(files: list[Path]) -> dict[Path, str]:
    """Output file name of each input image: ``<stem>.jpg``, or ``<stem>_<ext>.jpg`` when two inputs share a stem
    (``photo.jpg`` and ``photo.png`` -> ``photo_jpg.jpg`` and ``photo_png.jpg``; a number when that is not enough,
    as for ``photo.JPG`` and ``photo.jpg``), so no drawing replaces another; names longer than the file system
    allows are cut (:func:`fit_name`)."""
    stems: dict[str, int] = {}
    for f in files:
        stems[f.stem] = stems.get(f.stem, 0) + 1
    names: dict[Path, str] = {}
    used: set[str] = set()  # compared without case: some file systems (macOS, Windows) do not tell case apart
    for f in files:
        base = f.stem if stems[f.stem] == 1 else f"{f.stem}_{f.suffix.lstrip('.').lower()}"
        name, n = fit_name(base, ".jpg"), 1
        while name.lower() in used:  # photo.JPG and photo.jpg: photo_jpg.jpg and photo_jpg_2.jpg
            n += 1
            name = fit_name(f"{base}_{n}", ".jpg")
        used.add(name.lower())
        names[f] = name
    return names


class VideoInput:
    """A video file or webcam, opened, its first frame decoded (an undecodable file is refused before any work).

    Attributes:
        name: the file name (``webcam0`` for a webcam); ``stem``: its stem; ``fps``, ``size`` ``(w, h)``;
        total: frames the header announces, at most ``max_frames`` (``None`` for a webcam or no count).
    """

    def __init__(self, source: str | int, max_frames: int | None = None) -> None:
        import cv2

        self.source, self.max_frames = source, max_frames
        self.webcam = isinstance(source, int)
        self.name = f"webcam{source}" if self.webcam else Path(str(source)).name
        self.stem = f"webcam{source}" if self.webcam else Path(str(source)).stem
        self.cap = cv2.VideoCapture(source)
        if not self.cap.isOpened():
            raise DataError(f"cannot open {'webcam' if self.webcam else 'video'} {source} (missing, unreadable or "
                            "unsupported codec)")
        ok, self.first = self.cap.read()
        if not ok:
            self.cap.release()
            raise DataError(f"video {source} has no readable frame (unreadable or unsupported codec); nothing was "
                            "written")
        fps = self.cap.get(cv2.CAP_PROP_FPS) or 0.0
        self.fps = fps if 0 < fps < 1000 else 25.0
        self.size = (self.first.shape[1], self.first.shape[0])
        self.total = None if self.webcam else int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT)) or None
        if self.total and max_frames:
            self.total = min(self.total, max_frames)
        self.reader = FrameReader(self.cap, self.first, max_frames)

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        return iter(self.reader)

    def close(self) -> None:
        self.reader.close()
        self.cap.release()


class VideoOutput:
    """A drawn video written by a background thread, read back when closed: OpenCV's writer drops the frames it
    cannot write (a full disk, a file-size limit) with only a log line, so a short or unreadable file is refused."""

    def __init__(self, path: Path, fps: float, size: tuple[int, int], video_format: str = "mp4") -> None:
        import cv2

        fourcc = "mp4v" if video_format == "mp4" else "MJPG"
        self.path, self.frames = path, 0
        self.writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, size)
        if not self.writer.isOpened():
            raise DataError(f"OpenCV cannot write {fourcc} video {path.name}; try --video-format "
                            f"{'avi' if video_format == 'mp4' else 'mp4'}")
        self.thread = FrameWriter(self.writer)

    def write(self, frame: np.ndarray) -> None:
        self.thread.write(frame)
        self.frames += 1

    def close(self) -> None:
        """Finish writing (whatever happens, the writer is released)."""
        try:
            self.thread.close()
        finally:
            self.writer.release()

    def check(self) -> None:
        """Refuse a written video that is unreadable or holds fewer frames than were written."""
        import cv2

        cap: Any = cv2.VideoCapture(str(self.path))
        try:
            found = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap.isOpened() else -1
        finally:
            cap.release()
        if found < 0 or 0 < found < self.frames:
            raise DataError(f"could not write the drawn video {self.path.name} ({'unreadable' if found < 0 else found} "
                            f"of {self.frames} frames written: disk full, file-size limit or no permission); free "
                            "some space, choose another --out, or pass --no-draw. Nothing was written there")
