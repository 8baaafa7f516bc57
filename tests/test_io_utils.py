"""The file readers and writers every command uses (``fasterpose.io_utils``): one JSON reader with clear errors;
writers atomic, never replacing anything but a regular file, cleaning up after killed writers, and holding an
output folder for one run at a time."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fasterpose.errors import DataError
from fasterpose.io_utils import (
    atomic_path,
    atomic_write_json,
    exclusive_folder,
    read_json,
    remove_stale_folders,
    temp_folder,
    writable_target,
)


def test_atomic_writer_writes_through_symlinks(tmp_path: Path) -> None:
    real = tmp_path / "real.json"
    real.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(real)
    atomic_write_json(link, {"a": 1})
    assert link.is_symlink() and real.read_text() == '{"a": 1}'


@pytest.mark.parametrize("target", ["/dev/null", "DIR"])
def test_atomic_writer_refuses_devices_and_directories(tmp_path: Path, target: str) -> None:
    path = tmp_path if target == "DIR" else Path(target)
    if not path.exists():
        pytest.skip(f"{path} does not exist here")
    before = path.stat()
    with pytest.raises(DataError, match="not a regular file|is a directory"):
        atomic_write_json(path, {"a": 1})
    after = path.stat()
    assert (before.st_mode, before.st_ino) == (after.st_mode, after.st_ino)
    assert writable_target(tmp_path / "new.json") == tmp_path / "new.json"


def test_atomic_writer_removes_leftovers_of_killed_writers(tmp_path: Path) -> None:
    """A temporary left by a dead process (its pid is in the name) goes on the next write; a live one stays."""
    dead = 2 ** 22 + 12345  # above the default pid_max of 4194304: no such process
    stale = tmp_path / f".last.tmp.{dead}.abcd.pt"
    stale.write_bytes(b"x" * 100)
    live = tmp_path / f".last.tmp.{os.getpid()}.efgh.pt"  # ours: in use
    live.write_bytes(b"y")
    with atomic_path(tmp_path / "last.pt") as tmp:
        tmp.write_bytes(b"new")
        assert str(os.getpid()) in tmp.name  # the writer's pid is in its temporary name
    assert not stale.exists() and live.exists() and (tmp_path / "last.pt").read_bytes() == b"new"


def test_atomic_writer_leaves_nothing_on_failure(tmp_path: Path) -> None:
    with pytest.raises(OSError) as info, atomic_path(tmp_path / "x.json") as tmp:
        tmp.write_text("half")
        raise OSError(28, "No space left on device")
    assert info.value.filename == str(tmp_path / "x.json")  # the message will name the file it was for
    assert list(tmp_path.iterdir()) == []


def test_exclusive_folder_refuses_a_second_holder_and_adds_nothing(tmp_path: Path) -> None:
    pytest.importorskip("fcntl")
    with exclusive_folder(tmp_path, "predict"):
        with pytest.raises(DataError, match="being written by another fasterpose run.*give this train another"), \
                exclusive_folder(tmp_path, "train"):
            pass
        assert list(tmp_path.iterdir()) == []  # the hold is on the folder itself: nothing is added to it
    with exclusive_folder(tmp_path, "train"):  # released at the end
        pass


@pytest.mark.parametrize("case, message", [
    ("directory", r"x\.json: is a directory, not the annotation file; pass a COCO json"),
    ("missing", r"x\.json: annotation file does not exist; pass a COCO json"),
    ("latin1", r"x\.json: not a UTF-8 text file; the annotation file must be a JSON document; pass a COCO json"),
    ("invalid", r"x\.json: not valid JSON \(Expecting ',' delimiter at line 2, column 9\); the annotation file"),
    ("deep", r"x\.json: JSON nested too deeply to be the annotation file; pass a COCO json"),
    ("device", r"/dev/zero: is not a regular file \(a FIFO, device or socket\), not the annotation file; reading it "
               r"could wait for ever; pass a COCO"),
    ("unreadable", r"mem: the annotation file could not be read \(Input/output error\); pass a COCO json"),
])
def test_read_json_failures_name_the_file_kind_and_remedy(tmp_path: Path, case: str, message: str) -> None:
    path = tmp_path / "x.json"
    if case == "directory":
        path.mkdir()
    elif case == "latin1":
        path.write_bytes('{"name": "Jos\u00e9"}'.encode("latin-1"))
    elif case == "invalid":
        path.write_text('{"a": 1,\n "b": 2 "c": 3}')
    elif case == "deep":
        path.write_text("[" * (sys.getrecursionlimit() * 100) + "]" * (sys.getrecursionlimit() * 100))
    elif case == "device":
        path = Path("/dev/zero")  # endless: must be refused, not read
    elif case == "unreadable":
        path = Path("/proc/self/mem")  # exists, and reading from offset 0 fails (EIO), even for root
        if not path.exists():
            pytest.skip("needs Linux's /proc")
    with pytest.raises(DataError, match=message):
        read_json(path, "annotation", "pass a COCO json")


def test_read_json_reads_pipes_and_restores_gc(tmp_path: Path) -> None:
    path = tmp_path / "ok.json"
    path.write_text('{"images": [], "annotations": [{"id": 1}]}')
    assert read_json(path, "annotation", "", pause_gc=True) == {"images": [], "annotations": [{"id": 1}]}
    assert gc.isenabled()
    read_fd, write_fd = os.pipe()  # what a shell's <(...) hands over: /dev/fd/N, not a regular file
    os.write(write_fd, b"[1, 2]")
    os.close(write_fd)
    try:
        assert read_json(f"/dev/fd/{read_fd}", "results", "") == [1, 2]
    finally:
        os.close(read_fd)


def dead_pid() -> int:
    """The id of a process that has just ended (ids are reused only after the whole range has been cycled)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_temp_folders_carry_the_pid_and_killed_runs_folders_are_removed(tmp_path: Path) -> None:
    dead = dead_pid()
    (tmp_path / f"fp_x_{dead}-abc").mkdir()  # a killed run's: removed, with its contents
    (tmp_path / f"fp_x_{dead}-abc" / "fp32.onnx").write_bytes(b"half")
    keep = [f"fp_x_{os.getppid()}-def",  # a live process's (pytest's parent)
            "fp_x_1234abcd",  # an older version's name without a pid: not ours to judge
            f"fp_y_{dead}-abc",  # another prefix
            f"fp_x_{dead}-file"]  # not a folder
    for name in keep[:3]:
        (tmp_path / name).mkdir()
    (tmp_path / keep[3]).write_text("mine")
    with temp_folder("fp_x_", tmp_path) as folder:
        assert Path(folder).parent == tmp_path and Path(folder).name.startswith(f"fp_x_{os.getpid()}-")
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*keep, Path(folder).name])
        remove_stale_folders(tmp_path, "fp_x_")  # our own folder, in use, stays
        assert Path(folder).is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(keep)
