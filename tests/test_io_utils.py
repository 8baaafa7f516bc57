"""The file writers every command uses (``fasterpose.io_utils``): atomic, never replacing anything but a regular
file, cleaning up after killed writers, and holding an output folder for one run at a time."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fasterpose.errors import DataError
from fasterpose.io_utils import atomic_path, atomic_write_json, exclusive_folder, writable_target


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
