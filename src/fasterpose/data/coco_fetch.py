"""COCO 2017 keypoints in one command (``fasterpose data coco ROOT``): download, check, unpack where the configs read.

The shipped COCO configs read ``data/coco/annotations/person_keypoints_{train,val}2017.json``, the images in
``data/coco/{train,val}2017/`` and the validation person detections in
``data/coco/person_detection_results/COCO_val2017_detections_AP_H_56_person.json``. :func:`fetch_coco` makes that
layout under ``root`` from the official archives (images.cocodataset.org):

* each archive is downloaded beside its folder (``root/val2017.zip``) through :func:`fasterpose.hub.
  resumable_download`, so an interrupted transfer resumes where it stopped (HTTP Range);
* its size and MD5 are checked against the published values below before it is opened;
* it is unpacked into a staging folder in ``root`` and the finished folders and files are renamed into place, so a
  half-unpacked archive is never mistaken for a whole one;
* the archives it downloaded are deleted once unpacked (``keep_archives`` keeps them); one the user put there by hand
  is checked the same way, used, and left where it is.

Files it did not write are never touched: what it writes is recorded in ``root/.fasterpose-coco.json``, and an
existing folder, annotation file or partial download that the record does not name stops the run before anything is
downloaded, with a message naming it.

Checksums. COCO publishes neither checksums nor sizes. The MD5s below are the ones that data loaders have used for
years: PaddleDetection (``ppdet/utils/download.py``, ``DATASETS['coco']``) lists all three, the same values as
MLCommons' training download scripts and R torchvision's ``coco_detection_dataset``; ParlAI
(``parlai/tasks/coco_caption/build_2017.py``) publishes SHA-256s of the annotation and val archives whose byte sizes
match these. The sizes are the Content-Length images.cocodataset.org serves, as recorded by those projects'
users (815,585,330, 252,907,541 and 19,336,861,798 bytes).

The person detections (the 56.4-AP detector's boxes used by SimpleBaseline and HRNet) have no direct download: the
HRNet authors share them in a OneDrive and a Google Drive folder. The command says where to get the file and where to
put it; without it, evaluate with ground-truth boxes (``--opt eval.boxes=gt``).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError
from ..hub import file_digest, partial_path, resumable_download
from ..io_utils import atomic_write_json, check_writable_folder, exclusive_folder

__all__ = ["ARCHIVES", "BASE_URL_ENV", "COCO_URL", "DETECTIONS", "DETECTIONS_SOURCE", "Archive", "fetch_coco"]

logger = logging.getLogger(__name__)

COCO_URL = "http://images.cocodataset.org"
BASE_URL_ENV = "FASTERPOSE_COCO_URL"  # a mirror with the same paths (zips/..., annotations/...); the tests' server
RECORD = ".fasterpose-coco.json"
DETECTIONS = "person_detection_results/COCO_val2017_detections_AP_H_56_person.json"
DETECTIONS_SOURCE = ("the HRNet authors' shared folder (OneDrive or Google Drive) linked under 'Data preparation' in "
                     "https://github.com/leoxiaobin/deep-high-resolution-net.pytorch#data-preparation, folder "
                     "person_detection_results")


@dataclass(frozen=True)
class Archive:
    """One published archive and what of it the configs read.

    Attributes:
        url_path: path under the base URL.
        size: published size in bytes.
        md5: published MD5 (see the module docstring for where it comes from).
        outputs: what is taken from it, as paths under ``root``: a folder (``"val2017"``) takes every member under it,
            a file (``"annotations/person_keypoints_val2017.json"``) only that member.
    """

    url_path: str
    size: int
    md5: str
    outputs: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.url_path.rsplit("/", 1)[-1]


ARCHIVES: dict[str, Archive] = {
    "annotations": Archive(
        "annotations/annotations_trainval2017.zip", 252_907_541, "f4bbac642086de4f52a3fdda2de5fa2c",
        ("annotations/person_keypoints_train2017.json", "annotations/person_keypoints_val2017.json")),
    "val": Archive("zips/val2017.zip", 815_585_330, "442b8da7639aecaf257c1dceb8ba8c80", ("val2017",)),
    "train": Archive("zips/train2017.zip", 19_336_861_798, "cced6f7f71b7629ddf16f17bbcfab6b2", ("train2017",)),
}


def _base_url(base_url: str | None) -> str:
    return (base_url or os.environ.get(BASE_URL_ENV) or COCO_URL).rstrip("/")


class _Record:
    """``root/.fasterpose-coco.json``: per archive, what this command wrote (``"downloading"``: its ``.part``;
    ``"downloaded"``: the archive; ``"unpacking"``/``"unpacked"``: its outputs and staging folder)."""

    def __init__(self, root: Path) -> None:
        self.path = root / RECORD
        self.state: dict[str, list[str]] = {}
        if self.path.is_file():
            try:
                loaded = json.loads(self.path.read_text())
                self.state = {k: list(v) for k, v in loaded.get("archives", {}).items()}
            except (OSError, ValueError, AttributeError, TypeError):
                raise DataError(f"{self.path} is not the record fasterpose writes (unreadable JSON); it lists what "
                                "`fasterpose data coco` wrote in this folder. Move it away, and the files it names "
                                "if you do not want them, then run again") from None

    def has(self, archive: Archive, mark: str) -> bool:
        return mark in self.state.get(archive.name, [])

    def set(self, archive: Archive, mark: str, on: bool = True) -> None:
        marks = [m for m in self.state.get(archive.name, []) if m != mark] + ([mark] if on else [])
        self.state[archive.name] = marks
        atomic_write_json(self.path, {"written_by": "fasterpose data coco", "archives": self.state}, indent=1)


def _staging(root: Path, archive: Archive) -> Path:
    return root / f".fasterpose-unpacking-{archive.name}"


def _unpacked(root: Path, archive: Archive, record: _Record) -> bool:
    return record.has(archive, "unpacked") and all((root / o).exists() for o in archive.outputs)


def _check_nothing_foreign(root: Path, archives: list[Archive], record: _Record) -> None:
    """Stop before any download if an output, a partial download or a staging folder exists that this command did
    not write (the record does not name it)."""
    foreign = []
    for a in archives:
        if _unpacked(root, a, record):
            continue
        if not (record.has(a, "unpacking") or record.has(a, "unpacked")):
            foreign += [root / o for o in a.outputs if (root / o).exists() or (root / o).is_symlink()]
            if _staging(root, a).exists():
                foreign.append(_staging(root, a))
        if partial_path(root / a.name).exists() and not record.has(a, "downloading"):
            foreign.append(partial_path(root / a.name))
    if foreign:
        listed = ", ".join(str(p) for p in foreign)
        raise DataError(f"not written by `fasterpose data coco`, and in the way: {listed}. It never replaces files it "
                        "did not write: move them away or choose another ROOT, then run again")


def _check_space(root: Path, archives: list[Archive], record: _Record) -> None:
    """Stop early if the disk cannot hold what is left to download plus what it unpacks to (about the same)."""
    need = 0
    for a in archives:
        if _unpacked(root, a, record):
            continue
        have = (root / a.name).stat().st_size if (root / a.name).is_file() else 0
        part = partial_path(root / a.name)
        have += part.stat().st_size if part.is_file() else 0
        need += max(a.size - have, 0) + (a.size if "." not in a.outputs[0] else 0)
    free = shutil.disk_usage(root).free
    if need > free:
        raise DataError(f"{root} has {free / 1e9:.1f} GB free; COCO needs about {need / 1e9:.1f} GB more there "
                        "(archives and what they unpack to). Free some space or choose another ROOT "
                        "(--val-only needs about 2 GB)")


def _hand_hint(root: Path, base: str, archives: list[Archive]) -> str:
    files = "; ".join(f"{base}/{a.url_path} ({a.size:,} bytes, MD5 {a.md5})" for a in archives)
    return (f"to fetch them by hand, download {files} on a machine with network access, put them in {root} under "
            "those file names, and run the command again: they are checked and unpacked")


def _member_name(info: zipfile.ZipInfo, zip_path: Path) -> str:
    name = info.filename
    parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\")) or ".." in parts or ":" in parts[0]:
        raise DataError(f"{zip_path}: refusing the archive, its member {name!r} has an absolute path or climbs out "
                        "of the folder; it is not the published COCO archive")
    return "/".join(parts)


def _wanted(name: str, outputs: tuple[str, ...]) -> bool:
    return any(name == o or name.startswith(o.rstrip("/") + "/") for o in outputs)


def _extract(zip_path: Path, archive: Archive, staging: Path) -> None:
    """Extract the members under ``archive.outputs`` into ``staging``; refuse unsafe names and damaged members."""
    found = set()
    try:
        with zipfile.ZipFile(zip_path) as zf:
            for info in zf.infolist():
                name = _member_name(info, zip_path)
                if not _wanted(name, archive.outputs):
                    continue
                found.update(o for o in archive.outputs if _wanted(name, (o,)))
                target = staging / name
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as e:
        raise DataError(f"{zip_path} is not a valid zip file or is damaged ({e}); delete it and run again") from None
    missing = [o for o in archive.outputs if o not in found]
    if missing:
        raise DataError(f"{zip_path} holds no {', '.join(missing)}; it is not the published {archive.name}")


def _unpack(root: Path, zip_path: Path, archive: Archive, record: _Record) -> None:
    """Extract into a staging folder, then rename each output into place (replacing only this command's own)."""
    staging = _staging(root, archive)
    record.set(archive, "unpacking")
    shutil.rmtree(staging, ignore_errors=True)  # an interrupted run's: named in the record as ours
    logger.info("unpacking %s into %s", zip_path, root)
    _extract(zip_path, archive, staging)
    for output in archive.outputs:
        target = root / output
        if target.is_dir() and not target.is_symlink():  # moved here by an interrupted run of this command
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging / output, target)
    shutil.rmtree(staging, ignore_errors=True)
    record.set(archive, "unpacked")
    record.set(archive, "unpacking", on=False)


