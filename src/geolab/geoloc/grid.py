"""Grid classes over Croatia for study ``geoloc`` (stage ``geoloc_grid``).

A classifier predicts one of K square cells; its position estimate is a probability-weighted
mix of the cells' representative points. Every cell has three of them:

- ``centroid``: the centre of the square;
- ``clipped``: the centre snapped onto Croatia's land inside the square when it falls outside
  (sea or a neighbour): the nearest point of ``land ∩ square`` (shapely ``nearest_points``).
  Snapping to land *within the square* keeps the point in its own cell. Natural Earth's 10m
  coast is generalised by a few hundred metres, so a snapped point may lie on the coastline;
- ``weighted``: the mean of the cell's training locations (where the photos really are).

All coordinates are HTRS96/TM (EPSG:3765, metres); ``*_lat``/``*_lon`` columns repeat the three
points in WGS 84 degrees.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import shapely
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from shapely.ops import nearest_points

from geolab.geoloc.config import CENTROID_KINDS, check_kind
from geolab.geoloc.geo import HTRS96_TM, WGS84, Projector

#: Columns of a grid, in order (``geometry`` is the square).
COLUMNS: tuple[str, ...] = (
    "cell_id",
    "n_train",
    *(f"{k}_{a}" for k in CENTROID_KINDS for a in ("x", "y")),
    *(f"{k}_{a}" for k in CENTROID_KINDS for a in ("lat", "lon")),
    "geometry",
)

_DRIVERS = {".gpkg": "GPKG", ".geojson": "GeoJSON", ".json": "GeoJSON"}


def grid_shape(bounds: tuple[float, float, float, float], cells: int) -> tuple[int, int, float]:
    """Columns, rows and side of a square grid of about ``cells`` squares over ``bounds``.

    With ``W``, ``H`` the width and height of the box: ``nx = max(1, round(sqrt(cells * W / H)))``
    columns (squares as close to the box's aspect as whole numbers allow), ``ny = max(1,
    round(cells / nx))`` rows, and side ``max(W / nx, H / ny)`` so that the ``nx * ny`` squares
    cover the whole box (they overhang it along one axis).

    Args:
        bounds: ``(minx, miny, maxx, maxy)`` in metres.
        cells: the wanted number of squares, >= 1.

    Returns:
        ``(nx, ny, side)``.
    """
    if cells < 1:
        raise ValueError(f"cells: must be >= 1, got {cells}")
    w, h = bounds[2] - bounds[0], bounds[3] - bounds[1]
    if not (w > 0 and h > 0):
        raise ValueError(f"the bounding box {bounds} has no area")
    nx = max(1, round(math.sqrt(cells * w / h)))
    ny = max(1, round(cells / nx))
    return nx, ny, max(w / nx, h / ny)


def make_grid(boundary_3765: shapely.Geometry, train_xy: Any, cells: int) -> gpd.GeoDataFrame:
    """Square grid cells over Croatia that hold land and at least one training image.

    The ``nx x ny`` squares of :func:`grid_shape` are centred on the boundary's bounding box.
    A point belongs to the square ``[x0 + i*side, x0 + (i+1)*side) x [y0 + j*side, ...)``
    (half-open, so a point on a shared edge counts once; points on the grid's outer north or
    east edge count in the last square). Squares that do not intersect the boundary, and squares
    with no training point, are dropped; training points in dropped squares or outside the grid
    count nowhere. Kept cells are numbered ``0..K-1`` row by row from the south-west.

    Args:
        boundary_3765: Croatia's land, (Multi)Polygon in EPSG:3765 metres.
        train_xy: ``(N, 2)`` training locations ``(x, y)`` in EPSG:3765 metres.
        cells: about how many squares cover the bounding box.

    Returns:
        GeoDataFrame (crs EPSG:3765) with the columns of :data:`COLUMNS`: ``cell_id``, ``n_train``,
        ``{centroid,clipped,weighted}_{x,y}`` (metres), ``..._{lat,lon}`` (degrees) and
        ``geometry`` (the whole square, not clipped to land).

    Raises:
        ValueError: ``train_xy`` is not ``(N, 2)`` or no square holds both land and a point.
    """
    train_xy = _as_xy(train_xy, "train_xy")
    nx, ny, side = grid_shape(boundary_3765.bounds, cells)
    x0, y0 = _grid_origin(boundary_3765.bounds, nx, ny, side)
    row, col = np.divmod(np.arange(nx * ny), nx)
    squares = shapely.box(x0 + col * side, y0 + row * side, x0 + (col + 1) * side,
                          y0 + (row + 1) * side)  # fmt: skip
    flat = _square_index(train_xy, x0, y0, side, nx, ny)
    counts = np.bincount(flat[flat >= 0], minlength=nx * ny)
    keep = shapely.intersects(squares, boundary_3765) & (counts > 0)
    if not keep.any():
        raise ValueError("no grid square holds both land and a training point")
    kept = np.flatnonzero(keep)
    remap = np.full(nx * ny, -1)
    remap[kept] = np.arange(len(kept))
    cell_of_point = np.where(flat >= 0, remap[np.maximum(flat, 0)], -1)
    return _build_frame(squares[kept], boundary_3765, train_xy, cell_of_point, counts[kept])


def _grid_origin(bounds: tuple[float, ...], nx: int, ny: int, side: float) -> tuple[float, float]:
    """South-west corner of an ``nx x ny`` grid of ``side`` centred on ``bounds``."""
    cx, cy = (bounds[0] + bounds[2]) / 2, (bounds[1] + bounds[3]) / 2
    return cx - nx * side / 2, cy - ny * side / 2


def _square_index(
    xy: np.ndarray, x0: float, y0: float, side: float, nx: int, ny: int
) -> np.ndarray:
    """Row-major square index ``row * nx + col`` of each point; -1 outside the grid."""
    fx, fy = (xy[:, 0] - x0) / side, (xy[:, 1] - y0) / side
    inside = (fx >= 0) & (fx <= nx) & (fy >= 0) & (fy <= ny)
    col = np.clip(np.floor(fx), 0, nx - 1).astype(int)
    row = np.clip(np.floor(fy), 0, ny - 1).astype(int)
    return np.where(inside, row * nx + col, -1)


def _build_frame(
    squares: np.ndarray,
    land: shapely.Geometry,
    train_xy: np.ndarray,
    cell_of_point: np.ndarray,
    counts: np.ndarray,
) -> gpd.GeoDataFrame:
    """The grid's GeoDataFrame from the kept squares and the points' cell ids."""
    k = len(squares)
    centre = shapely.get_coordinates(shapely.centroid(squares))
    clipped = np.array([_snap_to_land(p, sq, land) for p, sq in zip(centre, squares, strict=True)])
    ok = cell_of_point >= 0
    sums = np.stack(
        [np.bincount(cell_of_point[ok], weights=train_xy[ok, i], minlength=k) for i in (0, 1)], 1
    )
    weighted = sums / counts[:, None]
    data: dict[str, Any] = {"cell_id": np.arange(k), "n_train": counts.astype(np.int64)}
    proj = Projector()
    for name, pts in zip(CENTROID_KINDS, (centre, clipped, weighted), strict=True):
        data[f"{name}_x"], data[f"{name}_y"] = pts[:, 0], pts[:, 1]
    for name, pts in zip(CENTROID_KINDS, (centre, clipped, weighted), strict=True):
        data[f"{name}_lat"], data[f"{name}_lon"] = proj.to_latlon(pts[:, 0], pts[:, 1])
    return gpd.GeoDataFrame(data, geometry=list(squares), crs=HTRS96_TM)[list(COLUMNS)]


def _snap_to_land(
    centre: np.ndarray, square: shapely.Geometry, land: shapely.Geometry
) -> tuple[float, float]:
    """The centre if it is on land, else the nearest point of the land inside the square."""
    point = shapely.Point(centre)
    if shapely.covers(land, point):
        return float(centre[0]), float(centre[1])
    target = shapely.intersection(land, square)
    if target.is_empty:  # only touches at a vertex lost to rounding: snap to the land itself
        target = land
    nearest = nearest_points(target, point)[0]
    return nearest.x, nearest.y


def assign_cells(grid: gpd.GeoDataFrame, x: Any, y: Any) -> np.ndarray:
    """The cell id of each point (EPSG:3765 metres).

    A point inside a kept square (half-open, as in :func:`make_grid`) gets that square's id.
    A point in a dropped square or outside the grid gets the kept cell whose square centre
    (``centroid_x``, ``centroid_y``) is nearest; ties go to the lower id.

    Args:
        grid: from :func:`make_grid` or :func:`load_grid` (crs EPSG:3765).
        x: eastings, any shape.
        y: northings, same shape.

    Returns:
        int64 array of cell ids, of the shape of ``x``.
    """
    x, y = np.broadcast_arrays(np.asarray(x, dtype=float), np.asarray(y, dtype=float))
    xy = np.column_stack([x.ravel(), y.ravel()])
    bounds = shapely.bounds(np.asarray(grid.geometry.values))
    side = float(np.median(bounds[:, 2] - bounds[:, 0]))
    x0, y0 = bounds[:, 0].min(), bounds[:, 1].min()
    col = np.rint((bounds[:, 0] - x0) / side).astype(int)
    row = np.rint((bounds[:, 1] - y0) / side).astype(int)
    nx, ny = col.max() + 1, row.max() + 1
    lookup = np.full(nx * ny, -1, dtype=np.int64)
    lookup[row * nx + col] = grid["cell_id"].to_numpy()
    flat = _square_index(xy, x0, y0, side, nx, ny)
    out = np.where(flat >= 0, lookup[np.maximum(flat, 0)], -1)
    missing = np.flatnonzero(out < 0)
    if len(missing):
        out[missing] = _nearest_cell(grid, xy[missing])
    return out.reshape(x.shape)


def _nearest_cell(grid: gpd.GeoDataFrame, xy: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Id of the cell whose square centre is nearest to each point (chunked, lowest id on ties)."""
    centres = grid[["centroid_x", "centroid_y"]].to_numpy()
    ids = grid["cell_id"].to_numpy()
    out = np.empty(len(xy), dtype=np.int64)
    for start in range(0, len(xy), chunk):
        part = xy[start : start + chunk]
        d2 = ((part[:, None, :] - centres[None, :, :]) ** 2).sum(-1)
        out[start : start + chunk] = ids[np.argmin(d2, axis=1)]
    return out


