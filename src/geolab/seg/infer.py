"""Sliding-window inference of a segmentation model over a whole tile of any size.

The tile is resized by each inference scale (the checkpoint's ``infer_scales``, else its
training ``scale``), padded by reflection, cut into overlapping windows whose sides are multiples
of the model's ``divisor``, and the windows' softmax probabilities are blended with a smooth
weight (a trapezoid that ramps up over the overlap and is never zero, so every pixel - image
borders included - gets a well-defined average). With several scales the probability maps are
resized to the largest one and averaged. The argmax is then resized back to the tile's own size
(nearest neighbour).

Checkpoint contract (``blob["extra"]``): ``mean``, ``std`` (normalisation ``(rgb / 255 - mean)
/ std``; scalars or one value per channel), ``scale`` (the resize factor the model was trained
at), ``divisor`` (input sides must be multiples of it) and, optionally, ``infer_scales``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

from geolab.datasets import dubai

_REQUIRED = ("mean", "std", "scale", "divisor")


def _check_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        shape = getattr(image, "shape", type(image).__name__)
        raise ValueError(f"expected an RGB image (H, W, 3), got shape {shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {image.dtype}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"the image is empty: shape {image.shape}")


def _check_extra(extra: Mapping[str, Any]) -> None:
    missing = [k for k in _REQUIRED if k not in extra]
    if missing:
        raise ValueError(f"checkpoint extra lacks {missing} (needs {list(_REQUIRED)})")
    if not 0 < float(extra["scale"]) <= 1 or int(extra["divisor"]) < 1:
        raise ValueError(f"bad scale/divisor in checkpoint extra: {extra}")


def infer_scales(extra: Mapping[str, Any]) -> list[float]:
    """The scales a checkpoint predicts at: its ``infer_scales``, else its training ``scale``."""
    return [float(x) for x in (extra.get("infer_scales") or [extra["scale"]])]


def check_scales(scales: Sequence[float]) -> list[float]:
    """``scales`` as floats, checked to be a non-empty list of values in (0, 1].

    Raises:
        ValueError: an empty list or a value outside (0, 1] (named).
    """
    scales = [float(x) for x in scales]
    if not scales:
        raise ValueError("scales is empty: give at least one scale to predict at")
    bad = [x for x in scales if not 0 < x <= 1]
    if bad:
        raise ValueError(f"inference scales must be in (0, 1], got {bad}")
    return scales


def window_weight(length: int, ramp: int) -> np.ndarray:
    """1-D blending weight of a window side: linear ramps of ``ramp`` pixels, flat between.

    Values are ``(i + 0.5) / ramp`` near the edges (never 0) and 1 in the middle.
    """
    i = np.arange(length, dtype=np.float32)
    if ramp <= 0:
        return np.ones(length, np.float32)
    return np.minimum(1.0, np.minimum(i + 0.5, length - i - 0.5) / ramp).astype(np.float32)


def _axis_plan(length: int, window: int, overlap: int, divisor: int) -> tuple[int, int, list[int]]:
    """Padding and window origins along one axis.

    The axis is reflected by a margin of ``overlap // 2`` on both sides (so the tile's borders
    see context, as the interior does), then either covered by one window rounded up to the
    divisor (short axes) or by ``window``-sized windows every ``window - overlap`` pixels, the
    last one flush with the end.

    Returns:
        ``(side, padded_length, origins)``; the tile starts at ``overlap // 2`` in padded
        coordinates.
    """
    padded = length + 2 * (overlap // 2)
    if padded <= window:
        side = math.ceil(padded / divisor) * divisor
        return side, side, [0]
    stride = window - overlap
    origins = list(range(0, padded - window + 1, stride))
    if origins[-1] != padded - window:
        origins.append(padded - window)
    return window, padded, origins


def _reflect_pad(image: np.ndarray, top: int, bottom: int, left: int, right: int) -> np.ndarray:
    """Reflect-pad (edge pixel not repeated) by any amount, even beyond the image's size."""
    return np.pad(image, ((top, bottom), (left, right), (0, 0)), mode="reflect")


