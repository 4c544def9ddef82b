"""Patches of the Dubai tiles for segmentation, split by tile."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
from tqdm.auto import tqdm

from geolab.datasets import dubai

log = logging.getLogger(__name__)
CLASSES = dubai.CLASSES
IGNORE = dubai.IGNORE_INDEX


def rescale(image: np.ndarray, mask: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Resize an image (area interpolation) and its mask (nearest) by ``scale``."""
    if scale == 1:
        return image, mask
    h, w = mask.shape
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return (
        cv2.resize(image, size, interpolation=cv2.INTER_AREA),
        cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST),
    )


def patch_origins(length: int, size: int, stride: int) -> list[int]:
    """Start offsets along one axis: every ``stride``, plus one flush with the end.

    A side shorter than ``size`` gets one patch at 0 (the caller pads it).
    """
    if length <= size:
        return [0]
    starts = list(range(0, length - size + 1, stride))
    if starts[-1] != length - size:
        starts.append(length - size)
    return starts


def cut(
    image: np.ndarray, mask: np.ndarray, size: int, stride: int
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Cut an image ``(H, W, 3)`` and mask ``(H, W)`` into ``size`` squares covering everything.

    Sides shorter than ``size`` are padded: the image by reflection, the mask with the ignore
    index, so padding never counts as a class.
    """
    h, w = mask.shape
    ph, pw = max(0, size - h), max(0, size - w)
    if ph or pw:
        image = cv2.copyMakeBorder(image, 0, ph, 0, pw, cv2.BORDER_REFLECT_101)
        mask = np.pad(mask, ((0, ph), (0, pw)), constant_values=IGNORE)
    xs, ms = [], []
    for y in patch_origins(mask.shape[0], size, stride):
        for x in patch_origins(mask.shape[1], size, stride):
            xs.append(image[y : y + size, x : x + size])
            ms.append(mask[y : y + size, x : x + size])
    return xs, ms


def class_frequencies(masks: np.ndarray) -> dict[str, float]:
    """Share of labelled pixels per class (the ignore index left out)."""
    counts = np.bincount(masks.ravel(), minlength=256)[: len(CLASSES)].astype(np.float64)
    total = counts.sum()
    return {c: float(counts[i] / total) if total else 0.0 for i, c in enumerate(CLASSES)}


def build_patches(
    root: str | Path, splits: dict[str, list[int]], scale: float, size: int, stride: int
) -> tuple[dict[str, dict[str, np.ndarray]], dict]:
    """Cut every tile of the splits.

    Returns:
        ``{split: {"x": (N, size, size, 3) uint8, "y": (N, size, size) uint8, "tile": (N,)}}``
        and stats: patches and class frequencies per split, ignored (``#000000`` or unknown
        colour) mask pixels counted before scaling.
    """
    samples = dubai.split_samples(root, splits)
    parts = {s: {"x": [], "y": [], "tile": []} for s in splits}
    counts: Counter = Counter()
    for split, sample in tqdm(samples, desc="cutting tiles", mininterval=1.0):
        image, mask = rescale(*dubai.read_pair(sample, counts), scale)
        xs, ms = cut(image, mask, size, stride)
        part = parts[split]
        part["x"] += xs
        part["y"] += ms
        part["tile"] += [sample.tile] * len(xs)
    arrays = {
        s: {
            "x": np.stack(p["x"]),
            "y": np.stack(p["y"]),
            "tile": np.asarray(p["tile"], np.int64),
        }
        for s, p in parts.items()
    }
    stats = {
        "splits": {
            s: {
                "patches": len(a["y"]),
                "tiles": splits[s],
                "class_frequency": class_frequencies(a["y"]),
            }
            for s, a in arrays.items()
        },
        "ignored_mask_pixels": int(counts["ignored"]),
    }
    return arrays, stats