def centroids(grid: gpd.GeoDataFrame, kind: str = "weighted") -> np.ndarray:
    """The ``(K, 2)`` representative points ``(x, y)`` of one kind, ordered by ``cell_id``.

    Raises:
        ValueError: an unknown kind (lists the valid ones).
    """
    check_kind(kind, "kind")
    ordered = grid.sort_values("cell_id")
    return ordered[[f"{kind}_x", f"{kind}_y"]].to_numpy(dtype=float)


def _as_xy(xy: Any, name: str) -> np.ndarray:
    arr = np.asarray(xy, dtype=float)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"{name}: expected shape (N, 2), got {arr.shape}")
    return arr


def save_grid(grid: gpd.GeoDataFrame, path: str | Path) -> None:
    """Write a grid atomically as GeoPackage (``.gpkg``, EPSG:3765) or GeoJSON (EPSG:4326).

    GDAL (via pyogrio) must create the file itself, so the grid is written into a fresh
    temporary folder beside ``path`` under the final file name, then moved into place with
    :func:`os.replace`; on error ``path`` is left as it was.

    Args:
        grid: from :func:`make_grid`.
        path: ``*.gpkg``, ``*.geojson`` or ``*.json``; the parent folder is created.

    Raises:
        ValueError: another extension.
    """
    path = Path(path)
    driver = _DRIVERS.get(path.suffix.lower())
    if driver is None:
        raise ValueError(f"{path}: unknown grid format; use one of {', '.join(_DRIVERS)}")
    out = grid.to_crs(WGS84) if driver == "GeoJSON" else grid.to_crs(HTRS96_TM)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        tmp = Path(tmp_dir) / path.name
        with _fixed_gpkg_timestamp():
            out.to_file(
                tmp, driver=driver, engine="pyogrio", layer="grid" if driver == "GPKG" else None
            )
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


