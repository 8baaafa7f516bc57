"""Video results against a clip with known truth (``fasterpose synth --video``): persons found, identity switches,
keypoint error and jitter.

Per frame, ground-truth persons (with at least one labelled keypoint) and predicted persons are matched greedily by
box IoU (the result's ``bbox``: the box its pose was estimated in), most overlapping first; a pair with IoU >=
``iou_thr`` (0.5) counts as the person being found, whatever the pose (its quality is the keypoint error). Then:

* ``recall``: found person-frames / ground-truth person-frames;
* ``id_switches``: times a ground-truth person is found with a track id other than the one it was last found with
  (CLEAR-MOT's rule); ``switches_per_100``: per 100 found person-frames;
* ``kpt_error_px`` and ``kpt_error_rel``: mean distance of found persons' labelled keypoints to the truth, in
  pixels and as a fraction of the ground-truth box height;
* ``first_found_delay``: frames from a ground-truth person's first (labelled) frame to the first frame it is found,
  summed over persons (a person never found counts all its frames); ``never_found``: persons never found. What a
  detector that backs off while nobody is tracked costs;
* ``jitter_px``: for ground-truth persons that do not move (their keypoints equal in two consecutive frames), the
  mean frame-to-frame motion of their predicted labelled keypoints, in pixels.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..detect.boxes import box_iou, xywh_to_xyxy
from ..keypoints import COCO17


def _by_frame(entries: Sequence[Mapping[str, Any]], frame_key: str) -> dict[int, list[Mapping[str, Any]]]:
    out: dict[int, list[Mapping[str, Any]]] = defaultdict(list)
    for e in entries:
        out[int(e.get(frame_key, e["image_id"]))].append(e)
    return out


def evaluate_tracking(gt: Mapping[str, Any], results: Sequence[Mapping[str, Any]], iou_thr: float = 0.5
                      ) -> dict[str, float]:
    """Scores of video ``results`` (``fasterpose predict`` entries: ``frame`` or ``image_id``, ``bbox`` xywh, flat
    ``keypoints``, ``track_id``) against a clip's ground truth ``gt`` (``clip_keypoints.json``: ``image_id`` = frame
    index, ``track_id``). See the module docstring."""
    k = COCO17.num_keypoints
    gt_frames = _by_frame([a for a in gt["annotations"] if a.get("num_keypoints", 1) > 0], "image_id")
    pred_frames = _by_frame(results, "frame")
    total = found = switches = 0
    last_id: dict[int, int] = {}
    errors_px: list[float] = []
    errors_rel: list[float] = []
    jitter: list[float] = []
    previous: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # gt track -> (gt keypoints, predicted keypoints)
    first_seen: dict[int, int] = {}  # gt track -> frames it was labelled before it was first found (or so far)
    first_found: set[int] = set()
    for frame in sorted(gt_frames):
        gts = gt_frames[frame]
        preds = pred_frames.get(frame, [])
        g_kp = np.array([a["keypoints"] for a in gts], np.float64).reshape(-1, k, 3)
        p_kp = np.array([r["keypoints"] for r in preds], np.float64).reshape(-1, k, 3)
        total += len(gts)
        for a in gts:
            gid = int(a["track_id"])
            first_seen.setdefault(gid, 0)
        g_box = np.array([a["bbox"] for a in gts], np.float64).reshape(-1, 4)
        p_box = np.array([r["bbox"] for r in preds], np.float64).reshape(-1, 4)
        sim = box_iou(xywh_to_xyxy(g_box), xywh_to_xyxy(p_box))
        current: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        while sim.size and sim.max() >= iou_thr:
            i, j = np.unravel_index(int(np.argmax(sim)), sim.shape)
            sim[i, :] = -1
            sim[:, j] = -1
            found += 1
            gid, a = int(gts[i]["track_id"]), gts[i]
            pid = int(preds[j].get("track_id", -1))
            if gid in last_id and last_id[gid] != pid:
                switches += 1
            last_id[gid] = pid
            first_found.add(gid)
            vis = g_kp[i, :, 2] > 0
            dist = np.linalg.norm(p_kp[j, vis, :2] - g_kp[i, vis, :2], axis=1)
            errors_px.extend(dist.tolist())
            errors_rel.extend((dist / max(float(a["bbox"][3]), 1.0)).tolist())
            current[gid] = (g_kp[i], p_kp[j])
            if gid in previous:
                g0, p0 = previous[gid]
                still = (g0[:, 2] > 0) & vis & (np.abs(g0[:, :2] - g_kp[i, :, :2]).max(axis=1) < 1e-6)
                if still.any():
                    jitter.extend(np.linalg.norm(p_kp[j, still, :2] - p0[still, :2], axis=1).tolist())
        previous = current
        for a in gts:  # labelled this frame and not found yet (this frame included)
            gid = int(a["track_id"])
            if gid not in first_found:
                first_seen[gid] += 1
    return {"gt_person_frames": total, "found": found, "recall": found / max(total, 1), "id_switches": switches,
            "switches_per_100": 100.0 * switches / max(found, 1),
            "first_found_delay": int(sum(first_seen.values())), "never_found": len(set(first_seen) - first_found),
            "kpt_error_px": float(np.mean(errors_px)) if errors_px else float("nan"),
            "kpt_error_rel": float(np.mean(errors_rel)) if errors_rel else float("nan"),
            "jitter_px": float(np.mean(jitter)) if jitter else float("nan")}

