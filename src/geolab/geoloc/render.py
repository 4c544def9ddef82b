"""The offline sample of study ``geoloc``: SYNTHETIC four-view renderings, not photographs.

Street View photos cannot be shipped with the repository, so the default pipeline trains and
evaluates on pictures *rendered* here for points drawn uniformly inside the real boundary of
Croatia. Every bit of geographic signal in them is computed from the real Natural Earth
boundaries of Croatia and its neighbours (and nothing else: no elevation model, no land cover,
no real imagery). A model that scores well on this sample has learned the rules below; the
numbers measure that the pipeline works end to end, **not** real-world geolocation skill.

How a place is rendered (vectorised numpy; about 10 ms for four 64x64 views and their JPEGs on
one core):

* **Geography.** The boundary files are rasterised into ~0.5 km cells: sea, Croatia, other land.
  The sea is the largest connected area that is nobody's land (the Adriatic); other gaps
  (Austria at the raster's edge, slivers between polygons) count as land. A distance transform
  gives every cell its distance to the sea.
* **Sea.** For every image column a ray is marched from the point along its azimuth (0.25 km
  steps, up to :data:`SEA_RANGE_KM`); it sees the sea if it reaches a sea cell before any
  neighbour's land (islands do not block it). The sea then covers part of the view below the
  horizon line, the more the closer the coast in that direction (none beyond the range).
* **Regions.** Smooth functions of distance to the sea and latitude give three weights
  (:func:`region_weights`): karst (the coast, and the Dinaric south of ~45.4N: grey-white rock,
  sparse dark shrubs, high jagged mountains), plains (far from the sea, i.e. the Pannonian
  north-east: flat horizon, green and yellow fields) and forest (in between, e.g. Gorski kotar
  and the centre: dark green rolling hills). A relief amplitude (:func:`relief`) follows the
  same fields and a large-scale noise of the position.
* **Climate tint.** Two smooth fields of position (:func:`climate`) tint the vegetation and
  the land: ``dry`` grows from the north (~46.6N) to the south (~42.4N): greens turn to
  straw (the Mediterranean summer drought) and the land gets a warmer cast; ``soil`` grows
  from the west (~13.4E) to the east (~19.5E) and shifts the cast towards green-brown. This is
  a caricature of real climate and soil gradients, and the strongest cue in the sample: it
  lets a model tell apart places at the same distance from the sea, much as vegetation,
  soil and light do in real photos, but far more cleanly.
* **Skyline.** Each column has two layers of hills, at 4 km and 18 km along its azimuth: their
  height is the relief *at that horizon point* times a fractal value noise of the point's
  position (one fixed world seed), so nearby places see similar skylines, looking at the sea
  gives a flat sea horizon, and islands across a channel show as hills. Colours follow the
  region weights at those points, hazed with distance.
* **Per photo** (from the caller's ``rng``): camera pitch, sky colour, sun, clouds, light,
  ground texture, sometimes a road or a pole, pixel noise.

Limits, on purpose: there is no elevation model, so hills are invented (noise scaled by the
rules above) and match no real skyline, and mountains do not hide the sea; the sea's share of
the view is stylised, not true perspective; the region rules are a hand-tuned caricature; the
10m coast misses small islands and narrow bays (a viewpoint that falls in the sea is moved to
the nearest land cell, e.g. Split). The skyline noise is a fixed function of position, which
makes this sample easier to memorise than real photos.

Files: :func:`write_sample` writes the competition layout read by
:func:`geolab.geoloc.dataset.read_dataset` (``data.csv`` with ``uuid,latitude,longitude``;
``images/<uuid>/{0,90,180,270}.jpg``), deterministic for a seed.
"""

from __future__ import annotations

import concurrent.futures
import csv
import dataclasses
import functools
import logging
import math
import multiprocessing
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from PIL import Image
from scipy import ndimage
from tqdm.auto import tqdm

from geolab.geoloc.dataset import DATA_CSV, HEADINGS, IMAGES
from geolab.geoloc.fetch import load_boundary

log = logging.getLogger(__name__)

#: The sea is visible in a direction when the coast is closer than this, km.
SEA_RANGE_KM = 20.0
#: Distances of the near and far skyline layers, km.
NEAR_KM, FAR_KM = 4.0, 18.0
#: Seed of the terrain noise: a property of the rendered world, not of a photo.
WORLD_SEED = 1991
#: Namespace of the sample's uuids: ``uuid5(SAMPLE_NAMESPACE, f"{seed}/{index}")``.
SAMPLE_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "geolab/geoloc/render")
#: Raster classes.
SEA, CROATIA, OTHER_LAND = 0, 1, 2

_KM_PER_DEG_LAT = 110.57
_KM_PER_DEG_LON_EQ = 111.32
_FOV_DEG = 90.0
_CAM_HEIGHT_M = 2.5
_SEA_STEP_KM = 0.25

