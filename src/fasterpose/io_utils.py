"""Atomic file writing: nothing is ever left written half-way, and nothing but a regular file is ever replaced.

Write to a temporary file in the destination folder, flush it to disk, then ``os.replace`` it onto the final
name, which is atomic on POSIX and Windows. On any exception the temporary file is removed.

What is at the destination decides what happens (a careful user's expectation, README "Files and safety"):

* nothing, or a regular file: replaced atomically;
* a symbolic link: written *through* it (the link's target is replaced atomically, the link stays a link);
* a directory, a device node (``/dev/null``), a FIFO or a socket: refused with a
  :class:`~fasterpose.errors.DataError` naming the path, before anything is written.

Temporary files carry the writer's process id (``.<stem>.tmp.<pid>.<random><suffix>``); one left behind by a process
that was killed (SIGKILL, power loss) is removed by the next write into the same folder.

Reading a user's JSON file goes through :func:`read_json`, so every reader fails the same clear way.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import stat
import tempfile
from collections.abc import Iterator
from glob import escape as glob_escape
from pathlib import Path
from typing import Any

from .errors import DataError


def writable_target(path: str | os.PathLike) -> Path:
    """The file a write to ``path`` should replace: ``path`` itself, or a symlink's final target.

    Raises:
        DataError: ``path`` (or the symlink's target) exists and is not a regular file.
    """
    path = Path(path)
    if path.is_symlink():
        path = Path(os.path.realpath(path))
    if path.exists() and not path.is_file():
        kind = "a directory" if path.is_dir() else "not a regular file (a device, FIFO or socket)"
        raise DataError(f"{path} is {kind}; fasterpose writes only regular files and never replaces anything else. "
                        "Give the path of a file to create or replace")
    return path


def not_a_file(path: str | os.PathLike) -> str:
    """Why ``path`` cannot be read as a file, for a message: ``"does not exist"``, ``"is a directory, not a file"``
    or ``"is not a regular file (a device, FIFO or socket)"``."""
    path = Path(path)
    if not path.exists():
        return "does not exist"
    return "is a directory, not a file" if path.is_dir() else "is not a regular file (a device, FIFO or socket)"


# Largest input file of each kind read whole into memory; far above any real one, far below what would exhaust memory.
MAX_CONFIG_BYTES = 1 << 20  # 1 MiB: a YAML config is a few KB
MAX_JSON_BYTES = 4 << 30  # 4 GiB: COCO train2017's annotations are ~450 MB, detection files larger


def shell_pipe(path: Path, mode: int) -> bool:
    """Whether ``path`` is a pipe a shell handed over (``<(cmd)`` gives ``/dev/fd/63``): its writer exists, so reading
    it ends. A named FIFO elsewhere may have no writer ever, and reading it would wait for ever."""
    return stat.S_ISFIFO(mode) and str(path).startswith(("/dev/fd/", "/proc/self/fd/"))


def check_input_file(path: str | os.PathLike, what: str, max_bytes: int | None = None, pipes: bool = False) -> Path:
    """Check a user's input before opening it: it exists, it is a regular file (a FIFO would block the read for
    ever, ``/dev/zero`` never end), and it is not larger than ``max_bytes``. Every file a command reads goes through
    here or through :func:`read_json`, so every kind of wrong path fails the same clear way, before any work.

    Args:
        path: the file (a symlink is followed).
        what: how the user named it, for the message (e.g. ``"config file"``, ``"--checkpoint"``).
        max_bytes: the largest size accepted (``None``: no limit).
        pipes: accept a pipe too (``<(...)`` in a shell gives ``/dev/fd/63``; its writer is there, so it ends).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        DataError: naming ``what``, the path and what is wrong with it.
    """
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise DataError(f"{what} {path} does not exist") from None
    except OSError as e:
        raise DataError(f"{what} {path} cannot be read ({e.strerror or e})") from None
    if stat.S_ISDIR(mode):
        raise DataError(f"{what} {path} is a directory, not a file")
    if not stat.S_ISREG(mode) and not (pipes and shell_pipe(path, mode)):
        raise DataError(f"{what} {path} is not a regular file (a FIFO, device or socket); reading it could wait for "
                        "ever. Give a file")
    size = path.stat().st_size
    if max_bytes is not None and size > max_bytes:
        raise DataError(f"{what} {path} is {size:,} bytes, more than the {max_bytes:,} such a file can be; is it the "
                        "right file?")
    return path


def read_image(path: str | os.PathLike, flags: int | None = None) -> Any:
    """``cv2.imread`` of a user's image, after :func:`check_input_file`'s kind check: a FIFO or a device named like an
    image is refused (``imread`` would wait on it for ever). Returns ``None`` where ``imread`` does: a missing file or
    one OpenCV cannot decode (each caller says which in its own words).

    Raises:
        DataError: ``path`` exists and is not a regular file.
    """
    import cv2

    path = Path(path)
    if path.exists() and not path.is_file():
        check_input_file(path, "image")  # raises, naming the kind
    return cv2.imread(str(path), cv2.IMREAD_COLOR if flags is None else flags)


#: Most YAML nodes a document may expand to once its aliases (``*name``) are followed: a real config has a few
#: hundred; nested aliases ("billion laughs") would expand to billions and hang whatever walks the result.
MAX_YAML_NODES = 100_000


def _expanded_nodes(node: Any, sizes: dict[int, int], open_: set[int]) -> int:
    """How many nodes ``node`` stands for with every alias expanded (memoised per node: linear time)."""
    import yaml

    key = id(node)
    if key in sizes:
        return sizes[key]
    if key in open_:
        raise ValueError("an alias refers to the node that contains it (a structure without end)")
    open_.add(key)
    total = 1
    if isinstance(node, yaml.SequenceNode):
        total += sum(_expanded_nodes(n, sizes, open_) for n in node.value)
    elif isinstance(node, yaml.MappingNode):
        total += sum(_expanded_nodes(k, sizes, open_) + _expanded_nodes(v, sizes, open_) for k, v in node.value)
    open_.discard(key)
    sizes[key] = min(total, MAX_YAML_NODES + 1)  # capped: the sums stay small numbers
    return sizes[key]


def load_yaml(text: str, what: str) -> Any:
    """Parse YAML safely (no objects built, see ``yaml.safe_load``) and bounded: a document whose aliases expand to
    more than :data:`MAX_YAML_NODES` nodes, or that refers to itself, is refused.

    Args:
        text: the YAML text.
        what: what it is, for the message (``"config file x.yaml"``, ``"--opt model.kwargs=..."``).

    Raises:
        ConfigError: invalid YAML (with where), or a document built to expand without end.
    """
    import yaml

    from .errors import ConfigError

    class BoundedLoader(yaml.SafeLoader):
        def construct_document(self, node: Any) -> Any:
            try:
                size = _expanded_nodes(node, {}, set())
            except (ValueError, RecursionError) as e:
                reason = str(e) if isinstance(e, ValueError) else "nested too deeply"
                raise ConfigError(f"{what}: refused YAML: {reason}") from None
            if size > MAX_YAML_NODES:
                raise ConfigError(f"{what}: refused YAML: its aliases (*name) expand to more than {MAX_YAML_NODES:,} "
                                  "values; a config never needs that many. Write the values out")
            return super().construct_document(node)

    try:
        return yaml.load(text, Loader=BoundedLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as e:
        raise ConfigError(f"{what} is not valid YAML: {e}") from None
    except RecursionError:
        raise ConfigError(f"{what}: refused YAML: nested too deeply") from None


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic GC: parsing a big JSON file creates millions of containers and would trigger ~all collections
    for nothing (nothing is garbage yet); this halves the load time of large annotation files."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def read_json(path: str | os.PathLike, kind: str, hint: str, pause_gc: bool = False) -> Any:
    """Parse a user's JSON file; every way it can fail is a :class:`DataError` naming the file and what to do.

    Args:
        path: the file; a shell's pipe (``/dev/fd/63`` from ``<(...)``) is read like a file; devices, sockets and
            named FIFOs (``mkfifo``: nothing may ever write them) are refused.
        kind: what the file should be, for messages: ``"annotation"`` gives "... the annotation file ...".
        hint: what to do instead, e.g. ``"pass a COCO keypoint annotation json"``.
        pause_gc: pause the cyclic GC while parsing (large annotation files load about twice as fast).

    Raises:
        DataError: ``path`` is a directory or a device, does not exist or cannot be read, is not UTF-8 text, not
            valid JSON (the message gives the line and column), or nested too deeply to parse.
    """
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path}: is a directory, not the {kind} file; {hint}")
    if not path.exists():  # not is_file(): pipes such as /dev/fd/63 are fine
        raise DataError(f"{path}: {kind} file does not exist; {hint}")
    try:
        mode = path.stat().st_mode
        if not (stat.S_ISREG(mode) or shell_pipe(path, mode)):  # /dev/zero would be read for ever, a FIFO wait for ever
            raise DataError(f"{path}: is not a regular file (a FIFO, device or socket), not the {kind} file; reading "
                            f"it could wait for ever; {hint}")
        if stat.S_ISREG(mode) and path.stat().st_size > MAX_JSON_BYTES:
            raise DataError(f"{path}: {path.stat().st_size:,} bytes, more than the {MAX_JSON_BYTES:,} a {kind} file "
                            f"can be; {hint}")
        with open(path, encoding="utf-8") as f, (gc_paused() if pause_gc else contextlib.nullcontext()):
            return json.load(f)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not valid JSON ({e.msg} at line {e.lineno}, column {e.colno}); the {kind} file "
                        f"must be a JSON document; {hint}") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a UTF-8 text file; the {kind} file must be a JSON document; {hint}") from None
    except RecursionError:
        raise DataError(f"{path}: JSON nested too deeply to be the {kind} file; {hint}") from None
    except OSError as e:
        raise DataError(f"{path}: the {kind} file could not be read ({e.strerror or e}); {hint}") from None


def check_writable(path: str | os.PathLike, what: str) -> Path:
    """Fail early, before any long work, if ``path`` cannot be written: it is a directory or device, a folder on
    its way is a file, or its folder is not writable. Creates nothing.

    Args:
        path: the output file.
        what: how the user named it, for the message (e.g. ``"--results"``).

    Returns:
        The path that will be written (a symlink's target).

    Raises:
        DataError: naming ``what``, the path and the reason.
    """
    try:
        target = writable_target(path)
    except DataError as e:
        raise DataError(f"{what}: {e}") from None
    check_writable_folder(target.parent, f"{what} {path}")
    return target


def check_not_an_input(path: str | os.PathLike, inputs: list[str | os.PathLike | None], what: str) -> None:
    """Refuse an output that is (or, through a symlink, points at) one of the command's input files.

    Args:
        path: the output file.
        inputs: the input files (``None`` entries and paths that do not exist are ignored).
        what: how the user named the output, for the message (e.g. ``"--results"``).

    Raises:
        DataError: naming the output and the input it would replace.
    """
    target = writable_target(path).resolve()
    for given in inputs:
        if given is not None and Path(given).is_file() and Path(given).resolve() == target:
            raise DataError(f"{what} {path} would overwrite the input file {given}; fasterpose never replaces its "
                            "inputs. Choose another path")


def check_writable_folder(folder: str | os.PathLike, label: str, writable: bool = True) -> None:
    """Fail early if files cannot be created in ``folder``: the nearest existing folder on its way is a file, or it
    is not writable. Creates nothing.

    Args:
        folder: the output folder (it need not exist yet).
        label: how the user named the output, for the message (e.g. ``"--out results/"``).
        writable: also require write permission (``False`` for a cache that may already hold what is needed).

    Raises:
        DataError: naming ``label`` and the reason.
    """
    existing = Path(folder)
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise DataError(f"{label}: {existing} is a file, not a folder; choose another path")
    if writable and not os.access(existing, os.W_OK | os.X_OK):
        raise DataError(f"{label}: the folder {existing} is not writable; choose another path")


@contextlib.contextmanager
def exclusive_folder(folder: str | os.PathLike, what: str) -> Iterator[None]:
    """Hold ``folder`` for one run: a second fasterpose run writing into the same folder at the same time is refused
    instead of mixing its files with this one's.

    The hold is an advisory ``flock`` on the folder itself, so no file is added to it, and the kernel releases it
    when the process ends in any way (even SIGKILL): a killed run never blocks the next one. Where ``fcntl`` does
    not exist (Windows) nothing is held.

    Args:
        folder: an existing folder.
        what: the command, for the message (e.g. ``"predict"``).

    Raises:
        DataError: another process holds the folder.
    """
    try:
        import fcntl
    except ImportError:  # not POSIX
        yield
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # a folder we may write but not read: run without the hold
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DataError(f"{folder} is being written by another fasterpose run right now; two runs into one folder "
                            f"would mix their files. Wait for it to end, or give this {what} another folder") from None
        except OSError:  # a file system without locks (some network mounts): run without the hold
            pass
        yield
    finally:
        os.close(fd)  # releases the hold


#: The file in an output folder that lists what fasterpose wrote there (paths relative to the folder): a later run may
#: replace or remove those, and nothing else (issue 19: a command never deletes or replaces a user's files).
WRITTEN_MANIFEST = ".fasterpose-written.json"


def written_here(folder: str | os.PathLike) -> set[str]:
    """The files fasterpose recorded as written into ``folder`` (:data:`WRITTEN_MANIFEST`); empty if none."""
    manifest = Path(folder) / WRITTEN_MANIFEST
    try:
        check_input_file(manifest, "manifest", MAX_CONFIG_BYTES)
        names = json.loads(manifest.read_text(encoding="utf-8"))
    except (DataError, OSError, ValueError):
        return set()
    return {n for n in names if isinstance(n, str)} if isinstance(names, list) else set()


def claim_outputs(folder: str | os.PathLike, names: list[str], what: str, also_ours: set[str] | None = None,
                  create: bool = True) -> None:
    """Before a command writes ``names`` into ``folder``: refuse if any of them is there and fasterpose did not write
    it (not in the folder's manifest nor in ``also_ours``); otherwise record them in the manifest first, so that a run
    stopped half-way leaves files the next run knows as its own.

    Args:
        folder: the output folder (created).
        names: the paths, relative to ``folder``, the command is about to write.
        what: the command and folder, for the message (e.g. ``"synth OUT_DIR data/"``).
        also_ours: files known to be fasterpose's another way (a dataset of an earlier version, without manifest).
        create: create ``folder`` if needed; ``False``: a folder that does not exist is left to the command (nothing
            can be in the way there, and it may remove a folder it created when it fails).

    Raises:
        DataError: listing (up to five of) the files in the way.
    """
    folder = Path(folder)
    if not create and not folder.is_dir():
        return
    ours = written_here(folder) | (also_ours or set())
    in_the_way = [n for n in names if n not in ours and ((folder / n).exists() or (folder / n).is_symlink())]
    if in_the_way:
        more = f" and {len(in_the_way) - 5} more" if len(in_the_way) > 5 else ""
        raise DataError(f"{what}: {folder} already holds {', '.join(in_the_way[:5])}{more}, which fasterpose did not "
                        f"record writing there ({WRITTEN_MANIFEST}); they would be replaced. Nothing was written: "
                        "choose an empty or new folder, or move them")
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(folder / WRITTEN_MANIFEST, sorted(ours | set(names)))


def process_gone(pid: int) -> bool:
    """Whether no process ``pid`` exists (on this machine): its leftover temporary files can go. ``False`` when it
    exists, or when that cannot be known (another user's process)."""
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


def remove_stale_temporaries(folder: Path) -> None:
    """Remove ``.*.tmp.<pid>.*`` files whose writing process no longer exists (killed mid-write)."""
    try:
        entries = list(folder.glob(".*.tmp.*"))
    except OSError:
        return
    for entry in entries:
        pid = entry.name.split(".tmp.", 1)[1].split(".", 1)[0]
        # files without a pid are not ours (older versions wrote none): left alone
        if pid.isdigit() and process_gone(int(pid)):
            with contextlib.suppress(OSError):
                entry.unlink()


def remove_stale_folders(parent: str | os.PathLike, prefix: str) -> None:
    """Remove the ``<prefix><pid>-*`` folders in ``parent`` whose process no longer exists (a killed run's).

    Folders of live processes, of other users' processes, and names without a pid (older versions) are left alone.
    """
    import shutil

    try:
        entries = list(Path(parent).glob(glob_escape(prefix) + "*"))
    except OSError:
        return
    for entry in entries:
        pid, dash, _ = entry.name[len(prefix):].partition("-")
        if dash and pid.isdigit() and entry.is_dir() and not entry.is_symlink() and process_gone(int(pid)):
            shutil.rmtree(entry, ignore_errors=True)


def temp_folder(prefix: str, parent: str | os.PathLike | None = None) -> tempfile.TemporaryDirectory:
    """A new temporary folder ``<prefix><pid>-<random>`` in ``parent`` (default: the system's temporary folder),
    removed when its context (or its ``cleanup()``) ends; the folders that killed processes left under the same
    prefix are removed first (:func:`remove_stale_folders`).
    """
    parent = Path(parent) if parent is not None else Path(tempfile.gettempdir())
    remove_stale_folders(parent, prefix)
    return tempfile.TemporaryDirectory(prefix=f"{prefix}{os.getpid()}-", dir=parent)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``.

    Args:
        path: final destination (a symlink is written through; see the module docstring).
        suffix: suffix of the temporary file (defaults to ``path``'s suffix, which some writers such as
            ``cv2.imwrite`` or ``cv2.VideoWriter`` need to pick the format).

    Raises:
        DataError: ``path`` is a directory, a device node or another non-regular file.
    """
    path = writable_target(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.tmp.{os.getpid()}.",
                               suffix=path.suffix if suffix is None else suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp creates 0600 files; give the result the mode an ordinary open() would (0666 minus the umask).
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        if isinstance(e, OSError) and not e.filename:
            e.filename = str(path)  # a refused write (disk full) names the file it was for
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int | None = None) -> None:
    atomic_write_text(path, json.dumps(obj, indent=indent))
