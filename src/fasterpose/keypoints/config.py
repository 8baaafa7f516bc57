"""The keypoint set a config asks for, and whether flipping is safe with it.

``data.keypoint_set`` is ``coco17`` / ``mpii16`` (named sets), the name of an inline set under the config's
top-level ``keypoint_sets``, or ``auto``: read from the training annotation file's keypoint category
(:mod:`fasterpose.keypoints.category`). ``data.flip_pairs``, ``data.skeleton``, ``data.sigmas`` and
``data.upper_body`` then replace the corresponding fields, whichever way the set was chosen.

Flipping (the flip augmentation and the flip test) needs a mirror partner for every keypoint named left or right:
``data.flip: null`` (the default) turns it on exactly when the set has flip pairs and no unpaired left/right
keypoint; ``true`` / ``false`` decide explicitly.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, DataError
from .category import OVERRIDE_FIELDS, keypoint_set_from_file, override_fields
from .names import infer_flip_pairs, infer_sides, infer_upper_body, unpaired_sided
from .sets import KEYPOINT_SETS, KeypointSet

if TYPE_CHECKING:  # annotations only: the training config lives a floor up, in engine/
    from ..engine.config import Config

logger = logging.getLogger(__name__)

__all__ = ["apply_flip_choice", "flip_enabled", "inline_keypoint_set", "resolve_keypoint_set"]


def resolve_keypoint_set(cfg: Config) -> KeypointSet:
    """The :class:`KeypointSet` of ``cfg`` (named, inline or ``auto``) with the ``data.*`` field overrides applied.

    Raises:
        ConfigError: an unknown set name, or an invalid inline set or override.
        DataError: ``auto`` with an annotation file that has no (or several) keypoint categories.
    """
    name = cfg.data.keypoint_set
    if name == "auto" and cfg.data.dataset == "synthetic":
        # The generator draws COCO-17 figures (its files declare COCO17's names); knowing it here spares every DDP
        # rank from generating the data before rank 0 has cached it.
        kset = KEYPOINT_SETS["coco17"]
    elif name == "auto":
        kset = keypoint_set_from_file(_annotation_file(cfg), cfg.data.keypoint_category)
    elif name in cfg.keypoint_sets:
        kset = inline_keypoint_set(name, cfg.keypoint_sets[name])
    elif name in KEYPOINT_SETS:
        kset = KEYPOINT_SETS[name]
    else:
        known = ", ".join(["auto", *KEYPOINT_SETS, *cfg.keypoint_sets])
        raise ConfigError(f"data.keypoint_set: unknown set {name!r}; use one of {known}, or define it under "
                          "keypoint_sets: in the config")
    fields = {key: getattr(cfg.data, key) for key in OVERRIDE_FIELDS}
    try:
        return override_fields(kset, fields, "data")
    except DataError as e:
        raise ConfigError(str(e)) from None


def inline_keypoint_set(name: str, d: Any) -> KeypointSet:
    """A set defined in the config: ``keypoint_sets: {NAME: {names: [...], flip_pairs, skeleton, sigmas, ...}}``.

    ``names`` is required; ``flip_pairs``, ``upper_body`` and ``side`` are inferred from the names when absent,
    ``skeleton`` defaults to none and ``sigmas`` to ``null``.
    """
    where = f"keypoint_sets.{name}"
    if not isinstance(d, dict) or not isinstance(d.get("names"), list) or not d["names"]:
        raise ConfigError(f"{where} must be a mapping with a non-empty 'names' list (and optionally "
                          f"{', '.join(OVERRIDE_FIELDS)}), got {d!r}")
    unknown = sorted(set(d) - {"names", "side", *OVERRIDE_FIELDS})
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {unknown}; known: names, {', '.join(OVERRIDE_FIELDS)}, side")
    names = tuple(str(n) for n in d["names"])
    try:
        base = KeypointSet(name=name, names=names, flip_pairs=infer_flip_pairs(names), skeleton=(), sigmas=None,
                           upper_body=infer_upper_body(names), side=tuple(d.get("side") or infer_sides(names)))
        return override_fields(base, {k: d.get(k) for k in OVERRIDE_FIELDS}, where)
    except (ValueError, DataError) as e:
        raise ConfigError(f"{where}: {e}") from None


def flip_enabled(kset: KeypointSet, setting: bool | None) -> bool:
    """Whether horizontal flips (augmentation, flip test) are used: ``setting`` if given, else whether they are safe."""
    if setting is not None:
        return bool(setting)
    return bool(kset.flip_pairs) and not unpaired_sided(kset.names, kset.flip_pairs)


def apply_flip_choice(cfg: Config, kset: KeypointSet) -> Config:
    """``cfg`` with the flip augmentation and flip tests switched off when :func:`flip_enabled` says so."""
    if flip_enabled(kset, cfg.data.flip):
        return cfg
    if cfg.data.flip is None:
        lone = [kset.names[i] for i in unpaired_sided(kset.names, kset.flip_pairs)]
        why = (f"keypoints {', '.join(lone[:4])} have no mirror partner" if lone
               else "no keypoint names a left/right side")
        logger.info("keypoint set %s: %s, so the flip augmentation and the flip test are off (set data.flip: true "
                    "and data.flip_pairs to use them)", kset.name, why)
    data = replace(cfg.data, augment=replace(cfg.data.augment, flip=False))
    return replace(cfg, data=data, train=replace(cfg.train, flip_test=False), eval=replace(cfg.eval, flip_test=False))


def _annotation_file(cfg: Config) -> str:
    if cfg.data.dataset != "coco":
        raise ConfigError(f"data.keypoint_set: auto reads the keypoint set from a COCO-format annotation file; "
                          f"data.dataset is {cfg.data.dataset!r}. Use data.dataset: coco with a COCO keypoint file, "
                          "or name the set (mpii16)")
    if not cfg.data.train_ann:
        raise ConfigError("data.keypoint_set: auto needs data.train_ann (the file whose category names the keypoints)")
    return cfg.data.train_ann
