"""Land-cover patches: cut from the Dubai tiles, labelled by their majority class."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from geolab.datasets import dubai

log = logging.getLogger(__name__)

#: The five real land-cover classes (``unlabeled`` is not a class for ``cls``).
CLASSES: tuple[str, ...] = dubai.CLASSES[:5]
SPLITS = ("train", "val", "test")
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def patch_label(mask: np.ndarray, purity: float) -> int | None:
    """The majority real class of a mask patch, or None when it is not pure enough.

    Args:
        mask: ``(h, w)`` class ids; ``unlabeled`` and the ignore index do not vote.
        purity: least share of the voting pixels the majority class must have.
    """
    votes = np.bincount(mask.ravel(), minlength=256)[: len(CLASSES)]
    total = votes.sum()
    if total < 0.5 * mask.size:
        return None
    best = int(votes.argmax())
    return best if votes[best] >= purity * total else None


def cut_patches(
    image: np.ndarray, mask: np.ndarray, patch_size: int, stride: int, resize: int, purity: float
) -> tuple[list[np.ndarray], list[int]]:
    """Cut one tile into labelled patches.

    Returns:
        Patches ``(resize, resize, 3)`` uint8 and their labels.
    """
    patches, labels = [], []
    h, w = mask.shape
    for y in range(0, h - patch_size + 1, stride):
        for x in range(0, w - patch_size + 1, stride):
            label = patch_label(mask[y : y + patch_size, x : x + patch_size], purity)
            if label is None:
                continue
            crop = image[y : y + patch_size, x : x + patch_size]
            patches.append(cv2.resize(crop, (resize, resize), interpolation=cv2.INTER_AREA))
            labels.append(label)
    return patches, labels


def build_patch_dataset(
    root: str | Path,
    splits: dict[str, list[int]],
    patch_size: int,
    stride: int,
    resize: int,
    purity: float,
) -> tuple[dict[str, dict[str, np.ndarray]], dict]:
    """Cut every tile of the splits into patches.

    Args:
        root: ``data/dubai``.
        splits: split name -> tile numbers.
        patch_size: see :class:`geolab.cls.config.ClsParams`.
        stride: see there.
        resize: see there.
        purity: see there.

    Returns:
        ``{split: {"x": (N, resize, resize, 3) uint8, "y": (N,) int64, "tile": (N,)}}`` and
        stats (class counts per split, ignored pixels).
    """
    samples = dubai.split_samples(root, splits)
    out = {s: {"x": [], "y": [], "tile": []} for s in splits}
    counts: Counter = Counter()
    for split, sample in tqdm(samples, desc="cutting patches", mininterval=1.0):
        image, mask = dubai.read_pair(sample, counts)
        patches, labels = cut_patches(image, mask, patch_size, stride, resize, purity)
        part = out[split]
        part["x"] += patches
        part["y"] += labels
        part["tile"] += [sample.tile] * len(labels)
    arrays = {s: _stack(part, resize) for s, part in out.items()}
    return arrays, _stats(arrays, counts)


def _stack(part: dict[str, list], resize: int) -> dict[str, np.ndarray]:
    x = np.stack(part["x"]) if part["x"] else np.zeros((0, resize, resize, 3), np.uint8)
    return {
        "x": x,
        "y": np.asarray(part["y"], dtype=np.int64),
        "tile": np.asarray(part["tile"], dtype=np.int64),
    }


def _stats(arrays: dict[str, dict[str, np.ndarray]], counts: Counter) -> dict:
    per_split = {
        split: {
            "patches": int(len(a["y"])),
            "classes": {c: int((a["y"] == i).sum()) for i, c in enumerate(CLASSES)},
        }
        for split, a in arrays.items()
    }
    return {"splits": per_split, "ignored_mask_pixels": int(counts["ignored"])}


class PatchDataset(Dataset):
    """Normalised patches as ``(3, H, W)`` float tensors, with optional flip/rot90 augmentation."""

    def __init__(self, x: np.ndarray, y: np.ndarray, augment: bool = False) -> None:
        self.x = torch.from_numpy((x.astype(np.float32) / 255.0 - MEAN) / STD).permute(0, 3, 1, 2)
        self.y = torch.from_numpy(y)
        self.augment = augment

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.x[i]
        if self.augment:
            k = int(torch.randint(4, ()))
            x = torch.rot90(x, k, dims=(1, 2))
            if torch.rand(()) < 0.5:
                x = x.flip(2)
        return x, self.y[i]
