"""Scoring matchers on pairs with a known homography (the HPatches protocol).

Per pair: matches, inliers of the robust fit, inlier ratio, the mean corner error of the
estimated homography (four image corners projected by the estimate and by the truth) and the
time. Per matcher and pair category: AUC of the corner error up to 1/3/5/10 px, % of pairs
solved (corner error below ``solved_px``), mean inlier ratio, matches and ms per pair.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from geolab.match.geometry import (
    auc,
    corner_error,
    degenerate,
    estimate_homography,
    homography_from_params,
    warp,
)

log = logging.getLogger(__name__)
THRESHOLDS = (1, 3, 5, 10)


@dataclasses.dataclass
class RobustParams:
    """The robust homography fit (``match.ransac_*`` keys)."""

    method: str = "usac_magsac"
    threshold: float = 3.0
    confidence: float = 0.9999
    max_iters: int = 10_000


def keep_valid(
    kpts0: np.ndarray, kpts1: np.ndarray, valid0: np.ndarray | None, valid1: np.ndarray | None
) -> np.ndarray:
    """Boolean mask of matches whose two keypoints both lie on usable pixels."""
    keep = np.ones(len(kpts0), bool)
    for kpts, valid in ((kpts0, valid0), (kpts1, valid1)):
        if valid is None or not len(kpts):
            continue
        h, w = valid.shape
        x = np.clip(np.round(kpts[:, 0]).astype(int), 0, w - 1)
        y = np.clip(np.round(kpts[:, 1]).astype(int), 0, h - 1)
        keep &= valid[y, x]
    return keep


def score_pair(
    matcher: Callable[[np.ndarray, np.ndarray], dict[str, Any]],
    pair: Mapping[str, Any],
    robust: RobustParams,
) -> dict[str, Any]:
    """Match one pair, fit a homography, compare it with the truth.

    Returns:
        ``matches``, ``inliers``, ``inlier_ratio``, ``corner_error`` (mean, px; ``inf`` when no
        homography), ``corner_error_max``, ``ms`` and, for figures, ``kpts0``, ``kpts1``,
        ``inlier_mask``.
    """
    out = matcher(pair["image0"], pair["image1"])
    keep = keep_valid(out["kpts0"], out["kpts1"], pair.get("valid0"), pair.get("valid1"))
    k0, k1 = out["kpts0"][keep], out["kpts1"][keep]
    H, inliers = estimate_homography(
        k0, k1, robust.method, robust.threshold, robust.confidence, robust.max_iters
    )
    h, w = pair["image0"].shape[:2]
    status = fit_status(pair, len(out["kpts0"]), len(k0), H, w, h)
    err = corner_error(H if status == "fitted" else None, pair["H"], w, h)
    n_in = int(inliers.sum()) if inliers is not None else 0
    return {
        "status": status,
        "matches": len(k0),
        "inliers": n_in,
        "inlier_ratio": n_in / len(k0) if len(k0) else 0.0,
        "corner_error": float(err.mean),
        "corner_error_max": float(err.max),
        "ms": 1000 * out["time_s"],
        "kpts0": k0,
        "kpts1": k1,
        "inlier_mask": inliers if inliers is not None else np.zeros(len(k0), bool),
    }


def fit_status(
    pair: Mapping[str, Any], raw: int, kept: int, H: np.ndarray | None, w: int, h: int
) -> str:
    """``fitted``, or why no usable homography came out (a pair is then scored as unsolved)."""
    for key in ("valid0", "valid1"):
        valid = pair.get(key)
        if valid is not None and not np.asarray(valid).any():
            return f"no usable pixels in image {key[-1]} (cloud or no-data)"
    if kept < 4:
        dropped = f", {raw - kept} on cloud/no-data dropped" if raw > kept else ""
        return f"too few matches ({kept}{dropped})"
    return degenerate(H, w, h) or "fitted"


def summarise(rows: Sequence[Mapping[str, Any]], solved_px: float) -> dict[str, float]:
    """AUC@1/3/5/10, % solved, mean inlier ratio / matches / ms over some scored pairs."""
    errors = [r["corner_error"] for r in rows]
    aucs = auc(errors, THRESHOLDS)
    out = {f"auc@{t}px": float(aucs[t]) for t in THRESHOLDS}
    out["solved_pct"] = 100 * float(np.mean([e < solved_px for e in errors])) if rows else 0.0
    for key in ("inlier_ratio", "matches", "inliers", "ms"):
        out[key] = float(np.mean([r[key] for r in rows])) if rows else 0.0
    med = float(np.median(errors)) if rows else math.inf
    out["median_corner_error"] = med if math.isfinite(med) else None
    out["pairs"] = len(rows)
    return out


def summary_table(
    per_pair: Mapping[str, Sequence[Mapping[str, Any]]],
    categories: Mapping[str, str],
    solved_px: float,
) -> dict[str, dict[str, dict[str, float]]]:
    """``{matcher: {category | "all": summary}}`` from ``{matcher: rows}`` (rows have ``id``)."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for name, rows in per_pair.items():
        cats = sorted({categories[r["id"]] for r in rows})
        out[name] = {c: summarise([r for r in rows if categories[r["id"]] == c], solved_px)
                     for c in cats}  # fmt: skip
        out[name]["all"] = summarise(rows, solved_px)
    return out


