"""Video frames read ahead in a background thread, so that decoding the next frame overlaps the work on this one
(OpenCV releases the GIL while it reads and decodes)."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

_END = object()


class FrameReader:
    """Iterate ``(index, frame)`` over an opened ``cv2.VideoCapture``, starting with an already-read ``first`` frame.

    Args:
        cap: the capture (the caller releases it, after :meth:`close`).
        first: the first frame, already read (to check that the video decodes at all).
        max_frames: stop after this many frames (``None``: to the end).
        prefetch: frames decoded ahead (0: read in the calling thread).

    Attributes:
        wait_ms: total milliseconds the consumer waited for frames (the reading it could not hide).
    """

    def __init__(self, cap: Any, first: np.ndarray, max_frames: int | None = None, prefetch: int = 2) -> None:
        self.cap, self.first, self.max_frames, self.prefetch = cap, first, max_frames, int(prefetch)
        self.wait_ms = 0.0
        self._stop = threading.Event()
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max(1, self.prefetch))
        self._thread: threading.Thread | None = None

    def _read(self) -> Any:
        ok, frame = self.cap.read()
        return frame if ok else _END

    def _run(self) -> None:
        count = 1
        while not self._stop.is_set():
            item = _END if self.max_frames is not None and count >= self.max_frames else self._read()
            count += 1
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.05)
                    break
                except queue.Full:
                    continue
            if item is _END:
                return

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        yield 0, self.first
        if self.max_frames is not None and self.max_frames <= 1:
            return
        if self.prefetch > 0:
            self._thread = threading.Thread(target=self._run, name="fasterpose-frames", daemon=True)
            self._thread.start()
        index = 1
        while self.max_frames is None or index < self.max_frames:
            t0 = time.perf_counter()
            item = self._queue.get() if self._thread is not None else self._read()
            self.wait_ms += 1e3 * (time.perf_counter() - t0)
            if item is _END:
                return
            yield index, item
            index += 1

    def close(self) -> None:
        """Stop the reading thread and wait for it (before the capture is released)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> FrameReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FrameWriter:
    """Write frames to an opened ``cv2.VideoWriter`` from a background thread (encoding overlaps the next frame's
    work; OpenCV releases the GIL while it encodes).

    Attributes:
        wait_ms: total milliseconds the producer waited for room in the queue (the writing it could not hide).
    """

    def __init__(self, writer: Any, queue_size: int = 4) -> None:
        self.writer = writer
        self.wait_ms = 0.0
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max(1, int(queue_size)))
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="fasterpose-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            frame = self._queue.get()
            if frame is _END:
                return
            if self._error is None:
                try:
                    self.writer.write(frame)
                except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
                    self._error = e

    def write(self, frame: np.ndarray) -> None:
        if self._error is not None:
            raise self._error
        t0 = time.perf_counter()
        self._queue.put(frame)
        self.wait_ms += 1e3 * (time.perf_counter() - t0)

    def close(self) -> None:
        """Write what is queued and stop the thread (the caller releases the writer afterwards)."""
        if self._thread is not None:
            self._queue.put(_END)
            self._thread.join()
            self._thread = None  # type: ignore[assignment]
        if self._error is not None:
            raise self._error
