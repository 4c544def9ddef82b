"""Homographies for the ``match`` benchmark: estimation, ground truth, corner error and AUC.

Coordinates are ``(x, y)`` pixels with the centre of the top-left pixel at ``(0, 0)``, the
convention of OpenCV and of the matchers in :mod:`geolab.match.matchers`. A homography ``H`` maps
a point of image 0 to image 1: ``x1 ~ H @ [x0, y0, 1]``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import cv2
import numpy as np

#: ``method`` names of :func:`estimate_homography` and the OpenCV flags they select.
METHODS = {"usac_magsac": cv2.USAC_MAGSAC, "ransac": cv2.RANSAC}


class CornerError(NamedTuple):
    """Reprojection distance of the four image corners, in pixels (``inf`` when no estimate)."""

    mean: float
    max: float


def _as_points(kpts: np.ndarray, name: str) -> np.ndarray:
    pts = np.asarray(kpts, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"{name} must have shape (N, 2), got {pts.shape}")
    return pts


def estimate_homography(
    kpts0: np.ndarray,
    kpts1: np.ndarray,
    method: str = "usac_magsac",
    threshold: float = 3.0,
    confidence: float = 0.9999,
    max_iters: int = 10_000,
) -> tuple[np.ndarray | None, np.ndarray]:
    """Robustly fit the homography that maps ``kpts0`` onto ``kpts1``.

    Args:
        kpts0: matched keypoints of image 0, ``(N, 2)`` pixels.
        kpts1: the corresponding keypoints of image 1, ``(N, 2)`` pixels.
        method: ``"usac_magsac"`` (OpenCV's MAGSAC++) or ``"ransac"``.
        threshold: inlier reprojection threshold in pixels.
        confidence: the robust estimator's confidence.
        max_iters: the most iterations the estimator may run.

    Returns:
        ``(H, inliers)``: ``H`` is a float64 ``(3, 3)`` with ``H[2, 2] == 1``, or None when there
        are fewer than 4 matches or the estimator finds no model; ``inliers`` is a bool ``(N,)``.

    Raises:
        KeyError: unknown ``method`` (lists the valid ones).
        ValueError: ``kpts0`` and ``kpts1`` differ in shape or are not ``(N, 2)``.
    """
    if method not in METHODS:
        raise KeyError(f"unknown homography method '{method}'; valid: {', '.join(METHODS)}")
    pts0, pts1 = _as_points(kpts0, "kpts0"), _as_points(kpts1, "kpts1")
    if pts0.shape != pts1.shape:
        raise ValueError(f"kpts0 {pts0.shape} and kpts1 {pts1.shape} differ in shape")
    inliers = np.zeros(len(pts0), dtype=bool)
    if len(pts0) < 4:
        return None, inliers
    H, mask = cv2.findHomography(
        pts0, pts1, METHODS[method], threshold, maxIters=max_iters, confidence=confidence
    )
    if H is None or mask is None or not np.all(np.isfinite(H)) or abs(H[2, 2]) < 1e-12:
        return None, inliers
    return H / H[2, 2], mask.ravel().astype(bool)


def project(points: np.ndarray, H: np.ndarray) -> np.ndarray:
    """Apply a homography to ``(N, 2)`` points; points sent to infinity come back as ``inf``."""
    pts = _as_points(points, "points")
    hom = np.concatenate([pts, np.ones((len(pts), 1))], axis=1) @ np.asarray(H, np.float64).T
    w = hom[:, 2:]
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(np.abs(w) > 1e-12, hom[:, :2] / w, np.inf)
    return out


def image_corners(width: int, height: int) -> np.ndarray:
    """The centres of the four corner pixels, ``(4, 2)``, clockwise from the top-left."""
    return np.array(
        [[0, 0], [width - 1, 0], [width - 1, height - 1], [0, height - 1]], dtype=np.float64
    )


def corner_error(
    H_est: np.ndarray | None, H_true: np.ndarray, width: int, height: int
) -> CornerError:
    """Mean and max distance between the image corners mapped by the estimate and by the truth.

    This is the HPatches homography protocol: the four corners of image 0 (``width`` x ``height``)
    are warped by both homographies and compared in image 1.

    Args:
        H_est: the estimated ``(3, 3)`` homography, or None when estimation failed.
        H_true: the ground-truth ``(3, 3)`` homography.
        width: width of image 0 in pixels.
        height: height of image 0 in pixels.

    Returns:
        ``CornerError(mean, max)`` in pixels; both are ``inf`` for a None or degenerate estimate.
    """
    if H_est is None:
        return CornerError(math.inf, math.inf)
    corners = image_corners(width, height)
    dist = np.linalg.norm(project(corners, H_est) - project(corners, H_true), axis=1)
    if not np.all(np.isfinite(dist)):
        return CornerError(math.inf, math.inf)
    return CornerError(float(dist.mean()), float(dist.max()))


def degenerate(H: np.ndarray | None, width: int, height: int) -> str | None:
    """Why a homography cannot be a view of the same ground, or None when it can.

    The four corners of image 0 must map to finite points forming a convex quadrilateral with
    the same orientation (no fold-over, no mirror), and the area must not shrink or grow
    more than 100-fold.
    """
    if H is None:
        return "no homography"
    q = project(image_corners(width, height), H)
    if not np.all(np.isfinite(q)):
        return "degenerate homography: a corner maps to infinity"
    edges = np.roll(q, -1, axis=0) - q
    cross = (
        edges[:, 0] * np.roll(edges, -1, axis=0)[:, 1]
        - edges[:, 1] * np.roll(edges, -1, axis=0)[:, 0]
    )
    if not (np.all(cross > 0) or np.all(cross < 0)):
        return "degenerate homography: the corners fold over"
    src = image_corners(width, height)
    sign = np.sign(_area(src)) * np.sign(_area(q))
    ratio = abs(_area(q)) / max(abs(_area(src)), 1e-9)
    if sign < 0:
        return "degenerate homography: mirrored"
    if not 0.01 <= ratio <= 100:
        return f"degenerate homography: area scaled by {ratio:.3g}"
    return None


def _area(poly: np.ndarray) -> float:
    x, y = poly[:, 0], poly[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def auc(errors: Iterable[float], thresholds: Sequence[float] = (1, 3, 5, 10)) -> dict[float, float]:
    """Area under the cumulative error curve up to each threshold, divided by the threshold.

    The curve is the recall (fraction of pairs with an error at most ``e``) against ``e``, linear
    between the sorted errors and starting at ``(0, 0)``, as in the pose and homography AUC of
    SuperGlue and LightGlue. Failures count with an infinite error (NaN is taken as ``inf``).

    Args:
        errors: one error per pair (e.g. mean corner errors in pixels).
        thresholds: the upper limits of integration.

    Returns:
        ``{threshold: auc}`` with values in ``[0, 1]``; 0 for every threshold when ``errors`` is
        empty.
    """
    errs = np.sort(np.nan_to_num(np.asarray(list(errors), np.float64), nan=np.inf))
    if errs.size == 0:
        return {t: 0.0 for t in thresholds}
    recall = np.arange(1, errs.size + 1) / errs.size
    errs, recall = np.r_[0.0, errs], np.r_[0.0, recall]
    out = {}
    for t in thresholds:
        last = int(np.searchsorted(errs, t))
        x = np.r_[errs[:last], t]
        y = np.r_[recall[:last], recall[last - 1]]
        out[t] = float(np.trapezoid(y, x) / t)
    return out


def homography_from_params(
    width: int,
    height: int,
    rotation_deg: float = 0.0,
    scale: float = 1.0,
    shear: float = 0.0,
    perspective: tuple[float, float] = (0.0, 0.0),
    translation: tuple[float, float] = (0.0, 0.0),
) -> np.ndarray:
    """A homography about the image centre, from its parts.

    The parts act in coordinates centred on the image and divided by half its longest side
    (so ``shear`` and ``perspective`` are unitless): shear, then scale, then rotation, then the
    projective terms, then ``translation`` in pixels.

    Args:
        width: image width in pixels.
        height: image height in pixels.
        rotation_deg: rotation in degrees (counter-clockwise on screen is negative, as y is down).
        scale: isotropic scale factor.
        shear: horizontal shear factor.
        perspective: the projective terms ``(px, py)``: the last row is ``[px, py, 1]``.
        translation: shift in pixels after the rest.

    Returns:
        A float64 ``(3, 3)`` homography with ``H[2, 2] == 1``.
    """
    half = max(width, height) / 2.0
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    to_norm = np.array([[1 / half, 0, -cx / half], [0, 1 / half, -cy / half], [0, 0, 1]])
    a = math.radians(rotation_deg)
    rot = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    sh = np.array([[1, shear, 0], [0, 1, 0], [0, 0, 1]])
    proj = np.array([[1, 0, 0], [0, 1, 0], [perspective[0], perspective[1], 1]])
    shift = np.array([[1, 0, translation[0]], [0, 1, translation[1]], [0, 0, 1]])
    H = shift @ np.linalg.inv(to_norm) @ proj @ rot @ np.diag([scale, scale, 1]) @ sh @ to_norm
    return H / H[2, 2]


def random_homography(
    rng: np.random.Generator,
    width: int,
    height: int,
    max_rotation_deg: float = 30.0,
    scale_range: tuple[float, float] = (0.8, 1.25),
    max_shear: float = 0.1,
    max_perspective: float = 0.1,
) -> np.ndarray:
    """A random homography about the image centre (see :func:`homography_from_params`).

    Rotation, shear and each projective term are uniform in ``[-max, max]``; the scale is
    log-uniform in ``scale_range``.

    Args:
        rng: the random generator (``np.random.default_rng(seed)``).
        width: image width in pixels.
        height: image height in pixels.
        max_rotation_deg: largest absolute rotation in degrees.
        scale_range: ``(low, high)`` scale factors, both positive.
        max_shear: largest absolute shear factor.
        max_perspective: largest absolute projective term (unitless, see above).

    Returns:
        A float64 ``(3, 3)`` homography with ``H[2, 2] == 1``.
    """
    low, high = scale_range
    if not 0 < low <= high:
        raise ValueError(f"scale_range must be 0 < low <= high, got {scale_range}")
    return homography_from_params(
        width,
        height,
        rotation_deg=float(rng.uniform(-max_rotation_deg, max_rotation_deg)),
        scale=float(math.exp(rng.uniform(math.log(low), math.log(high)))),
        shear=float(rng.uniform(-max_shear, max_shear)),
        perspective=tuple(float(v) for v in rng.uniform(-max_perspective, max_perspective, 2)),
    )


def warp(
    image: np.ndarray, H: np.ndarray, out_size: tuple[int, int] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Warp an image by ``H`` (bilinear, black outside) and say which pixels hold image content.

    Args:
        image: ``(H, W)`` or ``(H, W, C)`` array.
        H: the ``(3, 3)`` homography from ``image`` to the output.
        out_size: ``(width, height)`` of the output; the input's size when None.

    Returns:
        ``(warped, valid)``: the warped image (same dtype and channels) and a bool ``(h, w)`` mask
        of the output pixels that come from inside the input.
    """
    h, w = image.shape[:2]
    size = (w, h) if out_size is None else (int(out_size[0]), int(out_size[1]))
    M = np.asarray(H, np.float64)
    warped = cv2.warpPerspective(
        image, M, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
    )
    ones = np.ones((h, w), np.uint8)
    valid = cv2.warpPerspective(ones, M, size, flags=cv2.INTER_NEAREST, borderValue=0)
    return warped, valid.astype(bool)
