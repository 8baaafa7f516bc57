"""Published person detectors that :class:`~fasterpose.detect.OnnxDetector` runs: rtmlib's YOLOX models trained on
Human-Art (people in photos and art; class 0 = person), exported by MMDeploy with NMS in the graph (``dets``,
``labels``). Each URL is a zip holding ``end2end.onnx``; the URLs are those rtmlib's ``Body`` solutions use.

Not wired to a download yet: the zip files' sha256 could not be computed here (no network), and the eight hex
digits in each name are OpenMMLab's prefix of the sha256 of the training checkpoint (``.pth``), not of the zip.
Whoever wires these to the weights cache (``fasterpose/hub.py``) pins the zip's sha256 on a verified download.
"""

from __future__ import annotations

from dataclasses import dataclass

_SDK = "https://download.openmmlab.com/mmpose/v1/projects/rtmposev1/onnx_sdk/"


@dataclass(frozen=True)
class DetectorFile:
    """A published detector: where it is and how to run it."""

    url: str
    layout: str
    input_size: tuple[int, int]  # (height, width)
    sha256: str | None = None  # of the downloaded file; unknown until verified


DETECTORS: dict[str, DetectorFile] = {
    "yolox_nano_humanart": DetectorFile(_SDK + "yolox_nano_8xb8-300e_humanart-40f6f0d0.zip", "yolox", (416, 416)),
    "yolox_tiny_humanart": DetectorFile(_SDK + "yolox_tiny_8xb8-300e_humanart-6f3252f9.zip", "yolox", (416, 416)),
    "yolox_m_humanart": DetectorFile(_SDK + "yolox_m_8xb8-300e_humanart-c2c7a14a.zip", "yolox", (640, 640)),
    "yolox_x_humanart": DetectorFile(_SDK + "yolox_x_8xb8-300e_humanart-a39d44ed.zip", "yolox", (640, 640)),
}