# palettes, RGB 0..255: karst, forest, plains (rows)
_GROUND = np.array([[178, 174, 162], [52, 84, 40], [112, 150, 66]], dtype=np.float32)
_FAR_HILLS = np.array([[160, 158, 152], [52, 78, 56], [92, 112, 78]], dtype=np.float32)
_NEAR_HILLS = np.array([[140, 136, 122], [38, 64, 36], [64, 92, 48]], dtype=np.float32)
_FIELDS = np.array(
    [[96, 142, 58], [204, 184, 92], [150, 118, 72], [132, 168, 74], [176, 170, 80]],
    dtype=np.float32,
)
_SHRUB = np.array([44, 66, 36], dtype=np.float32)
_DRY_GRASS = np.array([160, 148, 100], dtype=np.float32)
_MEADOW = np.array([96, 132, 58], dtype=np.float32)


# ---------------------------------------------------------------------------------- geography


@dataclasses.dataclass(frozen=True, eq=False)
class Geography:
    """The rasterised boundaries: what a renderer needs to know about a position.

    Attributes:
        boundary: Croatia, a prepared (multi)polygon in lon/lat degrees.
        classes: ``(H, W)`` uint8, :data:`SEA`, :data:`CROATIA` or :data:`OTHER_LAND`; row 0 is
            the south edge.
        coast_km: ``(H, W)`` float32 distance from each cell to the nearest sea cell, km.
        nearest_land: ``(2, H, W)`` int32 row and column of the nearest land cell (a land cell
            is its own).
        west: longitude of the raster's west edge, degrees.
        south: latitude of the raster's south edge, degrees.
        dlon: cell width, degrees.
        dlat: cell height, degrees.
    """

    boundary: shapely.Geometry
    classes: np.ndarray
    coast_km: np.ndarray
    nearest_land: np.ndarray
    west: float
    south: float
    dlon: float
    dlat: float

    def lookup(self, lat: Any, lon: Any) -> tuple[np.ndarray, np.ndarray]:
        """Class and distance to the sea at positions (nearest cell; clamped at the edges).

        Args:
            lat: latitudes, degrees, any shape.
            lon: longitudes, degrees, the same shape.

        Returns:
            ``(classes, coast_km)`` arrays of that shape.
        """
        i, j = self._cell(lat, lon)
        return self.classes[i, j], self.coast_km[i, j]

    def snap_to_land(self, lat: float, lon: float, max_km: float = 5.0) -> tuple[float, float]:
        """The centre of the nearest land cell if ``(lat, lon)`` falls on a sea cell.

        Natural Earth's 10m coast is generalised by a few hundred metres (more in narrow bays),
        so some places on the shore fall in the sea; a viewpoint there is moved ashore. Points
        farther than ``max_km`` from land, and land points, are returned unchanged.
        """
        i, j = self._cell(lat, lon)
        if self.classes[i, j] != SEA:
            return lat, lon
        li, lj = self.nearest_land[:, i, j]
        new_lat, new_lon = self.south + (li + 0.5) * self.dlat, self.west + (lj + 0.5) * self.dlon
        kx = _KM_PER_DEG_LON_EQ * math.cos(math.radians(lat))
        km = math.hypot((new_lat - lat) * _KM_PER_DEG_LAT, (new_lon - lon) * kx)
        return (float(new_lat), float(new_lon)) if km <= max_km else (lat, lon)

    def _cell(self, lat: Any, lon: Any) -> tuple[np.ndarray, np.ndarray]:
        h, w = self.classes.shape
        i = np.clip(((np.asarray(lat) - self.south) / self.dlat).astype(np.int64), 0, h - 1)
        j = np.clip(((np.asarray(lon) - self.west) / self.dlon).astype(np.int64), 0, w - 1)
        return i, j


def load_geography(
    boundary_path: str | Path, neighbours_dir: str | Path, cell_km: float = 0.5
) -> Geography:
    """Rasterise Croatia and its neighbours (cached per process by path and cell size).

    Args:
        boundary_path: Croatia's GeoJSON, e.g. ``data/croatia/ne_10m_admin0_HRV.geojson``.
        neighbours_dir: a folder of the neighbours' GeoJSON files (every ``*.geojson``).
        cell_km: raster cell size, km.

    Returns:
        The :class:`Geography`.

    Raises:
        FileNotFoundError: the folder holds no ``.geojson`` (names it).
        ValueError: a file is not a GeoJSON polygon (names it).
    """
    return _load_geography(str(Path(boundary_path).resolve()), str(Path(neighbours_dir).resolve()),
                           float(cell_km))  # fmt: skip