def _archive_file(root: Path, base: str, archive: Archive, record: _Record, hint: str, progress: bool) -> Path:
    """The archive in ``root``: checked if it is there (the user's or ours), else downloaded (resuming) and checked."""
    zip_path = root / archive.name
    url = f"{base}/{archive.url_path}"
    if zip_path.is_file():
        size = zip_path.stat().st_size
        problem = f"is {size:,} bytes, the published file {archive.size:,}" if size != archive.size else None
        if problem is None:
            logger.info("checking the MD5 of %s", zip_path)
            md5 = file_digest(zip_path, "md5")
            problem = f"has MD5 {md5}, the published file {archive.md5}" if md5 != archive.md5 else None
        if problem:
            raise DataError(f"{zip_path} {problem}: it is not the published {url}. It was left as it is; delete or "
                            "move it and run again to download it")
        return zip_path
    record.set(archive, "downloading")
    resumable_download(url, zip_path, size=archive.size, checksum=("md5", archive.md5), hint=hint, progress=progress)
    record.set(archive, "downloaded")
    record.set(archive, "downloading", on=False)
    return zip_path


def fetch_coco(root: str | os.PathLike, *, val_only: bool = False, base_url: str | None = None,
               keep_archives: bool = False, progress: bool = True,
               say: Callable[[str], None] = print) -> dict:
    """Download, check and unpack COCO 2017 keypoints under ``root`` in the layout the shipped configs read.

    Args:
        root: the dataset folder (the configs read ``data/coco``); created if needed.
        val_only: only the annotations and the validation images (about 1 GB instead of 20).
        base_url: where the archives are (default: ``$FASTERPOSE_COCO_URL``, else images.cocodataset.org).
        keep_archives: keep the zips this command downloaded after unpacking them.
        progress: show download progress on a terminal.
        say: where the summary lines go.

    Returns:
        ``{"root", "done": [archive names], "detections": path or None}``.

    Raises:
        DataError: a file it did not write is in the way, an archive in ``root`` is not the published one, the disk
            is too small, or an archive is damaged.
        DownloadError: the network or the server failed (the message names every archive's URL and ``root``);
            what arrived is kept and the next run resumes.
    """
    root = Path(root)
    check_writable_folder(root, f"the COCO folder {root}")
    root.mkdir(parents=True, exist_ok=True)
    base = _base_url(base_url)
    archives = [ARCHIVES["annotations"], ARCHIVES["val"]] + ([] if val_only else [ARCHIVES["train"]])
    with exclusive_folder(root, "data coco"):
        record = _Record(root)
        _check_nothing_foreign(root, archives, record)
        _check_space(root, archives, record)
        todo = [a for a in archives if not _unpacked(root, a, record)]
        hint = _hand_hint(root, base, todo)
        for archive in archives:
            if archive not in todo:
                say(f"{archive.name}: already unpacked in {root}")
                continue
            zip_path = _archive_file(root, base, archive, record, hint, progress)
            _unpack(root, zip_path, archive, record)
            if record.has(archive, "downloaded") and not keep_archives:
                zip_path.unlink()
                record.set(archive, "downloaded", on=False)
            unpacked = ", ".join(str(root / o) for o in archive.outputs)
            say(f"{archive.name}: checked (size, MD5) and unpacked: {unpacked}")
    detections = root / DETECTIONS
    if detections.is_file():
        say(f"person detections: {detections}")
    else:
        say(f"person detections: not downloaded (no direct download exists). Get "
            f"{Path(DETECTIONS).name} from {DETECTIONS_SOURCE}, and put it at {detections}. Without it, "
            "evaluate with ground-truth boxes: --opt eval.boxes=gt")
    return {"root": str(root), "done": [a.name for a in archives],
            "detections": str(detections) if detections.is_file() else None}
