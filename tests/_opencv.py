"""What the installed OpenCV offers, for tests that run on OpenCV 4.8 to 5.x: OpenCV 5 removed the HOG people
detector, so tests of the HOG path skip there (with this reason) instead of failing."""

from __future__ import annotations

import cv2
import pytest

from fasterpose.detect.hog import hog_available

HAS_HOG = hog_available()
NO_HOG = f"OpenCV {cv2.__version__} has no HOG people detector (OpenCV 5 removed it)"
needs_hog = pytest.mark.skipif(not HAS_HOG, reason=NO_HOG)
