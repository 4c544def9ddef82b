"""Figures of the ``match`` benchmark: match lines, corner-error curves, the rotation sweep."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

MAX_LINES = 300


def match_lines(
    pair: Mapping[str, Any], scored: Mapping[str, Any], title: str, ax: Any, seed: int = 0
) -> None:
    """Draw two images side by side with match lines: inliers green, outliers red.

    At most :data:`MAX_LINES` lines (a seeded sample) so the picture stays readable.
    """
    a, b = pair["image0"], pair["image1"]
    h = max(a.shape[0], b.shape[0])
    canvas = np.zeros((h, a.shape[1] + b.shape[1]), np.uint8)
    canvas[: a.shape[0], : a.shape[1]] = a
    canvas[: b.shape[0], a.shape[1] :] = b
    ax.imshow(canvas, cmap="gray", vmin=0, vmax=255)
    k0, k1, inl = scored["kpts0"], scored["kpts1"], np.asarray(scored["inlier_mask"], bool)
    idx = np.arange(len(k0))
    if len(idx) > MAX_LINES:
        idx = np.sort(np.random.default_rng(seed).choice(idx, MAX_LINES, replace=False))
    for i in idx:
        colour = "lime" if inl[i] else "red"
        ax.plot(
            [k0[i, 0], k1[i, 0] + a.shape[1]],
            [k0[i, 1], k1[i, 1]],
            "-",
            c=colour,
            lw=0.5,
            alpha=0.7,
        )
    ax.set_title(
        f"{title}\n{scored['inliers']}/{scored['matches']} inliers, "
        f"corner error {scored['corner_error']:.2f} px",
        fontsize=8,
    )
    ax.set_axis_off()


def match_grid(
    panels: Sequence[tuple[Mapping[str, Any], Mapping[str, Any], str]], cols: int = 2
) -> plt.Figure:
    """A grid of :func:`match_lines` panels ``(pair, scored, title)``."""
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6.5 * cols, 3.6 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    for ax, (pair, scored, title) in zip(axes.ravel(), panels, strict=False):
        match_lines(pair, scored, title, ax)
    fig.tight_layout()
    return fig


def error_curves(errors: Mapping[str, Sequence[float]], max_px: float = 10.0) -> plt.Figure:
    """Cumulative share of pairs with corner error below a threshold, one line per matcher.

    The AUC@t reported in the metrics is the area under this curve up to ``t``, divided by ``t``.
    """
    fig, ax = plt.subplots(figsize=(5.5, 4))
    grid = np.linspace(0, max_px, 201)
    for name, errs in errors.items():
        e = np.asarray(errs, float)
        e = np.where(np.isfinite(e), e, np.inf)
        ax.plot(grid, [(e <= t).mean() if len(e) else 0 for t in grid], label=name)
    ax.set_xlabel("corner error threshold (px)")
    ax.set_ylabel("share of pairs")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("corner error: cumulative (AUC@t = area up to t / t)", fontsize=9)
    fig.tight_layout()
    return fig


def rotation_sweep(sweep: Mapping[str, Mapping[float, float]], metric: str) -> plt.Figure:
    """``metric`` against the in-plane rotation between the images, one line per matcher."""
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for name, values in sweep.items():
        angles = sorted(values, key=float)
        ax.plot([float(a) for a in angles], [values[a] for a in angles], marker="o", label=name)
    ax.set_xlabel("rotation between the images (degrees)")
    ax.set_ylabel(metric)
    ax.set_xticks(range(0, 181, 30))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"rotation sweep: {metric}", fontsize=9)
    fig.tight_layout()
    return fig
