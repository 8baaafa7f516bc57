"""Model files, saved and read: self-describing checkpoints (``torch.save`` of a plain dict), safetensors files, and
the one function that opens any PyTorch file (:func:`read_torch_file`), without ever running code from it.

Building a model from what these functions return is :mod:`fasterpose.models.loading`'s and
:func:`fasterpose.models.model_from_checkpoint`'s job; this module imports nothing from ``models``.

Checkpoint keys (training checkpoints hold all of them; an inference-only checkpoint needs the first four):

- ``format``: ``"fasterpose-checkpoint/1"``
- ``fasterpose_version``: package version that wrote it
- ``spec``: :class:`fasterpose.spec.PoseSpec` as a dict (model name and kwargs, input size, the whole keypoint set
  (names, flip pairs, skeleton, sigmas, sides; older files hold just its name), codec, heatmap activation, flip test)
- ``model``: the model ``state_dict`` (never the DDP-wrapped one: no ``module.`` prefix)
- ``config``: the resolved training config as a dict, or ``None``
- ``epoch`` (epochs completed), ``step``, ``best_ap``, ``optimizer``, ``scheduler``, ``scaler``, ``rng``,
  ``sampler``, ``history``

A safetensors file (``fasterpose export --out model.safetensors``) holds the ``state_dict`` as its tensors and, in its
metadata (strings only): ``format`` ``"pt"`` (the Hugging Face convention), ``fasterpose_format``
(:data:`SAFETENSORS_FORMAT`), ``fasterpose_version`` and ``fasterpose_spec`` (the PoseSpec as JSON, as in an ONNX
export). It holds no pickle at all: it is what to share.
"""

from __future__ import annotations

import os
import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from . import __version__
from .errors import CheckpointError
from .io_utils import atomic_path, not_a_file
from .spec import SPEC_METADATA_KEY, PoseSpec

__all__ = ["ALLOWED_GLOBALS", "CHECKPOINT_FORMAT", "SAFETENSORS_FORMAT", "SPEC_METADATA_KEY", "AllowedGlobal",
           "checked_checkpoint", "is_safetensors", "load_checkpoint", "read_safetensors", "read_torch_file",
           "save_checkpoint", "save_safetensors"]

CHECKPOINT_FORMAT = "fasterpose-checkpoint/1"
SAFETENSORS_FORMAT = "fasterpose-safetensors/1"

# --- what a weights file may ask the unpickler to build ------------------------------------------------------------


class _Discarded:
    """Stands in for another framework's logging object (its state is dropped): building it runs none of its code."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass


@dataclass(frozen=True)
class AllowedGlobal:
    """One object, beyond tensors and plain Python values, that :func:`read_torch_file` lets a file build.

    Attributes:
        name: the dotted name the pickle refers to it by (``module.qualname``).
        obj: what is built under that name.
        reason: which published files need it, and for what.
    """

    name: str
    obj: Any
    reason: str


def _allowed_globals() -> tuple[AllowedGlobal, ...]:
    """The table of :data:`ALLOWED_GLOBALS` (numpy names differ between numpy 1 and 2; both are listed)."""
    import numpy as np

    try:
        from numpy._core import multiarray  # numpy >= 2
    except ImportError:  # numpy 1
        from numpy.core import multiarray
    arrays = ("numpy arrays: the NumPy RNG state (np.random.get_state()) in checkpoints of fasterpose 0.1.0, and "
              "arrays in MMPose/MMEngine files' meta (dataset_meta, message_hub)")
    scalars = "numpy numbers (np.float64, np.int64) in MMPose/MMEngine files' meta and logs"
    table = [AllowedGlobal(f"{m}.multiarray._reconstruct", multiarray._reconstruct, arrays)
             for m in ("numpy.core", "numpy._core")]
    table += [AllowedGlobal("numpy.ndarray", np.ndarray, arrays), AllowedGlobal("numpy.dtype", np.dtype, arrays)]
    table += [AllowedGlobal(f"{m}.multiarray.scalar", multiarray.scalar, scalars)
              for m in ("numpy.core", "numpy._core")]
    # numpy rebuilds each dtype object through its class (numpy.dtypes.Float32DType, ...): numbers and booleans only.
    for kind in (np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64,
                 np.float16, np.float32, np.float64):
        cls = type(np.dtype(kind))
        table.append(AllowedGlobal(f"{cls.__module__}.{cls.__qualname__}", cls, "the dtype of an array above"))
    table.append(AllowedGlobal("mmengine.logging.history_buffer.HistoryBuffer", _Discarded,
                               "training logs in MMPose 1.x (MMEngine) checkpoints' message_hub; built as an empty "
                               "stand-in, their content is dropped"))
    return tuple(table)


#: Everything a weights file may build besides tensors and plain Python values (numbers, strings, lists, tuples,
#: dicts, OrderedDict), with the reason; docs/choices.md ("Loading files safely") lists the same.
ALLOWED_GLOBALS: tuple[AllowedGlobal, ...] = _allowed_globals()

_WANTED = (re.compile(r"GLOBAL ([\w.]+)"), re.compile(r"got <class '([\w.]+)'>"))


def _wanted_object(message: str) -> str | None:
    """The object a refused file wanted built, from PyTorch's weights-only unpickling error."""
    for pattern in _WANTED:
        match = pattern.search(message)
        if match:
            return match.group(1)
    return None


