"""Downloading published files (ImageNet backbones, COCO checkpoints, detectors) into a hash-checked cache.

The cache is torch hub's: ``$TORCH_HOME/hub/checkpoints`` (``TORCH_HOME`` defaults to ``$XDG_CACHE_HOME/torch`` or
``~/.cache/torch``), so a file that torchvision or MMPose already downloaded is reused, and one downloaded here is
reused by them. A download goes to a temporary file in the cache folder and is renamed to its final name only after
its length and its SHA-256 prefix have been checked: an interrupted or corrupt transfer leaves nothing behind, and a
file in the cache is always a whole, checked one. A cached file whose hash is wrong is reported, never used.

Datasets (``fasterpose data coco``) are too large to start again from zero: :func:`resumable_download` keeps what
arrived in ``<file>.part`` and asks for the rest with an HTTP Range request on the next call.

Only the standard library is used (``urllib``), and torch is not imported: the onnxruntime-only paths can use it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from http.client import HTTPException
from pathlib import Path

from .errors import CheckpointError
from .io_utils import atomic_path, check_writable_folder

__all__ = ["DownloadError", "cache_dir", "cache_path", "cached_download", "file_digest", "hash_prefix_from_name",
           "partial_path", "resumable_download", "sha256_of"]

logger = logging.getLogger(__name__)

# torch.hub's convention: "resnet50-0676ba61.pth" carries the first hex digits of the file's SHA-256.
_HASH_IN_NAME = re.compile(r"-([a-f0-9]*)\.")
_CHUNK = 1 << 20


class DownloadError(CheckpointError):
    """A published file could not be downloaded, or what arrived (or sits in the cache) is not the published file."""


def cache_dir() -> Path:
    """The folder downloaded weights are kept in: torch hub's ``$TORCH_HOME/hub/checkpoints``.

    ``TORCH_HOME`` defaults to ``$XDG_CACHE_HOME/torch``, and ``XDG_CACHE_HOME`` to ``~/.cache`` (torch.hub's rule).
    The folder is not created here.
    """
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    torch_home = os.environ.get("TORCH_HOME") or os.path.join(xdg, "torch")
    return Path(os.path.expanduser(torch_home)) / "hub" / "checkpoints"


def cache_path(url: str, file_name: str | None = None) -> Path:
    """Where :func:`cached_download` keeps ``url``'s file: ``file_name``, else the last part of the URL's path, in
    :func:`cache_dir` (whether it is there yet or not).

    Raises:
        DownloadError: no ``file_name`` and the URL's path does not end in one.
    """
    name = file_name or os.path.basename(urllib.parse.urlparse(url).path)
    if not name or name in (".", ".."):
        raise DownloadError(f"cannot tell the file name of {url}; pass file_name")
    return cache_dir() / name


def hash_prefix_from_name(file_name: str) -> str | None:
    """The SHA-256 prefix a file name carries in torch hub's ``name-<hex>.ext`` convention, or ``None``.

    ``"resnet50-0676ba61.pth"`` -> ``"0676ba61"``; ``"shufflenetv2_x1-5666bf0f80.pth"`` -> ``"5666bf0f80"``.
    """
    match = _HASH_IN_NAME.search(file_name)
    return match.group(1) if match and match.group(1) else None


def sha256_of(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    return file_digest(path, "sha256")


def _offline_hint(url: str, dest: Path) -> str:
    return (f"download {url} on a machine with network access and put it in {dest.parent} as {dest.name} "
            f"(set TORCH_HOME to use another cache folder: files go in $TORCH_HOME/hub/checkpoints)")


def _check_cached(path: Path, url: str, sha256_prefix: str | None) -> Path:
    if sha256_prefix:
        actual = sha256_of(path)
        if not actual.startswith(sha256_prefix):
            raise DownloadError(f"the cached file {path} is not the published {url}: its SHA-256 starts with "
                                f"{actual[:len(sha256_prefix)]}, the published file's with {sha256_prefix}. "
                                f"Delete {path} and run again to download it afresh")
    return path


def _progress_printer(total: int | None, name: str, enabled: bool):  # noqa: ANN202 - small local callback
    if not enabled:
        return lambda done: None
    last = [-1]

    def show(done: int) -> None:
        percent = int(100 * done / total) if total else -1
        if percent == last[0] and done < (total or done + 1):
            return
        last[0] = percent
        what = f"{percent:3d}% of {total / 1e6:.1f} MB" if total else f"{done / 1e6:.1f} MB"
        sys.stderr.write(f"\rdownloading {name}: {what}")
        if total and done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return show


class _BrokeOff(Exception):
    """The connection broke off after ``done`` bytes were written (the caller words the message)."""

    def __init__(self, done: int, reason: object) -> None:
        super().__init__(f"{done} bytes: {reason}")
        self.done, self.reason = done, reason


def _open(url: str, timeout: float, hint: str, start: int = 0):  # noqa: ANN202 - an http.client response
    """Open ``url`` (from byte ``start`` on, with an HTTP Range request, when ``start > 0``).

    A refused range (HTTP 416) is returned as the error response, not raised: the caller reads its Content-Range to
    tell whether the partial file is already whole.
    """
    headers = {"User-Agent": "fasterpose"}
    if start:
        headers["Range"] = f"bytes={start}-"
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as e:
        if start and e.code == 416:
            return e
        raise DownloadError(f"downloading {url} failed: the server answered HTTP {e.code} {e.reason}; {hint}") from None
    except (urllib.error.URLError, OSError, HTTPException, ValueError) as e:
        reason = getattr(e, "reason", None) or e
        raise DownloadError(f"could not download {url} ({reason}): no network, or the server cannot be reached; "
                            f"{hint}") from None


def _copy(response, f, show, digest=None, done: int = 0) -> int:  # noqa: ANN001 - file-likes and a callback
    """Copy the response's body into ``f`` in 1 MiB chunks; return the byte count (``done`` plus what arrived).

    Raises:
        _BrokeOff: the connection broke off; what arrived before is written. (A failed write, such as a full disk,
            is raised as the ``OSError`` it is, for the command line to report as one.)
    """
    while True:
        try:
            chunk = response.read(_CHUNK)
        except (OSError, HTTPException) as e:
            raise _BrokeOff(done, e) from None
        if not chunk:
            return done
        f.write(chunk)
        if digest is not None:
            digest.update(chunk)
        done += len(chunk)
        show(done)


def cached_download(url: str, *, file_name: str | None = None, sha256_prefix: str | None = None,
                    hash_from_name: bool = True, progress: bool = True, timeout: float = 60.0) -> Path:
    """Return the path of ``url``'s file in :func:`cache_dir`, downloading it first if it is not there.

    Args:
        url: ``http(s)://`` (or ``file://``) address of the published file.
        file_name: name in the cache; defaults to the last part of the URL's path.
        sha256_prefix: leading hex digits of the file's SHA-256; defaults to the ``-<hex>.`` part of the file name
            (torch hub's convention). With neither, the file is not hash-checked (only its length, when the server
            sends one).
        hash_from_name: read a missing ``sha256_prefix`` from the file name. ``False`` for files whose names carry
            the hex digits of something else (OpenMMLab's deploy zips carry their training checkpoint's).
        progress: show a progress line on stderr (only when stderr is a terminal).
        timeout: seconds without data before the transfer is given up.

    Returns:
        The cached file, complete and hash-checked.

    Raises:
        DownloadError: no network or the server refused (the message names the URL, the file name and the folder to
            put the file in by hand), the transfer ended early, the hash does not match (nothing is kept), or a
            cached file has the wrong hash.
        DataError: the cache folder cannot be written.
    """
    dest = cache_path(url, file_name)
    prefix = (sha256_prefix or (hash_prefix_from_name(dest.name) if hash_from_name else None) or "").lower() or None
    if dest.is_file():
        return _check_cached(dest, url, prefix)
    check_writable_folder(dest.parent, f"the weights cache {dest.parent}")
    logger.info("downloading %s to %s", url, dest)
    response = _open(url, timeout, _offline_hint(url, dest))
    with response:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        show = _progress_printer(total, dest.name, progress and sys.stderr.isatty())
        digest = hashlib.sha256()
        with atomic_path(dest) as tmp:  # removed on any error below: nothing half-downloaded stays
            with open(tmp, "wb") as f:
                try:
                    done = _copy(response, f, show, digest)
                except _BrokeOff as e:
                    raise DownloadError(f"the download of {url} broke off after {e.done} bytes ({e.reason}); run "
                                        f"again, or {_offline_hint(url, dest)}") from None
                f.flush()
                os.fsync(f.fileno())
            if total is not None and done != total:
                raise DownloadError(f"the download of {url} ended after {done} of {total} bytes; nothing was kept. "
                                    f"Run again, or {_offline_hint(url, dest)}")
            actual = digest.hexdigest()
            if prefix and not actual.startswith(prefix):
                raise DownloadError(f"the file downloaded from {url} is not the published one: its SHA-256 starts "
                                    f"with {actual[:len(prefix)]}, expected {prefix}; nothing was kept")
    logger.info("downloaded %s (%.1f MB)", dest, done / 1e6)
    return dest


def file_digest(path: str | os.PathLike, algorithm: str) -> str:
    """Hex digest (``"md5"``, ``"sha256"``, ...) of a file, read in 1 MiB chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def partial_path(dest: str | os.PathLike) -> Path:
    """Where :func:`resumable_download` keeps the bytes of ``dest`` received so far: ``<dest>.part`` beside it."""
    dest = Path(dest)
    return dest.with_name(dest.name + ".part")


def _content_range_total(response) -> int | None:  # noqa: ANN001 - an http.client response or HTTPError
    """The total length in a ``Content-Range: bytes a-b/TOTAL`` (or ``bytes */TOTAL``) header, else ``None``."""
    value = response.headers.get("Content-Range") or ""
    total = value.rpartition("/")[2].strip()
    return int(total) if total.isdigit() else None


def _content_range_start(response) -> int | None:  # noqa: ANN001
    match = re.match(r"\s*bytes\s+(\d+)-", response.headers.get("Content-Range") or "")
    return int(match.group(1)) if match else None


def resumable_download(url: str, dest: str | os.PathLike, *, size: int | None = None,
                       checksum: tuple[str, str] | None = None, hint: str = "", progress: bool = True,
                       timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest``, resuming an interrupted transfer, and check its size and checksum.

    For the large files (datasets) whose interrupted download should not start again from zero: the bytes received
    so far are kept in ``<dest>.part`` (:func:`partial_path`), and the next call asks the server for the rest with
    an HTTP ``Range`` request. A server that ignores the range (HTTP 200) is read from the start again. ``dest``
    appears, by an atomic rename, only once the whole file is there and checked; a file that fails the checks is
    deleted, so the next call downloads it afresh.

    Args:
        url: ``http(s)://`` address of the file.
        dest: where the file goes (the caller has made sure nothing of the user's is at ``dest`` or its ``.part``).
        size: the published size in bytes; ``None`` to trust the server's Content-Length.
        checksum: ``(algorithm, hex digest)``, e.g. ``("md5", "442b...")``; ``None`` for none.
        hint: what to do without network (appended to the messages).
        progress: show a progress line on stderr (only when stderr is a terminal).
        timeout: seconds without data before the transfer is given up.

    Returns:
        ``dest``.

    Raises:
        DownloadError: no network or the server refused (naming the URL), the transfer broke off (what arrived is
            kept in the ``.part`` file for the next call), or the file is not the published one (nothing is kept).
    """
    dest = Path(dest)
    part = partial_path(dest)
    start = part.stat().st_size if part.is_file() else 0
    if size is not None and start > size:  # longer than the published file: not a prefix of it
        part.unlink()
        start = 0
    total = size
    if size is None or start < size:
        total = _fetch_rest(url, part, start, size, hint, progress, timeout)
    _check_whole(url, part, total, checksum)
    os.replace(part, dest)
    logger.info("downloaded %s (%.1f MB)", dest, dest.stat().st_size / 1e6)
    return dest


def _fetch_rest(url: str, part: Path, start: int, size: int | None, hint: str, progress: bool,
                timeout: float) -> int | None:
    """Append the bytes of ``url`` from ``start`` on to ``part``; return the file's total length as the server
    announced it (``None`` when it did not)."""
    logger.info("downloading %s to %s%s", url, part, f" from byte {start}" if start else "")
    response = _open(url, timeout, hint, start)
    with response:
        status = getattr(response, "status", None) or response.getcode()
        if status == 416:  # nothing left to send: the partial file is whole if its length is the total
            total = _content_range_total(response) or size
            if total is not None and start == total:
                return total
            raise DownloadError(f"the server of {url} refused to resume at byte {start}; delete {part} and run again")
        if status == 206 and _content_range_start(response) == start:
            total = _content_range_total(response) or size
            mode = "ab"
        else:  # the range was ignored: the whole file comes again
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else size
            start, mode = 0, "wb"
        if size is not None and total is not None and total != size:
            raise DownloadError(f"{url} is {total} bytes on the server, the published file {size}: not the "
                                f"published file; nothing more was downloaded. {hint}")
        show = _progress_printer(total, part.name, progress and sys.stderr.isatty())
        with open(part, mode) as f:
            try:
                done = _copy(response, f, show, done=start)
            except _BrokeOff as e:
                raise DownloadError(f"the download of {url} broke off after {e.done} bytes ({e.reason}); they are "
                                    f"kept in {part}: run again to resume. {hint}") from None
            f.flush()
            os.fsync(f.fileno())
    if total is not None and done < total:
        raise DownloadError(f"the download of {url} ended after {done} of {total} bytes; they are kept in {part}: "
                            f"run again to resume. {hint}")
    return total


def _check_whole(url: str, part: Path, total: int | None, checksum: tuple[str, str] | None) -> None:
    """Check the finished ``.part`` file's length and checksum; delete it when either is wrong."""
    length = part.stat().st_size
    problem = None
    if total is not None and length != total:
        problem = f"it is {length} bytes, the published file {total}"
    elif checksum is not None:
        algorithm, expected = checksum
        actual = file_digest(part, algorithm)
        if actual != expected.lower():
            problem = f"its {algorithm.upper()} is {actual}, the published file's {expected.lower()}"
    if problem:
        part.unlink()
        raise DownloadError(f"the file downloaded from {url} is not the published one: {problem}; it was deleted. "
                            "Run again to download it afresh")
