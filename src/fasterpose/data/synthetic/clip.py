"""A synthetic video clip with known truth: figures walking, turning and crossing, one standing still.

Every frame's persons carry their ground-truth box, 17 keypoints (with the same visibility rules as the still images:
``v=1`` behind a nearer figure or the own torso, ``v=0`` outside the frame or a face point on the far side of the
head) and their identity ``track_id`` (1 = the standing figure, 2.. = the walkers). The standing figure holds one pose
for the whole clip, so any frame-to-frame motion of its predicted keypoints is jitter; the walkers walk across the
frame at different depths (a nearer figure is larger and its feet are lower), cross each other, and turn around at
the ends of their path, facing the camera half way through the turn.

:func:`write_clip` writes::

    OUT_DIR/clip.avi                  the frames (MJPG)
    OUT_DIR/clip_detections.json      the ground-truth boxes as detections (video wrapper, score 1; "given boxes")
    OUT_DIR/clip_keypoints.json       COCO keypoints ground truth, image id = frame index, plus "track_id"

The same ``(seed, config)`` gives the same frames and json (the video's bytes depend on the OpenCV build's encoder).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import DataError
from ...keypoints import COCO17
from .background import _background
from .config import SynthConfig
from .draw import _sample_look
from .figure import _figure_extent, _Placed, _sample_dims, _unit, pose_figure
from .scene import annotate_figures, draw_figures

CLIP_VIDEO = "clip.avi"
CLIP_KEYPOINTS = "clip_keypoints.json"
CLIP_DETECTIONS = "clip_detections.json"

_TURN_FRAMES = 16  # frames a walker takes to turn around (facing the camera half way)


@dataclass(frozen=True)
class ClipConfig:
    """What the clip shows.

    Attributes:
        num_frames: length of the clip.
        size: ``(height, width)`` of the frames.
        fps: frame rate written in the video header.
        walkers: number of walking figures (besides the standing one).
        standing: whether a figure stands still at the left (its keypoints measure jitter).
        noise_std: standard deviation of the per-frame pixel noise (sensor noise: the only change in a still
            region from one frame to the next).
        walk_speed: walking speed in figure heights per frame (0.02 at 25 fps is a brisk 0.85 m/s for a 1.7 m
            person).
    """

    num_frames: int = 300
    size: tuple[int, int] = (360, 480)
    fps: float = 25.0
    walkers: int = 3
    standing: bool = True
    noise_std: float = 4.0
    walk_speed: float = 0.02

    def __post_init__(self) -> None:
        if self.num_frames < 1:
            raise DataError(f"synthetic clip: num_frames must be >= 1, got {self.num_frames}")
        if len(self.size) != 2 or min(self.size) < 64:
            raise DataError(f"synthetic clip: size must be (height, width) with both >= 64, got {self.size}")
        if self.walkers < 0 or (self.walkers == 0 and not self.standing):
            raise DataError(f"synthetic clip: need at least one figure (walkers={self.walkers}, "
                            f"standing={self.standing})")
        if not 0 < self.fps <= 240:
            raise DataError(f"synthetic clip: fps must be in (0, 240], got {self.fps}")


@dataclass
class _Actor:
    """One figure of the clip: identity, body, look, depth (scale) and walking state."""

    track_id: int
    dims: dict[str, float]
    look: dict[str, Any]
    scale: float  # pixels per world unit
    foot_y: float  # image row of the feet
    x: float  # pelvis column
    direction: int  # +1 walking right, -1 left, 0 standing
    x_range: tuple[float, float]
    phase: float = 0.0
    turning: int = 0  # frames left in a turn


def _walk_angles(phase: float) -> dict[str, Any]:
    """Joint angles of a walk cycle at ``phase`` (radians): legs swing in opposition, arms against the legs."""
    d = math.radians
    swing = d(24.0) * math.sin(phase)
    knee_l = d(8.0 + 40.0 * max(0.0, math.sin(phase + 1.2)))
    knee_r = d(8.0 + 40.0 * max(0.0, math.sin(phase + 1.2 + math.pi)))
    legs = [(d(3.0), swing, knee_l, 0.0), (d(3.0), -swing, knee_r, 0.0)]
    arms = [(d(8.0), -0.8 * swing, d(20.0), 0.0), (d(8.0), 0.8 * swing, d(20.0), 0.0)]
    return {"kind": "walk", "arms": arms, "legs": legs, "pitch": d(4.0), "side_bend": 0.0, "twist": 0.0,
            "head_yaw": 0.0, "head_nod": d(5.0)}


def _stand_angles() -> dict[str, Any]:
    d = math.radians
    return {"kind": "stand", "arms": [(d(12.0), d(5.0), d(25.0), 0.0), (d(10.0), d(-5.0), d(15.0), 0.0)],
            "legs": [(d(6.0), 0.0, d(3.0), 0.0), (d(6.0), d(2.0), d(5.0), 0.0)], "pitch": d(2.0),
            "side_bend": 0.0, "twist": 0.0, "head_yaw": d(10.0), "head_nod": d(5.0)}


def _actors(rng: np.random.Generator, cfg: ClipConfig) -> list[_Actor]:
    h, w = cfg.size
    actors: list[_Actor] = []
    if cfg.standing:
        dims = _sample_dims(rng)
        scale = 0.5 * h
        actors.append(_Actor(1, dims, _sample_look(rng), scale, foot_y=0.72 * h, x=0.12 * w, direction=0,
                             x_range=(0.12 * w, 0.12 * w)))
    # Walkers at distinct depths: height fractions spread over [0.42, 0.72] of the frame, nearer = lower feet.
    fracs = np.linspace(0.42, 0.72, max(cfg.walkers, 1))[: cfg.walkers]
    fracs = fracs[rng.permutation(len(fracs))]
    for i, frac in enumerate(fracs):
        scale = float(frac) * h
        lo, hi = (0.3 if cfg.standing else 0.1) * w, 0.9 * w
        x = float(rng.uniform(lo, hi))
        direction = 1 if i % 2 == 0 else -1
        actors.append(_Actor(i + 2, _sample_dims(rng), _sample_look(rng), scale,
                             foot_y=0.62 * h + 0.45 * (float(frac) - 0.42) * h + 0.06 * h, x=x, direction=direction,
                             x_range=(lo, hi), phase=float(rng.uniform(0, 2 * np.pi))))
    return actors


def _step(a: _Actor, cfg: ClipConfig) -> None:
    """Advance a walker by one frame: walk, or turn around at the end of its range."""
    if a.direction == 0:
        return
    if a.turning:
        a.turning -= 1
        if a.turning == 0:
            a.direction = -a.direction
        return
    speed = cfg.walk_speed * a.scale
    a.x += a.direction * speed
    # A full cycle (two steps) covers about 0.75 figure heights.
    a.phase += 2 * math.pi * speed / (0.75 * a.scale)
    lo, hi = a.x_range
    if (a.direction > 0 and a.x >= hi) or (a.direction < 0 and a.x <= lo):
        a.turning = _TURN_FRAMES


def _pose(a: _Actor) -> tuple[float, dict[str, Any]]:
    """Yaw (degrees) and joint angles of an actor now."""
    if a.direction == 0:
        return 0.0, _stand_angles()
    if a.turning:
        u = 1.0 - a.turning / _TURN_FRAMES  # 0 -> 1 over the turn: yaw +-90 -> 0 (facing the camera) -> -+90
        return 90.0 * a.direction * math.cos(math.pi * u), _walk_angles(math.pi * round(a.phase / math.pi))
    return 90.0 * a.direction, _walk_angles(a.phase)


def _place(a: _Actor) -> _Placed:
    yaw, ang = _pose(a)
    fig = pose_figure(yaw, a.dims, ang)
    fig.look.update(a.look)
    fig.look["kind"] = ang["kind"]
    lo, hi = _figure_extent(fig)
    return _Placed(fig, a.scale, 0.0, np.array([a.x, a.foot_y - float(hi[1]) * a.scale]))


def render_clip(seed: int = 0, config: ClipConfig | None = None) -> Iterator[tuple[np.ndarray, list[dict[str, Any]]]]:
    """Frames of the clip with their ground truth.

    Args:
        seed: picks the figures' bodies, looks, depths, start positions and the background.
        config: :class:`ClipConfig`.

    Yields:
        ``(frame, persons)`` per frame: a BGR uint8 image and per visible figure the :func:`render_sample` fields
        (``keypoints`` (17, 3), ``bbox``, ``area``, ...) plus ``track_id``.
    """
    cfg = config or ClipConfig()
    h, w = cfg.size
    rng = np.random.default_rng([int(seed), 7])
    scene_cfg = SynthConfig(clutter=0.5, max_distractors=0)
    background = _background(rng, h, w, scene_cfg)
    actors = _actors(rng, cfg)
    light = _unit(np.array([rng.uniform(-1, 1), -1.0]))
    for index in range(cfg.num_frames):
        order = sorted(actors, key=lambda a: a.scale)  # painter's order: smaller = farther
        placed = [_place(a) for a in order]
        img = background.copy()
        owner, masks, hulls = draw_figures(img, placed, light)
        persons = annotate_figures(placed, masks, hulls, owner)
        for p in persons:
            p["track_id"] = order[p["index"]].track_id
        noise = np.random.default_rng([int(seed), 8, index]).standard_normal((h, w, 3), dtype=np.float32)
        img = np.clip(img.astype(np.float32) + noise * np.float32(cfg.noise_std), 0, 255).astype(np.uint8)
        yield img, persons
        for a in actors:
            _step(a, cfg)


def _clip_params(out: Path) -> dict[str, Any] | None:
    """The parameters of the clip in ``out``, or ``None`` if its keypoints file is not one of ours (only a regular
    file is read: a FIFO would block)."""
    import json

    try:
        if not (out / CLIP_KEYPOINTS).is_file():
            return None
        return json.loads((out / CLIP_KEYPOINTS).read_text())["info"]["fasterpose_synthetic_clip"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _check_not_another_clip(out: Path, params: dict[str, Any]) -> None:
    names = [n for n in (CLIP_VIDEO, CLIP_KEYPOINTS, CLIP_DETECTIONS) if (out / n).exists()]
    if not names:
        return
    old = _clip_params(out)
    if old != params:
        what = "a clip with other parameters" if old is not None else f"{', '.join(names)} (not a clip of ours)"
        raise DataError(f"{out} already holds {what}; choose another folder or pass overwrite=True (--overwrite)")


def write_clip(out_dir: str | Path, seed: int = 0, config: ClipConfig | None = None,
               overwrite: bool = False) -> dict[str, Any]:
    """Write the clip (MJPG ``clip.avi``), its ground truth and its ground-truth boxes as detections.

    Args:
        out_dir: destination folder (created).
        seed: see :func:`render_clip`.
        config: :class:`ClipConfig`.
        overwrite: replace a clip made with other parameters (or files of the same names not made by this
            function) in ``out_dir``; without it that is an error, so that a typo cannot clobber other files.

    Returns:
        ``{"video", "keypoints", "detections"}`` paths plus ``frames``, ``persons`` (person-frames) and ``tracks``.

    Raises:
        DataError: OpenCV cannot write MJPG video here, a bad config, or another clip in ``out_dir``.
    """
    import cv2

    from ...io_utils import atomic_path, atomic_write_json, check_writable_folder, claim_outputs

    cfg = config or ClipConfig()
    out = Path(out_dir)
    check_writable_folder(out, f"OUT_DIR {out} (the clip's folder)")
    params = {"seed": int(seed), "config": {**asdict(cfg), "size": list(cfg.size)}}
    if not overwrite:
        _check_not_another_clip(out, params)
    files = [CLIP_VIDEO, CLIP_KEYPOINTS, CLIP_DETECTIONS]  # --overwrite replaces a clip of ours, never a user's file
    claim_outputs(out, files, f"synthetic clip folder {out}", also_ours=set(files) if _clip_params(out) else None)
    h, w = cfg.size
    images, annotations, detections = [], [], []
    tracks: set[int] = set()
    with atomic_path(out / CLIP_VIDEO, suffix=".avi") as tmp:
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"MJPG"), float(cfg.fps), (w, h))
        if not writer.isOpened():
            raise DataError(f"OpenCV cannot write an MJPG video to {out / CLIP_VIDEO}")
        try:
            for index, (img, persons) in enumerate(render_clip(seed, cfg)):
                writer.write(img)
                images.append({"id": index, "file_name": CLIP_VIDEO, "frame": index, "height": h, "width": w})
                for p in persons:
                    kp = p["keypoints"]
                    annotations.append({
                        "id": len(annotations) + 1, "image_id": index, "category_id": 1, "track_id": p["track_id"],
                        "keypoints": [round(float(v), 2) for v in kp.ravel()],
                        "num_keypoints": int((kp[:, 2] > 0).sum()), "bbox": p["bbox"], "area": p["area"],
                        "iscrowd": 0, "visible_frac": p["visible_frac"], "facing": p["facing"], "pose": p["pose"]})
                    detections.append({"image_id": index, "category_id": 1, "bbox": p["bbox"], "score": 1.0})
                    tracks.add(p["track_id"])
        finally:
            writer.release()
    for a in annotations:  # keypoint triples: integer visibility flags
        kp = a["keypoints"]
        a["keypoints"] = [int(v) if i % 3 == 2 else v for i, v in enumerate(kp)]
    categories = [{"supercategory": "person", "id": 1, "name": "person", "keypoints": list(COCO17.names),
                   "skeleton": [[a + 1, b + 1] for a, b in COCO17.skeleton]}]
    atomic_write_json(out / CLIP_DETECTIONS, {"video": CLIP_VIDEO, "frames": cfg.num_frames,
                                              "detections": detections})
    atomic_write_json(out / CLIP_KEYPOINTS, {
        "info": {"description": "fasterpose synthetic clip", "fasterpose_synthetic_clip": params},
        "licenses": [], "categories": categories, "images": images, "annotations": annotations})
    return {"video": out / CLIP_VIDEO, "keypoints": out / CLIP_KEYPOINTS, "detections": out / CLIP_DETECTIONS,
            "frames": cfg.num_frames, "persons": len(annotations), "tracks": len(tracks)}