def read_torch_file(path: str | os.PathLike, map_location: str | torch.device = "cpu", what: str = "checkpoint"
                    ) -> Any:
    """Open a PyTorch file (``torch.save``) without running code from it: every model file goes through here.

    ``torch.load(weights_only=True)`` builds only tensors, plain Python values and :data:`ALLOWED_GLOBALS`; a pickle
    that asks for anything else (a function to call, a class to instantiate) is refused before anything of it runs.

    Args:
        path: the file.
        map_location: where tensors go (``"cpu"`` by default).
        what: what the file is, for messages (``"checkpoint"``, ``"pretrained backbone checkpoint"``).

    Raises:
        CheckpointError: the file is missing, damaged, not a PyTorch file, or asks to build an object that is not
            allowed (the message names the file and the object).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what} {path} {not_a_file(path)}")
    allowed = [(g.obj, g.name) for g in ALLOWED_GLOBALS]
    try:
        with torch.serialization.safe_globals(allowed):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        wanted = _wanted_object(str(e))
        if wanted is None:
            raise CheckpointError(f"{what} {path} could not be read safely ({str(e).strip().splitlines()[-1][:300]}); "
                                  "is it a complete PyTorch weights file?") from None
        raise CheckpointError(
            f"{what} {path} asks to build {wanted}, which no weights file needs: refused, and nothing of it was run "
            "(building such an object can run any code the file's author chose). Only tensors, plain values and the "
            "few objects listed in docs/choices.md ('Loading files safely') are loaded. Ask for the model as "
            ".safetensors or .onnx, or load it only if you trust its source and re-save its state_dict") from None
    except Exception as e:  # noqa: BLE001 - a damaged zip, a truncated file: "not a readable checkpoint"
        raise CheckpointError(f"{what} {path} could not be read ({type(e).__name__}: {str(e)[:300]}); is it a "
                              "complete file written by PyTorch?") from e


# --- fasterpose checkpoints ----------------------------------------------------------------------------------------

def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """Atomically write ``state`` (adds ``format`` and ``fasterpose_version``)."""
    state = {"format": CHECKPOINT_FORMAT, "fasterpose_version": __version__, **state}
    if isinstance(state.get("spec"), PoseSpec):
        state["spec"] = state["spec"].to_dict()
    with atomic_path(path) as tmp:
        try:
            torch.save(state, tmp)
        except RuntimeError as e:
            # PyTorch's zip writer reports a refused write (full disk, file-size limit) as a RuntimeError ("unexpected
            # pos ..."), without the errno; the temporary file goes with the atomic writer.
            raise CheckpointError(f"could not write the checkpoint {path} ({str(e).splitlines()[0]}): the disk is "
                                  "probably full or a file-size limit was reached; free some space or choose another "
                                  "output folder (no half-written checkpoint was left)") from e


def checked_checkpoint(obj: Any, path: str | os.PathLike) -> dict[str, Any]:
    """``obj`` (what ``path`` held) if it is a fasterpose checkpoint with a ``spec`` and a ``model``."""
    if not isinstance(obj, dict) or obj.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a fasterpose checkpoint (expected format {CHECKPOINT_FORMAT!r}); "
                              "to load torchvision ImageNet weights into a backbone use model.pretrained instead")
    for key in ("spec", "model"):
        if key not in obj:
            raise CheckpointError(f"checkpoint {path} has no {key!r} entry")
    return obj


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a fasterpose checkpoint (``.pt``) or safetensors file, validated, with a clear error for missing, corrupt
    or foreign files. Published weights by name and MMPose/official SimpleBaseline files are read by
    :func:`fasterpose.models.loading.load_pose_checkpoint`, which converts them."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} {not_a_file(path)}; pass a .pth/.pt file written by fasterpose, "
                              "a .safetensors file from `fasterpose export`, a published model's file, or a name from "
                              "`fasterpose weights list`")
    if is_safetensors(path):
        return read_safetensors(path)
    return checked_checkpoint(read_torch_file(path, map_location), path)


# --- safetensors ---------------------------------------------------------------------------------------------------

def is_safetensors(path: str | os.PathLike) -> bool:
    """Whether ``path`` starts like a safetensors file (8-byte header length, then a JSON object)."""
    try:
        with open(path, "rb") as f:
            head = f.read(9)
    except OSError:
        return False
    return len(head) == 9 and head[8:9] == b"{" and 2 <= int.from_bytes(head[:8], "little") <= 100_000_000


def save_safetensors(path: str | os.PathLike, state_dict: dict[str, torch.Tensor], spec: PoseSpec) -> None:
    """Atomically write ``state_dict`` and ``spec`` as a safetensors file (no pickle; see the module docstring)."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state_dict.items()}
    metadata = {"format": "pt", "fasterpose_format": SAFETENSORS_FORMAT, "fasterpose_version": __version__,
                SPEC_METADATA_KEY: spec.to_json()}
    with atomic_path(path, suffix=".safetensors") as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def read_safetensors(path: str | os.PathLike) -> dict[str, Any]:
    """A safetensors file written by fasterpose as an inference-only checkpoint dict (``format``, ``spec`` (validated,
    as a dict), ``model``, ``config`` ``None``).

    Raises:
        CheckpointError: not a readable safetensors file, or no or an invalid ``fasterpose_spec`` in its metadata.
    """
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = f.metadata() or {}
            text = metadata.get(SPEC_METADATA_KEY)
            if metadata.get("fasterpose_format") != SAFETENSORS_FORMAT or text is None:
                raise CheckpointError(f"{path} is a safetensors file but not one written by `fasterpose export` (no "
                                      f"{SPEC_METADATA_KEY!r} with fasterpose_format {SAFETENSORS_FORMAT!r} in its "
                                      "metadata), so nothing says which model, input size and keypoints its weights "
                                      "are for")
            try:
                spec = PoseSpec.from_json(text)
            except (ValueError, TypeError, RecursionError) as e:
                raise CheckpointError(f"{path}: metadata {SPEC_METADATA_KEY!r} is not a valid PoseSpec "
                                      f"({str(e)[:300]}); re-export it with `fasterpose export`") from None
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open is not a mapping
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{path} could not be read as a safetensors file ({str(e)[:300]}); is it "
                              "complete?") from e
    return {"format": CHECKPOINT_FORMAT, "fasterpose_version": metadata.get("fasterpose_version"),
            "spec": spec.to_dict(), "model": tensors, "config": None}