@functools.lru_cache(maxsize=4)
def _load_geography(boundary_path: str, neighbours_dir: str, cell_km: float) -> Geography:
    croatia = load_boundary(boundary_path)
    files = sorted(Path(neighbours_dir).glob("*.geojson"))
    if not files:
        raise FileNotFoundError(f"{neighbours_dir}: no .geojson files of neighbouring countries")
    margin = 0.5  # degrees: rays and horizon points reach ~0.3 degrees beyond the border
    west, south, east, north = np.array(croatia.bounds) + [-margin, -margin, margin, margin]
    frame = shapely.box(west, south, east, north)
    others = shapely.union_all([load_boundary(f).intersection(frame) for f in files])
    shapely.prepare(others)
    dlat = cell_km / _KM_PER_DEG_LAT
    dlon = cell_km / (_KM_PER_DEG_LON_EQ * math.cos(math.radians((south + north) / 2)))
    lat = south + (np.arange(math.ceil((north - south) / dlat)) + 0.5) * dlat
    lon = west + (np.arange(math.ceil((east - west) / dlon)) + 0.5) * dlon
    grid_lon, grid_lat = np.meshgrid(lon, lat)
    in_croatia = shapely.contains_xy(croatia, grid_lon, grid_lat)
    in_other = shapely.contains_xy(others, grid_lon, grid_lat) & ~in_croatia
    labels, _ = ndimage.label(~in_croatia & ~in_other)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    sea = labels == int(np.argmax(sizes))
    classes = np.full(sea.shape, OTHER_LAND, dtype=np.uint8)
    classes[in_croatia] = CROATIA
    classes[sea] = SEA
    cell_w_km = dlon * _KM_PER_DEG_LON_EQ * np.cos(np.radians(lat.mean()))
    coast = ndimage.distance_transform_edt(~sea, sampling=(cell_km, cell_w_km))
    _, nearest = ndimage.distance_transform_edt(
        sea, sampling=(cell_km, cell_w_km), return_distances=True, return_indices=True
    )
    return Geography(croatia, classes, coast.astype(np.float32), nearest.astype(np.int32),
                     west, south, dlon, dlat)  # fmt: skip


