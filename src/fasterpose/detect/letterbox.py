"""Letterbox: an image resized into a detector's fixed input with its aspect ratio kept, and the inverse for boxes.

Two conventions are in use: the image in the top-left corner with the padding right and below (YOLOX and RTMDet as
rtmlib and MMDeploy run them; resized size ``int(side * ratio)``), and the image centred with the padding split
between both sides (Ultralytics; resized size ``round(side * ratio)``, top/left padding ``round(pad / 2 - 0.1)``).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

PAD_VALUE = 114


@dataclass(frozen=True)
class Letterbox:
    """Where the image went: ``input = image * ratio + (pad_x, pad_y)``."""

    ratio: float
    pad_x: float
    pad_y: float

    def to_image(self, boxes_xyxy: np.ndarray) -> np.ndarray:
        """``(M, 4)`` corner boxes in detector-input pixels -> image pixels (not clipped)."""
        b = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4).copy()
        b[:, [0, 2]] = (b[:, [0, 2]] - self.pad_x) / self.ratio
        b[:, [1, 3]] = (b[:, [1, 3]] - self.pad_y) / self.ratio
        return b


def letterbox(image: np.ndarray, size: tuple[int, int], centered: bool) -> tuple[np.ndarray, Letterbox]:
    """Resize ``image`` into ``size`` = ``(height, width)`` keeping its aspect ratio; pad with 114.

    Args:
        image: ``(H, W, 3)`` uint8.
        size: detector input ``(height, width)``.
        centered: Ultralytics' centred padding (``True``) or YOLOX/RTMDet's top-left placement (``False``).

    Returns:
        The ``(height, width, 3)`` uint8 padded image and the :class:`Letterbox` that maps boxes back.
    """
    h, w = image.shape[:2]
    th, tw = int(size[0]), int(size[1])
    ratio = min(th / h, tw / w)
    if centered:
        nw, nh = int(round(w * ratio)), int(round(h * ratio))
        left, top = int(round((tw - nw) / 2 - 0.1)), int(round((th - nh) / 2 - 0.1))
    else:
        nw, nh = int(w * ratio), int(h * ratio)
        left = top = 0
    out = np.full((th, tw, 3), PAD_VALUE, dtype=np.uint8)
    resized = image if (nw, nh) == (w, h) else cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    out[top:top + nh, left:left + nw] = resized
    return out, Letterbox(ratio, float(left), float(top))
