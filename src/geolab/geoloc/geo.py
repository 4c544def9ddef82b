"""Geodesy for study ``geoloc``: great-circle distance, the Croatian metric CRS, normalisation.

Positions live in two systems: WGS 84 latitude/longitude (what photos and metrics use) and
HTRS96/TM, EPSG:3765 (Croatia's official transverse Mercator, metres; what grids, regression
targets and centroids use). Within Croatia HTRS96 and WGS 84 agree to well under a metre, so the
transformation is a plain projection and PROJ needs no grid files (and so no network).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pyproj
import shapely

from geolab.common.io import read_json

#: Mean Earth radius (IUGG R1), km.
EARTH_RADIUS_KM = 6371.0088
#: HTRS96 / Croatia TM, the metric CRS of the study.
HTRS96_TM = "EPSG:3765"
#: WGS 84 latitude/longitude.
WGS84 = "EPSG:4326"


def haversine_km(lat1: Any, lon1: Any, lat2: Any, lon2: Any) -> np.ndarray:
    """Great-circle distance on a sphere of radius :data:`EARTH_RADIUS_KM`.

    Args:
        lat1: latitudes of the first points, degrees; any shape that broadcasts with the others.
        lon1: longitudes of the first points, degrees.
        lat2: latitudes of the second points, degrees.
        lon2: longitudes of the second points, degrees.

    Returns:
        Distances in km, of the broadcast shape (a 0-d array for scalars).
    """
    p1, l1, p2, l2 = (np.radians(np.asarray(v, dtype=float)) for v in (lat1, lon1, lat2, lon2))
    a = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin((l2 - l1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


class Projector:
    """Latitude/longitude <-> metric coordinates (default HTRS96/TM, EPSG:3765), vectorised.

    Args:
        crs: the metric CRS (anything :class:`pyproj.CRS` accepts).
    """

    def __init__(self, crs: str | int = HTRS96_TM) -> None:
        self.crs = pyproj.CRS.from_user_input(crs)
        self._fwd = pyproj.Transformer.from_crs(WGS84, self.crs, always_xy=True)
        self._inv = pyproj.Transformer.from_crs(self.crs, WGS84, always_xy=True)

    def to_xy(self, lat: Any, lon: Any) -> tuple[np.ndarray, np.ndarray]:
        """Project latitude/longitude (degrees) to ``(x, y)`` (easting, northing) in metres."""
        x, y = self._fwd.transform(np.asarray(lon, dtype=float), np.asarray(lat, dtype=float))
        return np.asarray(x), np.asarray(y)

    def to_latlon(self, x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        """Unproject ``(x, y)`` in metres to ``(lat, lon)`` in degrees."""
        lon, lat = self._inv.transform(np.asarray(x, dtype=float), np.asarray(y, dtype=float))
        return np.asarray(lat), np.asarray(lon)

    def geometry_to_xy(self, geom: shapely.Geometry) -> shapely.Geometry:
        """Project a shapely geometry in lon/lat to the metric CRS."""
        return shapely.transform(geom, lambda c: np.column_stack(self._fwd.transform(*c.T)))


def mean_position(lat: Any, lon: Any) -> tuple[float, float]:
    """The mean of positions, averaged in EPSG:3765 metres, as latitude/longitude."""
    proj = Projector()
    x, y = proj.to_xy(lat, lon)
    mlat, mlon = proj.to_latlon(np.mean(x), np.mean(y))
    return float(mlat), float(mlon)


@dataclasses.dataclass
class Normaliser:
    """Min-max scaling of metric coordinates to ``[0, 1]``, fitted on the training split only.

    Validation and test points may map outside ``[0, 1]``; that is intended (fitting on them
    would leak). Save it in a checkpoint with :meth:`to_dict` and rebuild it with
    :meth:`from_dict`.

    Attributes:
        x_min: smallest training x; ``None`` until fitted.
        x_max: largest training x.
        y_min: smallest training y.
        y_max: largest training y.
    """

    x_min: float | None = None
    x_max: float | None = None
    y_min: float | None = None
    y_max: float | None = None

    def fit(self, x: Any, y: Any) -> Normaliser:
        """Take the ranges from training coordinates; returns ``self``.

        Raises:
            ValueError: no points, non-finite values, or a zero range in x or y.
        """
        x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
        if x.size == 0 or x.shape != y.shape or not np.isfinite([x, y]).all():
            raise ValueError("Normaliser.fit: x and y must be non-empty finite arrays of one shape")
        self.x_min, self.x_max = float(x.min()), float(x.max())
        self.y_min, self.y_max = float(y.min()), float(y.max())
        if self.x_max <= self.x_min or self.y_max <= self.y_min:
            raise ValueError("Normaliser.fit: training coordinates have a zero range in x or y")
        return self

    def transform(self, x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        """Metres to normalised ``(u, v)``; training points fall in ``[0, 1]``."""
        self._check()
        u = (np.asarray(x, dtype=float) - self.x_min) / (self.x_max - self.x_min)
        v = (np.asarray(y, dtype=float) - self.y_min) / (self.y_max - self.y_min)
        return u, v

    def inverse(self, u: Any, v: Any) -> tuple[np.ndarray, np.ndarray]:
        """Normalised ``(u, v)`` back to metres ``(x, y)``."""
        self._check()
        x = np.asarray(u, dtype=float) * (self.x_max - self.x_min) + self.x_min
        y = np.asarray(v, dtype=float) * (self.y_max - self.y_min) + self.y_min
        return x, y

    def to_dict(self) -> dict[str, float]:
        """The fitted ranges as plain floats (for a checkpoint or JSON)."""
        self._check()
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, float]) -> Normaliser:
        """Rebuild from :meth:`to_dict`'s output."""
        norm = cls(**{k: float(data[k]) for k in ("x_min", "x_max", "y_min", "y_max")})
        norm._check()
        return norm

    def _check(self) -> None:
        if None in (self.x_min, self.x_max, self.y_min, self.y_max):
            raise RuntimeError("Normaliser is not fitted: call fit(x, y) on the training split")