def rotate_pair(pair: Mapping[str, Any], angle: float) -> dict[str, Any]:
    """The pair with image1 replaced by image0 of the same place rotated by ``angle`` degrees.

    Uses the pair's unwarped second date when given (``image1_raw``), else image0 itself.
    """
    h, w = pair["image0"].shape[:2]
    H = homography_from_params(w, h, rotation_deg=angle)
    source = pair.get("image1_raw", pair["image0"])
    image1, inside = warp(source, H)
    raw_valid = np.asarray(pair.get("valid1_raw", np.ones_like(inside)), np.uint8)
    valid1 = inside & warp(raw_valid, H)[0].astype(bool)
    return {**pair, "image1": image1, "valid1": valid1, "H": H}


class RotationSearch:
    """Test-time rotation search over 0/90/180/270 degrees.

    Matches image0 against image1 turned by each angle and keeps the turn with the most matches
    (a cure for LightGlue's sensitivity to rotations beyond ~45 degrees).
    """

    def __init__(self, matcher: Callable[[np.ndarray, np.ndarray], dict[str, Any]]):
        self.matcher = matcher

    def __call__(self, img0: np.ndarray, img1: np.ndarray) -> dict[str, Any]:  # noqa: D102
        best, total = None, 0.0
        h, w = img1.shape[:2]
        for k in range(4):
            out = self.matcher(img0, np.ascontiguousarray(np.rot90(img1, k)))
            total += out["time_s"]
            if best is None or len(out["kpts0"]) > len(best[0]["kpts0"]):
                best = (out, k)
        assert best is not None
        out, k = best
        out["kpts1"] = _unrotate(out["kpts1"], k, w, h)
        out["time_s"] = total
        out["rotation_k"] = k
        return out


def _unrotate(kpts: np.ndarray, k: int, w: int, h: int) -> np.ndarray:
    """Map points of ``np.rot90(img, k)`` (counter-clockwise) back to ``img`` (``w`` x ``h``).

    One turn sends the pixel ``(x, y)`` of an image of width ``w`` to ``(y, w - 1 - x)``; the
    turns are undone last first, each with the width of the image before that turn.
    """
    pts = kpts.astype(np.float64).copy()
    for j in range(k, 0, -1):
        width = w if (j - 1) % 2 == 0 else h
        x, y = pts[:, 0].copy(), pts[:, 1].copy()
        pts[:, 0], pts[:, 1] = (width - 1) - y, x
    return pts.astype(np.float32)