#: What GeoPackages record as their last change, so that a rerun writes the same bytes (DVC and
#: git hash the file); GDAL would write the current time.
GPKG_TIMESTAMP = "2000-01-01T00:00:00.000Z"


@contextlib.contextmanager
def _fixed_gpkg_timestamp() -> Iterator[None]:
    import pyogrio

    old = pyogrio.get_gdal_config_option("OGR_CURRENT_DATE")
    pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": GPKG_TIMESTAMP})
    try:
        yield
    finally:
        pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": old})


def load_grid(path: str | Path) -> gpd.GeoDataFrame:
    """Read a grid written by :func:`save_grid`, back in EPSG:3765 and ordered by ``cell_id``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: a column is missing (names the file and the columns).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: file not found")
    grid = gpd.read_file(path, engine="pyogrio")
    missing = [c for c in COLUMNS if c not in grid.columns]
    if missing:
        raise ValueError(f"{path}: not a geoloc grid; missing columns {missing}")
    grid = grid.to_crs(HTRS96_TM)[list(COLUMNS)].sort_values("cell_id").reset_index(drop=True)
    return grid.astype({"cell_id": np.int64, "n_train": np.int64})


def grid_figure(grid: gpd.GeoDataFrame, boundary_3765: shapely.Geometry, train_xy: Any) -> Figure:
    """Croatia's outline, the kept cells, the training points and the three kinds of centroid.

    Args:
        grid: from :func:`make_grid`.
        boundary_3765: Croatia's land in EPSG:3765.
        train_xy: ``(N, 2)`` training locations in EPSG:3765.

    Returns:
        The figure (not registered with pyplot; axes in km).
    """
    train_xy = _as_xy(train_xy, "train_xy") / 1000
    fig = Figure(figsize=(8, 7.5), layout="constrained")
    ax = fig.add_subplot()
    km = grid.geometry.scale(1e-3, 1e-3, origin=(0, 0))
    km.plot(ax=ax, facecolor="#dfe9f5", edgecolor="#4a6fa5", linewidth=0.8, zorder=1)
    land = gpd.GeoSeries([boundary_3765]).scale(1e-3, 1e-3, origin=(0, 0))
    land.boundary.plot(ax=ax, color="black", linewidth=0.7, zorder=2)
    ax.scatter(*train_xy.T, s=3, color="0.45", zorder=3, label="training location")
    for (kind, style), label in zip(_MARKERS.items(), _LABELS, strict=True):
        ax.scatter(grid[f"{kind}_x"] / 1000, grid[f"{kind}_y"] / 1000, zorder=4, label=label,
                   **style)  # fmt: skip
    for cid, cx, cy in zip(grid["cell_id"], grid["centroid_x"], grid["centroid_y"], strict=True):
        ax.annotate(str(cid), (cx / 1000, cy / 1000), xytext=(3, 3), textcoords="offset points",
                    fontsize=6, color="#4a6fa5")  # fmt: skip
    handles, labels = ax.get_legend_handles_labels()
    handles.insert(0, Patch(facecolor="#dfe9f5", edgecolor="#4a6fa5"))
    labels.insert(0, f"grid cell ({len(grid)} kept)")
    ax.legend(handles, labels, loc="lower left", fontsize=8)
    ax.set(aspect="equal", xlabel="easting, km (HTRS96/TM, EPSG:3765)", ylabel="northing, km")
    ax.set_title(f"geoloc grid: {len(grid)} cells, {len(train_xy)} training locations")
    return fig


_MARKERS: dict[str, dict[str, Any]] = {
    "centroid": {"marker": "x", "s": 30, "color": "#1f77b4", "linewidths": 1.2},
    "clipped": {"marker": "o", "s": 36, "facecolors": "none", "edgecolors": "#d62728"},
    "weighted": {"marker": "^", "s": 30, "color": "#2ca02c"},
}
_LABELS = (
    "centroid (square centre)",
    "clipped (centre snapped to land)",
    "weighted (mean of training points)",
)