class Boundary(NamedTuple):
    """A country boundary in both coordinate systems (shapely geometries, prepared)."""

    lonlat: shapely.Geometry
    xy: shapely.Geometry


def read_polygons(path: str | Path) -> shapely.Geometry:
    """The union of the (multi)polygons of a GeoJSON file (geometry, Feature or collection).

    Raises:
        ValueError: the file is not GeoJSON or holds no polygon (names the file).
    """
    data = read_json(path)
    kind = data.get("type") if isinstance(data, dict) else None
    if kind == "FeatureCollection":
        geoms = [f.get("geometry") for f in data.get("features") or []]
    else:
        geoms = [data.get("geometry")] if kind == "Feature" else [data]
    try:
        shapes = [shapely.geometry.shape(g) for g in geoms if g]
    except (AttributeError, KeyError, TypeError, ValueError, shapely.errors.ShapelyError) as err:
        raise ValueError(f"{path}: not a GeoJSON geometry ({err})") from None
    polys = [s for s in shapes if s.geom_type in ("Polygon", "MultiPolygon") and not s.is_empty]
    if not polys:
        raise ValueError(f"{path}: no Polygon or MultiPolygon in the file")
    return shapely.union_all(polys)


def load_boundary(path: str | Path, crs: str | int = HTRS96_TM) -> Boundary:
    """Read a GeoJSON boundary (geometry, Feature or FeatureCollection) and project it.

    Args:
        path: e.g. ``data/croatia/ne_10m_admin0_HRV.geojson`` (lon/lat, WGS 84).
        crs: the metric CRS of the projected copy.

    Returns:
        ``Boundary(lonlat, xy)``: the union of the file's polygons as a (Multi)Polygon in
        lon/lat degrees, and the same projected to ``crs`` (metres).

    Raises:
        ValueError: the file is not GeoJSON or holds no polygon (names the file).
    """
    lonlat = shapely.make_valid(read_polygons(path))
    xy = shapely.make_valid(Projector(crs).geometry_to_xy(lonlat))
    shapely.prepare(lonlat)
    shapely.prepare(xy)
    return Boundary(lonlat, xy)
