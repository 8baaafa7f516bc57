"""The images of a folder: every file OpenCV reads, and a word about everything else.

One scan for every command that reads a folder of images (``predict``, ``export --calib``, ``distill``'s unlabeled
images), so that none of them drops a readable photo because of its name, or anything else without saying so.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..errors import DataError

__all__ = ["IMAGE_SUFFIXES", "VIDEO_SUFFIXES", "list_images"]

logger = logging.getLogger(__name__)

# The still-image formats OpenCV's imread reads (cv2.imread's documentation; .exr needs OPENCV_IO_ENABLE_OPENEXR)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".dib", ".tif", ".tiff", ".webp", ".jp2", ".pbm", ".pgm",
                  ".ppm", ".pxm", ".pnm", ".pfm", ".sr", ".ras", ".hdr", ".pic", ".exr", ".avif")
# The video files the commands take by their suffix (predict, distill)
VIDEO_SUFFIXES = (".avi", ".mp4", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv")


def list_images(folder: Path, ignore: str = ".predict-") -> tuple[list[Path], list[str]]:
    """The images of a folder (not its subfolders), sorted by name, and the names of the entries skipped.

    An image is a regular file with an image suffix OpenCV reads (:data:`IMAGE_SUFFIXES`) or, whatever its suffix,
    one whose first bytes OpenCV recognises (``cv2.haveImageReader``). Everything else (videos, json, subfolders,
    FIFOs) is skipped, logged and returned by name, never dropped silently; entries starting with ``ignore`` (our own
    staging folders) are left out of the report.

    Raises:
        DataError: the folder holds no image.
    """
    import cv2

    files, skipped = [], []
    for p in sorted(Path(folder).iterdir()):
        if p.is_file() and (p.suffix.lower() in IMAGE_SUFFIXES or cv2.haveImageReader(str(p))):
            files.append(p)
        elif not (ignore and p.name.startswith(ignore)):
            skipped.append(p.name + ("/" if p.is_dir() else ""))
    if not files:
        raise DataError(f"folder {folder} contains no images OpenCV reads ({', '.join(IMAGE_SUFFIXES)})"
                        + (f"; it holds {', '.join(skipped[:5])}" if skipped else ""))
    if skipped:
        logger.warning("folder %s: %d entries are not images OpenCV reads and are skipped: %s", folder, len(skipped),
                       ", ".join(skipped[:5]) + (" ..." if len(skipped) > 5 else ""))
    return files, skipped
