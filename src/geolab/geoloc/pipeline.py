"""The ``geoloc`` stages' work so far: the split and the grid classes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from geolab.geoloc.dataset import Record
from geolab.geoloc.geo import Normaliser, Projector, load_boundary
from geolab.geoloc.grid import assign_cells, make_grid


def split(records: list[Record], val_frac: float, test_frac: float, seed: int) -> dict[str, list]:
    """Random train/val/test split of places by uuid, seeded (each place is one 4-photo group).

    Raises:
        ValueError: too few places for three non-empty splits.
    """
    ids = sorted(r.uuid for r in records)
    if len(ids) < 10:
        raise ValueError(f"need at least 10 places to split, got {len(ids)}")
    order = np.random.default_rng(seed).permutation(len(ids))
    n_val, n_test = max(1, round(val_frac * len(ids))), max(1, round(test_frac * len(ids)))
    pick = [ids[i] for i in order]
    return {
        "val": sorted(pick[:n_val]),
        "test": sorted(pick[n_val : n_val + n_test]),
        "train": sorted(pick[n_val + n_test :]),
    }


def build_grid(
    records: list[Record], splits: dict[str, list], boundary_path: str | Path, cells: int
) -> dict[str, Any]:
    """Project the places to EPSG:3765, fit the normaliser on train, make and assign the grid.

    Returns:
        ``grid`` (GeoDataFrame), ``boundary`` (projected), ``normaliser``, ``train_xy`` and
        ``labels`` (``{uuid: {"split", "x", "y", "u", "v", "cell"}}``).
    """
    proj = Projector()
    by_id = {r.uuid: r for r in records}
    lat = np.array([by_id[u].lat for u in by_id])
    lon = np.array([by_id[u].lon for u in by_id])
    x, y = proj.to_xy(lat, lon)
    xy = dict(zip(by_id, zip(x.tolist(), y.tolist(), strict=True), strict=True))
    train_xy = np.array([xy[u] for u in splits["train"]])
    norm = Normaliser().fit(train_xy[:, 0], train_xy[:, 1])
    boundary = load_boundary(boundary_path).xy
    grid = make_grid(boundary, train_xy, cells)
    labels = {}
    for name, ids in splits.items():
        pts = np.array([xy[u] for u in ids])
        cell = assign_cells(grid, pts[:, 0], pts[:, 1])
        u, v = norm.transform(pts[:, 0], pts[:, 1])
        for i, uid in enumerate(ids):
            labels[uid] = {"split": name, "x": float(pts[i, 0]), "y": float(pts[i, 1]),
                           "u": float(u[i]), "v": float(v[i]), "cell": int(cell[i])}  # fmt: skip
    return {"grid": grid, "boundary": boundary, "normaliser": norm, "train_xy": train_xy,
            "labels": labels}  # fmt: skip