def _rescale(image: np.ndarray, scale: float) -> np.ndarray:
    if scale == 1:
        return image
    h, w = image.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def _batches(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def predict_proba_tile(
    model: nn.Module,
    image: np.ndarray,
    extra: Mapping[str, Any],
    window: int = 512,
    overlap: int = 128,
    batch_size: int = 4,
    device: torch.device | str = "cpu",
    tta: bool = False,
) -> np.ndarray:
    """Class probabilities of a whole tile, at the model's resolution (after ``scale``).

    Args:
        model: maps ``(B, 3, H, W)`` normalised images to ``(B, C, H, W)`` logits; it must be on
            ``device``. It is run in eval mode (its previous mode is restored afterwards).
        image: ``(H, W, 3)`` uint8 RGB, any size.
        extra: the checkpoint's ``extra`` (``mean``, ``std``, ``scale``, ``divisor``).
        window: window side in model pixels (after scaling); rounded down to a multiple of the
            divisor (at least the divisor). Images smaller than a window get one smaller window.
        overlap: pixels shared by neighbouring windows (``0 <= overlap < window``).
        batch_size: windows per forward pass.
        device: where the model runs.
        tta: test-time augmentation: average the probabilities of the window and its
            horizontal, vertical and double flips (4x the compute).

    Returns:
        ``(C, h, w)`` float32 probabilities, ``(h, w)`` being the image's size times ``scale``
        (rounded, at least 1).

    Raises:
        ValueError: not an ``(H, W, 3)`` uint8 image, bad window/overlap, incomplete ``extra``.
    """
    _check_image(image)
    _check_extra(extra)
    divisor = int(extra["divisor"])
    window = max(divisor, window // divisor * divisor)
    if not 0 <= overlap < window or batch_size < 1:
        raise ValueError(
            f"need 0 <= overlap < window and batch_size >= 1, got overlap={overlap}, "
            f"window={window} (rounded to a multiple of {divisor}), batch_size={batch_size}"
        )
    device = torch.device(device)
    small = _rescale(image, float(extra["scale"]))
    h, w = small.shape[:2]
    margin = overlap // 2
    side_h, len_h, ys = _axis_plan(h, window, overlap, divisor)
    side_w, len_w, xs = _axis_plan(w, window, overlap, divisor)
    padded = _reflect_pad(small, margin, len_h - h - margin, margin, len_w - w - margin)

    weight = np.outer(window_weight(side_h, overlap), window_weight(side_w, overlap))
    weight_t = torch.from_numpy(weight).to(device)
    mean = torch.as_tensor(extra["mean"], dtype=torch.float32, device=device).reshape(-1, 1, 1)
    std = torch.as_tensor(extra["std"], dtype=torch.float32, device=device).reshape(-1, 1, 1)
    acc: np.ndarray | None = None
    norm = np.zeros((len_h, len_w), np.float32)
    origins = [(y, x) for y in ys for x in xs]
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for batch in _batches(origins, batch_size):
                crops = np.stack([padded[y : y + side_h, x : x + side_w] for y, x in batch])
                x_t = torch.from_numpy(crops).to(device).permute(0, 3, 1, 2).float()
                x_t = (x_t / 255.0 - mean) / std
                prob = (_probabilities(model, x_t, tta) * weight_t).cpu().numpy()
                if acc is None:
                    acc = np.zeros((prob.shape[1], len_h, len_w), np.float32)
                for (y, x), p in zip(batch, prob, strict=True):
                    acc[:, y : y + side_h, x : x + side_w] += p
                    norm[y : y + side_h, x : x + side_w] += weight
    finally:
        model.train(was_training)
    assert acc is not None
    acc = acc[:, margin : margin + h, margin : margin + w]
    return acc / norm[margin : margin + h, margin : margin + w]


def _probabilities(model: nn.Module, x: torch.Tensor, tta: bool) -> torch.Tensor:
    """Softmax of the model, averaged over the flips of ``x`` (flipped back) when ``tta``."""
    if not tta:
        return torch.softmax(model(x).float(), dim=1)
    total = torch.zeros(())
    for dims in ((), (3,), (2,), (2, 3)):
        xf = x.flip(dims) if dims else x
        p = torch.softmax(model(xf).float(), dim=1)
        total = total + (p.flip(dims) if dims else p)
    return total / 4


def predict_tile(
    model: nn.Module,
    image: np.ndarray,
    extra: Mapping[str, Any],
    window: int = 512,
    overlap: int = 128,
    batch_size: int = 4,
    device: torch.device | str = "cpu",
    tta: bool = False,
    scales: Sequence[float] | None = None,
) -> np.ndarray:
    """Class ids of a whole tile of any size, at the tile's own resolution.

    Args: as :func:`predict_proba_tile`, plus
        scales: predict at each of these scales and average the probabilities (multi-scale
            inference; each map is resized, bilinearly, to the largest scale's size before
            averaging). Default: the checkpoint's ``infer_scales``, else its ``scale``.

    Returns:
        ``(H, W)`` uint8 class ids (indices into the checkpoint's ``classes``).
    """
    _check_extra(extra)
    scales = check_scales(infer_scales(extra) if scales is None else scales)
    prob: np.ndarray | None = None
    for scale in sorted(scales, reverse=True):
        p = predict_proba_tile(
            model, image, {**extra, "scale": scale}, window, overlap, batch_size, device, tta
        )
        if prob is None:
            prob = p
        else:
            size = (prob.shape[2], prob.shape[1])
            prob += np.stack([cv2.resize(c, size, interpolation=cv2.INTER_LINEAR) for c in p])
    assert prob is not None
    pred = prob.argmax(0).astype(np.uint8)
    h, w = image.shape[:2]
    if pred.shape != (h, w):
        pred = cv2.resize(pred, (w, h), interpolation=cv2.INTER_NEAREST)
    return pred


def palette(classes: tuple[str, ...] | list[str] = dubai.CLASSES) -> np.ndarray:
    """A ``(256, 3)`` uint8 lookup table: class id -> dataset colour, anything else black."""
    lut = np.zeros((256, 3), np.uint8)
    for i, name in enumerate(classes):
        lut[i] = dubai.COLOURS[name]
    return lut


def colour_mask(
    mask: np.ndarray, classes: tuple[str, ...] | list[str] = dubai.CLASSES
) -> np.ndarray:
    """Paint class ids ``(H, W)`` with the dataset colours (ignore and unknown ids: black)."""
    return palette(classes)[np.asarray(mask, np.uint8)]


def blend(
    image: np.ndarray,
    mask: np.ndarray,
    alpha: float = 0.5,
    classes: tuple[str, ...] | list[str] = dubai.CLASSES,
) -> np.ndarray:
    """The image blended with its colour mask: ``(1 - alpha) * image + alpha * colours``."""
    colours = colour_mask(mask, classes).astype(np.float32)
    out = (1 - alpha) * image.astype(np.float32) + alpha * colours
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