def sample_points(
    boundary: shapely.Geometry, n: int, seed: int, chunk: int = 1024
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points uniform by area (on the sphere) inside ``boundary``, by rejection.

    Candidates are drawn in fixed chunks, so the first ``n`` points of a seed do not depend on
    ``n``: a larger sample extends a smaller one.

    Args:
        boundary: a (multi)polygon in lon/lat degrees.
        n: how many points.
        seed: seed of ``numpy.random.default_rng``.
        chunk: candidates per draw.

    Returns:
        ``(lat, lon)``: two ``(n,)`` float arrays, degrees.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    shapely.prepare(boundary)
    rng = np.random.default_rng(seed)
    west, south, east, north = boundary.bounds
    s0, s1 = math.sin(math.radians(south)), math.sin(math.radians(north))
    lats, lons, got = [], [], 0
    while got < n:
        lon = rng.uniform(west, east, chunk)
        lat = np.degrees(np.arcsin(rng.uniform(s0, s1, chunk)))  # uniform in sin(lat)
        inside = shapely.contains_xy(boundary, lon, lat)
        lats.append(lat[inside])
        lons.append(lon[inside])
        got += int(inside.sum())
    if not lats:
        return np.empty(0), np.empty(0)
    return np.concatenate(lats)[:n], np.concatenate(lons)[:n]


# ---------------------------------------------------------------------------- smooth fields


def _smoothstep(t: Any) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _hash01(ix: np.ndarray, iy: np.ndarray, salt: int) -> np.ndarray:
    """A uniform number in [0, 1) per integer lattice point (a 64-bit integer mix)."""
    with np.errstate(over="ignore"):  # wrap-around multiplication is the point
        h = ix.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        h ^= iy.astype(np.uint64) * np.uint64(0xC2B2AE3D27D4EB4F)
        h ^= np.uint64((salt * 0x165667B19E3779F9) & 0xFFFFFFFFFFFFFFFF)
        h ^= h >> np.uint64(29)
        h *= np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(32)
    return (h >> np.uint64(40)).astype(np.float32) / np.float32(1 << 24)


def _value_noise(x: np.ndarray, y: np.ndarray, salt: int) -> np.ndarray:
    """Smooth value noise in [0, 1) with one lattice cell per unit."""
    x0, y0 = np.floor(x), np.floor(y)
    sx, sy = _smoothstep(x - x0), _smoothstep(y - y0)
    ix, iy = x0.astype(np.int64), y0.astype(np.int64)
    a, b = _hash01(ix, iy, salt), _hash01(ix + 1, iy, salt)
    c, d = _hash01(ix, iy + 1, salt), _hash01(ix + 1, iy + 1, salt)
    return a + (b - a) * sx + (c - a) * sy + (a - b - c + d) * sx * sy


def _fbm(x: np.ndarray, y: np.ndarray, scales: tuple[float, ...], salt: int) -> np.ndarray:
    """Fractal noise in [0, 1): octaves at ``scales`` (units of x, y), weights halving."""
    total, norm = 0.0, 0.0
    for k, scale in enumerate(scales):
        weight = 0.5**k
        total = total + weight * _value_noise(x / scale, y / scale, salt + 7919 * k)
        norm += weight
    return total / norm


def _world_km(lat: Any, lon: Any) -> tuple[np.ndarray, np.ndarray]:
    """A fixed local plane (km) for the terrain noise, so it is one continuous world."""
    kx = _KM_PER_DEG_LON_EQ * math.cos(math.radians(44.5))
    return (np.asarray(lon) - 16.0) * kx, (np.asarray(lat) - 44.5) * _KM_PER_DEG_LAT


def region_weights(lat: Any, coast_km: Any) -> np.ndarray:
    """Karst, forest and plains weights: smooth in latitude and distance to the sea.

    Karst dominates within ~10 km of the sea everywhere and, south of ~45.4N, up to ~60 km
    inland (Lika, the Dalmatian hinterland); plains take over from ~80 to ~190 km from the sea
    (Slavonia, Podravina); forest is the rest (Gorski kotar, Kordun, the centre).

    Args:
        lat: latitudes, degrees.
        coast_km: distances to the sea, km (same shape).

    Returns:
        ``(3, *shape)`` float32 weights (karst, forest, plains) that sum to 1.
    """
    lat, coast = np.asarray(lat, dtype=np.float32), np.asarray(coast_km, dtype=np.float32)
    south = _smoothstep((45.45 - lat) / 0.7)
    karst = np.maximum(np.exp(-coast / 10.0), np.exp(-((coast / 60.0) ** 2)) * south)
    flat = _smoothstep((coast - 80.0) / 110.0)
    return np.stack([karst, (1 - karst) * (1 - flat), (1 - karst) * flat]).astype(np.float32)


def relief(lat: Any, lon: Any, coast_km: Any) -> np.ndarray:
    """Hill height scale in about [0, 1.3]: high just inland of the coast, low in the plains.

    Args:
        lat: latitudes, degrees.
        lon: longitudes, degrees (same shape).
        coast_km: distances to the sea, km (same shape).

    Returns:
        Float32 array of that shape.
    """
    coast = np.asarray(coast_km, dtype=np.float32)
    flat = _smoothstep((coast - 80.0) / 110.0)
    ridge = 0.55 + 0.45 * np.exp(-(((coast - 25.0) / 35.0) ** 2))  # Velebit, Biokovo, Dinara
    x, y = _world_km(lat, lon)
    wobble = 0.75 + 0.5 * _fbm(x, y, (60.0, 25.0), WORLD_SEED + 11)
    return ((0.06 + (1 - flat) * ridge) * wobble).astype(np.float32)


def climate(lat: Any, lon: Any) -> np.ndarray:
    """The ``dry`` (north -> south) and ``soil`` (west -> east) tints in [0, 1].

    Args:
        lat: latitudes, degrees.
        lon: longitudes, degrees (same shape).

    Returns:
        ``(2, *shape)`` float32: ``dry`` is 0 at 46.6N and 1 at 42.4N, ``soil`` 0 at 13.4E and
        1 at 19.5E, both linear in between with a slow wobble of a few percent.
    """
    lat, lon = np.asarray(lat, dtype=np.float32), np.asarray(lon, dtype=np.float32)
    x, y = _world_km(lat, lon)
    wobble = 0.04 * (_fbm(x, y, (120.0,), WORLD_SEED + 21) - 0.5)
    dry = np.clip((46.6 - lat) / 4.2 + wobble, 0.0, 1.0)
    soil = np.clip((lon - 13.4) / 6.1 - wobble, 0.0, 1.0)
    return np.stack([dry, soil]).astype(np.float32)


#: Dry vegetation colour that greens are pulled towards in the south.
_STRAW = np.array([186, 160, 80], dtype=np.float32)
#: How strongly greens turn to straw at ``dry`` = 1.
_DRY_PULL = 0.5
#: Per-channel colour cast of the land at ``dry`` and ``soil`` = 1 (relative to 0.5).
_CAST = 0.5


def _tint(colour: np.ndarray, dry: float, soil: float) -> np.ndarray:
    """Climate tint of land colours ``(..., 3)``: greens to straw by ``dry``, then a cast.

    The cast is warmer (more red, less blue) where it is dry and greener-earthier to the east
    (``soil``); it multiplies all land colours alike, so a model reads it from colour ratios.
    """
    green = np.clip((colour[..., 1:2] - colour[..., 0:1]) / 40.0, 0.0, 1.0)  # how green it is
    out = colour + green * _DRY_PULL * dry * (_STRAW - colour)
    d, s = dry - 0.5, soil - 0.5
    return out * np.array([1 + _CAST * d, 1 + _CAST * s, 1 - _CAST * d], dtype=np.float32)


# ------------------------------------------------------------------------------------ scene


def _azimuths(size: int) -> np.ndarray:
    """``(4, size)`` azimuth of each image column, degrees (pinhole camera, 90 degree fov)."""
    f = size / 2 / math.tan(math.radians(_FOV_DEG / 2))
    offset = np.degrees(np.arctan((np.arange(size) + 0.5 - size / 2) / f))
    return (np.asarray(HEADINGS, dtype=np.float64)[:, None] + offset[None, :]) % 360.0


def _along(lat: float, lon: float, az: np.ndarray, km: Any) -> tuple[np.ndarray, np.ndarray]:
    """Positions ``km`` along azimuths ``az`` (degrees) from a point (flat-earth, fine < 50 km)."""
    a = np.radians(az)[..., None] if np.ndim(km) else np.radians(az)
    dlat = km * np.cos(a) / _KM_PER_DEG_LAT
    dlon = km * np.sin(a) / (_KM_PER_DEG_LON_EQ * math.cos(math.radians(lat)))
    return lat + dlat, lon + dlon


def _sea_km(geo: Geography, lat: float, lon: float, az: np.ndarray) -> np.ndarray:
    """Distance along each azimuth to the first sea cell not behind a neighbour's land (inf)."""
    steps = np.arange(1, int(SEA_RANGE_KM / _SEA_STEP_KM) + 1) * _SEA_STEP_KM
    cls, _ = geo.lookup(*_along(lat, lon, az, steps))
    sea, blocked = cls == SEA, cls == OTHER_LAND
    first_sea = np.where(sea.any(-1), sea.argmax(-1), len(steps))
    first_block = np.where(blocked.any(-1), blocked.argmax(-1), len(steps))
    seen = first_sea < first_block
    return np.where(seen, steps[np.minimum(first_sea, len(steps) - 1)], np.inf)


def _layer(geo: Geography, lat: float, lon: float, az: np.ndarray, km: float, near: bool):
    """Hill height (fraction of the image) and region weights at the horizon points."""
    plat, plon = _along(lat, lon, az, km)
    _, coast = geo.lookup(plat, plon)
    land = _smoothstep(coast / 2.0)  # land rises from the shore over ~2 km
    weights = region_weights(plat, coast)
    x, y = _world_km(plat, plon)
    if near:
        shape = _fbm(x, y, (3.0, 1.2, 0.5), WORLD_SEED + 1)
        trees = _value_noise(x / 0.12, y / 0.12, WORLD_SEED + 2)
        extra = 0.03 * (weights[1] + 0.5 * weights[2] + 0.2 * weights[0]) * trees
        height = 0.13 * relief(plat, plon, coast) * shape**1.5 + extra
    else:
        shape = _fbm(x, y, (14.0, 6.0, 2.5), WORLD_SEED + 3)
        jag = _value_noise(x / 1.5, y / 1.5, WORLD_SEED + 4)  # karst ridges are jagged
        height = 0.32 * relief(plat, plon, coast) * (shape**1.5 + 0.15 * weights[0] * jag)
    return (height * land).astype(np.float32), weights


def _smooth_columns(share: np.ndarray) -> np.ndarray:
    """A short moving average along the columns of each view, so shores slope."""
    k = max(1, share.shape[-1] // 16)
    padded = np.pad(share, ((0, 0), (k, k)), mode="edge")
    kernel = np.ones(2 * k + 1) / (2 * k + 1)
    return np.stack([np.convolve(row, kernel, mode="valid") for row in padded])


def scene(lat: float, lon: float, geo: Geography, size: int = 64) -> dict[str, Any]:
    """What the four views of a place show, before any per-photo randomness.

    Args:
        lat: latitude, degrees.
        lon: longitude, degrees.
        geo: from :func:`load_geography`.
        size: image side in pixels (one value per column).

    Returns:
        A dict: ``azimuth`` ``(4, size)`` degrees of each column (views N, E, S, W);
        ``sea_km`` ``(4, size)`` distance to the visible sea (``inf`` if none within
        :data:`SEA_RANGE_KM`); ``sea_share`` ``(4, size)`` fraction of the ground below the
        horizon that the sea covers; ``far``, ``near`` ``(4, size)`` skyline heights above the
        horizon as fractions of the image height; ``far_weights``, ``near_weights``
        ``(3, 4, size)`` region weights at the horizon points; ``weights`` ``(3,)`` region
        weights at the place (karst, forest, plains); ``coast_km`` distance to the sea;
        ``climate`` ``(2,)`` the place's ``dry`` and ``soil`` tints (:func:`climate`).
    """
    if not (math.isfinite(lat) and math.isfinite(lon)):
        raise ValueError(f"position must be finite, got lat={lat}, lon={lon}")
    lat, lon = geo.snap_to_land(lat, lon)
    az = _azimuths(size)
    sea_km = _sea_km(geo, lat, lon, az)
    far, far_w = _layer(geo, lat, lon, az, FAR_KM, near=False)
    near, near_w = _layer(geo, lat, lon, az, NEAR_KM, near=True)
    _, coast = geo.lookup(lat, lon)
    share = _smooth_columns(np.clip(1.0 - sea_km / SEA_RANGE_KM, 0.0, 1.0) ** 2 * 0.92)
    return {
        "azimuth": az,
        "sea_km": sea_km,
        "sea_share": share.astype(np.float32),
        "far": far,
        "near": near,
        "far_weights": far_w,
        "near_weights": near_w,
        "weights": region_weights(lat, coast),
        "coast_km": float(coast),
        "climate": climate(lat, lon),
    }


# ----------------------------------------------------------------------------------- render


@dataclasses.dataclass
class _Photo:
    """Per-photo randomness, drawn in a fixed order from the caller's generator."""

    pitch: float
    sun_az: float
    sun_el: float
    overcast: bool
    sky_top: np.ndarray
    sky_low: np.ndarray
    light: np.ndarray
    cloud_cover: float
    cloud_salt: int
    ground_offset: np.ndarray
    road: np.ndarray
    pole: np.ndarray

    @classmethod
    def draw(cls, rng: np.random.Generator) -> _Photo:
        """Draw every random quantity of one place's four photos."""
        overcast = bool(rng.random() < 0.2)
        top = np.array([70, 128, 200]) + rng.normal(0, 12, 3)
        low = np.array([188, 206, 224]) + rng.normal(0, 8, 3)
        if overcast:
            grey = rng.uniform(150, 200)
            top, low = np.full(3, grey) + rng.normal(0, 4, 3), np.full(3, grey + 25.0)
        warmth = rng.normal(0, 0.015)
        light = rng.uniform(0.85, 1.1) * np.array([1 + warmth, 1.0, 1 - warmth])
        return cls(
            pitch=float(rng.uniform(-0.04, 0.04)), sun_az=float(rng.uniform(0, 360)),
            sun_el=float(rng.uniform(5, 60)), overcast=overcast, sky_top=top, sky_low=low,
            light=light, cloud_cover=float(rng.uniform(0.0, 0.7)),
            cloud_salt=int(rng.integers(1 << 30)), ground_offset=rng.uniform(0, 1e4, (4, 2)),
            road=rng.random((4, 5)), pole=rng.random((4, 5)),
        )  # fmt: skip


def render_views(
    lat: float, lon: float, rng: np.random.Generator, size: int = 64, *, geo: Geography
) -> np.ndarray:
    """Render the four synthetic views (N, E, S, W) of a place.

    Args:
        lat: latitude, degrees.
        lon: longitude, degrees.
        rng: the per-photo randomness (sky, light, texture, objects, noise).
        size: side of each view in pixels (>= 8).
        geo: from :func:`load_geography`.

    Returns:
        ``(4, size, size, 3)`` uint8, views at headings 0, 90, 180, 270.
    """
    return _render(lat, lon, rng, size, geo)[0]


def _render(
    lat: float, lon: float, rng: np.random.Generator, size: int, geo: Geography
) -> tuple[np.ndarray, dict[str, Any]]:
    """The views and the scene they show."""
    if size < 8:
        raise ValueError(f"size must be >= 8, got {size}")
    sc = scene(lat, lon, geo, size)
    photo = _Photo.draw(rng)
    f = size / 2 / math.tan(math.radians(_FOV_DEG / 2))
    horizon = size * (0.5 + photo.pitch)
    rows = (np.arange(size, dtype=np.float32) + 0.5)[None, :, None]  # (1, S, 1)
    img = _sky(sc["azimuth"], rows, horizon, f, photo)
    for layer, haze, palette in (("far", 0.5, _FAR_HILLS), ("near", 0.15, _NEAR_HILLS)):
        colour = np.einsum("kvs,kc->vsc", sc[f"{layer}_weights"], palette)
        colour = _tint(colour, *sc["climate"])
        colour = colour * (1 - haze) + photo.sky_low * haze
        top = horizon - sc[layer][:, None, :] * size
        shade = 1.0 - 0.25 * np.clip((rows - top) / (0.25 * size), 0, 1)
        mask = rows >= top
        img = np.where(mask[..., None], colour[:, None, :, :] * shade[..., None], img)
    depth, lateral = _ground_coords(rows, size, horizon, f)
    ground = _tint(_ground(sc["weights"], depth, lateral, photo.ground_offset), *sc["climate"])
    depth, lateral = depth + photo.ground_offset[:, 0, None, None], lateral
    sea_bottom = horizon + sc["sea_share"][:, None, :] * (size - horizon)
    below = rows >= horizon
    sea = below & (rows < sea_bottom)
    img = np.where(below[..., None], ground, img)
    img = np.where(sea[..., None], _sea(depth, lateral, rows, horizon, size, photo), img)
    img = _objects(img, photo, rows, horizon, size, depth, ~sea & below)
    img = img * photo.light + rng.normal(0.0, 3.0, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8), sc


def _sky(az: np.ndarray, rows: np.ndarray, horizon: float, f: float, p: _Photo) -> np.ndarray:
    """``(4, S, S, 3)``: a vertical gradient, the sun's glow and perspective clouds."""
    elev = np.arctan((horizon - rows) / f)  # (1, S, 1) radians
    t = np.clip(elev / math.radians(45), 0, 1) ** 0.7
    sky = p.sky_low * (1 - t[..., None]) + p.sky_top * t[..., None]
    a = np.radians(az)[:, None, :]  # (4, 1, S)
    sun_az, sun_el = math.radians(p.sun_az), math.radians(p.sun_el)
    cos_angle = np.cos(elev) * math.cos(sun_el) * np.cos(a - sun_az) + np.sin(elev) * math.sin(
        sun_el
    )
    glow = np.exp((cos_angle - 1) / 0.03) * (0.2 if p.overcast else 0.6)
    sky = sky + glow[..., None] * (np.array([255, 244, 214]) - sky)
    reach = 1.0 / np.maximum(np.tan(np.maximum(elev, 0.02)), 0.02)  # cloud layer at height 1
    cx, cy = np.sin(a) * reach, np.cos(a) * reach
    cloud = _fbm(cx * 2.0, cy * 2.0, (1.0, 0.4), p.cloud_salt)
    cover = _smoothstep((cloud - (1.0 - p.cloud_cover)) / 0.2) * _smoothstep(elev / 0.12)
    return sky + cover[..., None] * (np.array([238, 238, 240]) - sky) * 0.85


def _ground_coords(
    rows: np.ndarray, size: int, horizon: float, f: float
) -> tuple[np.ndarray, np.ndarray]:
    """Metres ahead and to the side of each ground pixel, ``(4, S, S)`` each (capped far)."""
    cols = (np.arange(size, dtype=np.float32) + 0.5 - size / 2)[None, None, :]
    depth = np.minimum(_CAM_HEIGHT_M * f / np.maximum(rows - horizon, 1e-3), 3000.0)
    depth = np.broadcast_to(depth, (4, size, size))
    return depth, cols / f * depth


def _ground(
    weights: np.ndarray, depth: np.ndarray, lateral: np.ndarray, offset: np.ndarray
) -> np.ndarray:
    """``(4, S, S, 3)``: karst, forest and field textures blended by the place's weights."""
    far = _smoothstep((depth - 60.0) / 400.0)[..., None]  # distant ground averages out
    depth, lateral = depth + offset[:, 0, None, None], lateral + offset[:, 1, None, None]
    fine = _value_noise(lateral / 0.6, depth / 0.6, 101)
    patch = _fbm(lateral, depth, (9.0, 3.0), 102)
    rock = _GROUND[0] + (patch[..., None] - 0.5) * 60
    rock = np.where((fine > 0.66)[..., None], _SHRUB, rock)
    karst = rock * 0.8 + _DRY_GRASS * 0.2 * (patch < 0.4)[..., None]
    forest = _GROUND[1] + (_MEADOW - _GROUND[1]) * _smoothstep((patch - 0.45) / 0.3)[..., None]
    forest = forest * (0.8 + 0.4 * fine[..., None])
    field = _hash01(np.floor(lateral / 14.0).astype(np.int64),
                    np.floor(depth / 30.0).astype(np.int64), 103)  # fmt: skip
    plains = _FIELDS[(field * len(_FIELDS)).astype(np.int64)] * (0.9 + 0.2 * fine[..., None])
    k, fo, pl = (float(w) for w in weights)
    ground = k * karst + fo * forest + pl * plains
    flat = k * _GROUND[0] + fo * _GROUND[1] + pl * _FIELDS.mean(0)
    return ground * (1 - far) + flat * far


def _sea(
    depth: np.ndarray, lateral: np.ndarray, rows: np.ndarray, horizon: float, size: int, p: _Photo
) -> np.ndarray:
    """``(4, S, S, 3)``: deep blue, lighter towards the horizon, with ripples."""
    base = np.array([26, 82, 128]) + (p.sky_top - np.array([70, 128, 200])) * 0.3
    t = np.clip((rows - horizon) / (size - horizon), 0, 1) ** 0.5
    haze = (1 - t)[..., None] * 0.35
    ripple = _value_noise(lateral / 1.5, depth / 0.8, 104)[..., None] - 0.5
    return base * (1 - haze) + p.sky_low * haze + ripple * 18


def _objects(
    img: np.ndarray,
    p: _Photo,
    rows: np.ndarray,
    horizon: float,
    size: int,
    depth: np.ndarray,
    land: np.ndarray,
) -> np.ndarray:
    """A road (on land ground) and a pole, each in some of the views."""
    cols = (np.arange(size, dtype=np.float32) + 0.5)[None, None, :]
    t = np.clip((rows - horizon) / (size - horizon), 0, 1)
    for v in range(4):
        u = p.road[v]
        if u[0] < 0.4:
            centre = size * (0.3 + 0.4 * u[1]) * (1 - t) + size * (0.2 + 0.6 * u[2]) * t
            half = size * (0.15 + 0.2 * u[3]) * t
            road = (np.abs(cols - centre) < half)[0] & land[v]
            line = road & (np.abs(cols - centre)[0] < np.maximum(0.5, half[0] * 0.05))
            line &= (depth[v] % 6.0) < 3.0
            img[v][road] = 80 + 20 * u[4]
            img[v][line] = 225
        u = p.pole[v]
        if u[0] < 0.3:
            x = int(size * (0.05 + 0.9 * u[1]))
            bottom = horizon + (0.3 + 0.6 * u[2]) * (size - horizon)
            top = horizon - (0.15 + 0.2 * u[3]) * size
            ys = slice(max(int(top), 0), min(int(bottom), size))
            img[v, ys, x : x + max(1, size // 64)] = np.array([70, 58, 44]) * (0.7 + 0.6 * u[4])
    return img


# ------------------------------------------------------------------------------------ write


def write_sample(
    out_dir: str | Path,
    n: int,
    seed: int,
    size: int,
    boundary_path: str | Path,
    neighbours_dir: str | Path,
    workers: int | None = None,
) -> dict[str, Any]:
    """Render ``n`` places in the competition layout (synthetic; see the module docstring).

    Place ``i`` is point ``i`` of :func:`sample_points` with ``seed``; its photos use
    ``numpy.random.default_rng([seed, i])`` and its uuid is
    ``uuid5(SAMPLE_NAMESPACE, f"{seed}/{i}")``, so the output is the same for a seed and a larger
    ``n`` extends a smaller one. Everything is written into a temporary folder beside
    ``out_dir`` that then replaces it: ``out_dir`` is always the old or the new sample.

    Args:
        out_dir: the dataset folder (``data.csv``, ``images/<uuid>/<heading>.jpg``).
        n: how many places.
        seed: the seed of points and photos.
        size: side of each view in pixels.
        boundary_path: Croatia's GeoJSON.
        neighbours_dir: the neighbours' GeoJSON folder.
        workers: processes rendering in parallel (default: one per CPU core, at most 4; one
            for small samples). The output does not depend on it.

    Returns:
        ``locations``, ``images``, ``size``, ``seed``, ``views_with_sea`` (views that show
        some sea), ``mean_weights`` (karst, forest, plains at the places),
        ``seconds`` and ``locations_per_s``.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    start = time.perf_counter()
    geo = load_geography(boundary_path, neighbours_dir)
    lat, lon = sample_points(geo.boundary, n, seed)
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    workers = _workers(n, workers)
    try:
        tmp.chmod(0o777 & ~_umask())
        job = functools.partial(_render_chunk, str(tmp), seed, size, str(boundary_path),
                                str(neighbours_dir))  # fmt: skip
        chunks = [
            [(i, float(lat[i]), float(lon[i])) for i in range(k, min(n, k + _CHUNK))]
            for k in range(0, n, _CHUNK)
        ]
        bar = tqdm(total=n, desc="render geoloc sample", unit="place", disable=None)
        if workers == 1:
            results = (job(c) for c in chunks)
        else:
            ctx = multiprocessing.get_context("spawn")
            pool = concurrent.futures.ProcessPoolExecutor(workers, mp_context=ctx)
            results = pool.map(job, chunks)
        rows, with_sea, weights = [], 0, np.zeros(3)
        try:
            for part_rows, part_sea, part_weights in results:
                rows += part_rows
                with_sea += part_sea
                weights += part_weights
                bar.update(len(part_rows))
        finally:
            bar.close()
            if workers > 1:
                pool.shutdown(cancel_futures=True)
        _write_csv(tmp / DATA_CSV, rows)
        _replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    seconds = time.perf_counter() - start
    stats = {"locations": n, "images": 4 * n, "size": size, "seed": seed,
             "views_with_sea": with_sea, "mean_weights": dict(zip(
                 ("karst", "forest", "plains"), np.round(weights / n, 4).tolist(), strict=True)),
             "seconds": round(seconds, 3), "locations_per_s": round(n / seconds, 1)}  # fmt: skip
    log.info("rendered %d synthetic places (%d views with sea) into %s in %.1f s",
             n, with_sea, out, seconds)  # fmt: skip
    return stats


#: Places per task of a rendering process.
_CHUNK = 100


def _workers(n: int, workers: int | None) -> int:
    if workers is not None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        return workers
    if n < 4 * _CHUNK:
        return 1
    return max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                      else (os.cpu_count() or 1)))  # fmt: skip


def _render_chunk(
    tmp: str, seed: int, size: int, boundary_path: str, neighbours_dir: str, chunk: list
) -> tuple[list[tuple[str, str, str]], int, np.ndarray]:
    """Render and save places ``[(i, lat, lon), ...]``; their rows, sea views and weights."""
    geo = load_geography(boundary_path, neighbours_dir)
    rows, with_sea, weights = [], 0, np.zeros(3)
    for i, lat, lon in chunk:
        name = str(uuid.uuid5(SAMPLE_NAMESPACE, f"{seed}/{i}"))
        views, sc = _render(lat, lon, np.random.default_rng([seed, i]), size, geo)
        _save_views(Path(tmp) / IMAGES / name, views)
        with_sea += int((sc["sea_share"] > 0.01).any(-1).sum())
        weights += sc["weights"]
        rows.append((name, f"{lat:.7f}", f"{lon:.7f}"))
    return rows, with_sea, weights


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _save_views(folder: Path, views: np.ndarray) -> None:
    folder.mkdir(parents=True)
    for heading, view in zip(HEADINGS, views, strict=True):
        Image.fromarray(view).save(folder / f"{heading}.jpg", format="JPEG", quality=92)


def _write_csv(path: Path, rows: list[tuple[str, str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(("uuid", "latitude", "longitude"))
        writer.writerows(rows)


def _replace_dir(tmp: Path, out: Path) -> None:
    """Move ``tmp`` to ``out``; an existing ``out`` is moved aside first, then removed."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        out.rename(old)
    try:
        tmp.rename(out)
    except BaseException:
        if old is not None:
            old.rename(out)
        raise
    if old is not None:
        shutil.rmtree(old)
