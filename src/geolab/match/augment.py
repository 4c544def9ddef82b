"""Seasonal stress for matchers: colour jitter, haze and snow on grey satellite images.

Each function takes a uint8 image and a seeded ``numpy`` Generator and returns a new uint8
image of the same shape; strengths are in ``[0, 1]`` (0 leaves the image unchanged).
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np


@dataclasses.dataclass
class AugmentParams:
    """Strengths of the simulated seasonal changes (the ``match.augment`` keys)."""

    jitter: float = 0.3
    haze: float = 0.4
    snow: float = 0.3


def _smooth_noise(shape: tuple[int, int], rng: np.random.Generator, cells: int) -> np.ndarray:
    """Smooth random field in ``[0, 1]``: coarse noise upsampled bicubically."""
    coarse = rng.random((cells, cells)).astype(np.float32)
    field = cv2.resize(coarse, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)
    field -= field.min()
    return field / max(float(field.max()), 1e-6)


def jitter(image: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """Random brightness, contrast and gamma."""
    x = image.astype(np.float32) / 255
    b, c, g = 1 + strength * (2 * rng.random(3) - 1)
    x = np.clip((x - x.mean()) * c + x.mean() * b, 0, 1) ** g
    return (x * 255).round().astype(np.uint8)


def haze(image: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """Patchy haze: blend towards bright grey with a smooth random opacity, slightly blurred."""
    x = image.astype(np.float32)
    alpha = strength * _smooth_noise(image.shape[:2], rng, 4)
    if image.ndim == 3:
        alpha = alpha[..., None]
    blurred = cv2.GaussianBlur(x, (0, 0), 1 + 2 * strength)
    out = (1 - alpha) * blurred + alpha * 225
    return np.clip(out, 0, 255).round().astype(np.uint8)


def snow(image: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """Snow cover: the smoothest, brightest-prone areas turn near white (texture mostly lost)."""
    x = image.astype(np.float32)
    field = _smooth_noise(image.shape[:2], rng, 6)
    cover = np.clip((field - (1 - strength)) / 0.1, 0, 1)
    if image.ndim == 3:
        cover = cover[..., None]
    white = 235 + 0.1 * (x - x.mean())
    return np.clip((1 - cover) * x + cover * white, 0, 255).round().astype(np.uint8)


def seasonal(image: np.ndarray, rng: np.random.Generator, p: AugmentParams) -> np.ndarray:
    """Apply jitter, haze and snow in turn (each skipped when its strength is 0)."""
    out = image
    for fn, strength in ((jitter, p.jitter), (haze, p.haze), (snow, p.snow)):
        if strength > 0:
            out = fn(out, rng, strength)
    return out
