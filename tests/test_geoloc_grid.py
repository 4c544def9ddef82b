"""geoloc: haversine, HTRS96/TM projection, normaliser, grid classes and their files."""

import json
import math
from pathlib import Path

import numpy as np
import pyproj
import pytest
import shapely
from matplotlib.figure import Figure

from geolab.common.params import ParamsError, from_dict
from geolab.geoloc.config import GridParams
from geolab.geoloc.geo import (
    EARTH_RADIUS_KM,
    Normaliser,
    Projector,
    haversine_km,
    load_boundary,
)
from geolab.geoloc.grid import (
    CENTROID_KINDS,
    COLUMNS,
    assign_cells,
    centroids,
    grid_figure,
    grid_shape,
    load_grid,
    make_grid,
    save_grid,
)

pyproj.network.set_network_enabled(False)

ROOT = Path(__file__).resolve().parents[1]
BOUNDARY = ROOT / "data" / "croatia" / "ne_10m_admin0_HRV.geojson"
ZAGREB = (45.815, 15.982)
SPLIT = (43.508, 16.440)
# Toy grid offset into Croatia's part of EPSG:3765 so that lat/lon conversions are ordinary.
OX, OY = 400_000.0, 5_000_000.0


@pytest.fixture(scope="module")
def boundary():
    return load_boundary(BOUNDARY)


@pytest.fixture(scope="module")
def train_xy(boundary):
    """300 points uniform (in EPSG:3765) inside the real boundary, seeded."""
    rng = np.random.default_rng(0)
    x0, y0, x1, y1 = boundary.xy.bounds
    pts = np.empty((0, 2))
    while len(pts) < 300:
        cand = rng.uniform([x0, y0], [x1, y1], size=(1000, 2))
        pts = np.concatenate([pts, cand[shapely.contains_xy(boundary.xy, *cand.T)]])
    return pts[:300]


@pytest.fixture(scope="module")
def grid(boundary, train_xy):
    return make_grid(boundary.xy, train_xy, cells=30)


def _toy():
    """Land: box A in square (0, 0) and a triangle in the NE corner of square (3, 1).

    Bounds (0, 0, 400, 200) and 8 cells: 4 x 2 squares of side 100 with origin (0, 0).
    """
    land = shapely.union_all(
        [shapely.box(0, 0, 80, 80), shapely.Polygon([(400, 200), (400, 170), (370, 200)])]
    )
    pts = np.array([[20, 30], [60, 50], [395, 195], [250, 50]], dtype=float)  # last: sea
    shift = np.array([OX, OY])
    return shapely.affinity.translate(land, OX, OY), pts + shift, shift


# ------------------------------------------------------------------------------ haversine


def test_haversine_known_distances():
    assert haversine_km(*ZAGREB, *SPLIT) == pytest.approx(259.07, abs=1.0)
    assert haversine_km(*ZAGREB, *ZAGREB) == 0.0
    assert haversine_km(0, 0, 0, 1) == pytest.approx(EARTH_RADIUS_KM * math.pi / 180)
    assert haversine_km(0, 0, 90, 0) == pytest.approx(EARTH_RADIUS_KM * math.pi / 2)
    assert haversine_km(0, 0, 0, 180) == pytest.approx(EARTH_RADIUS_KM * math.pi)


def test_haversine_vectorised_and_symmetric():
    lat = np.array([ZAGREB[0], SPLIT[0], 45.0])
    lon = np.array([ZAGREB[1], SPLIT[1], 14.0])
    d = haversine_km(lat[:, None], lon[:, None], lat[None, :], lon[None, :])
    assert d.shape == (3, 3)
    np.testing.assert_allclose(d, d.T)
    np.testing.assert_allclose(np.diag(d), 0.0, atol=1e-9)


# ------------------------------------------------------------------------------ projection


def test_zagreb_projects_to_htrs96():
    x, y = Projector().to_xy(*ZAGREB)
    # Verified with pyproj 3.7 (EPSG:4326 -> EPSG:3765): 459744.53 m E, 5075146.21 m N.
    assert float(x) == pytest.approx(459_744.53, abs=1.0)
    assert float(y) == pytest.approx(5_075_146.21, abs=1.0)
    assert 457_000 < x < 460_000 and 5_073_000 < y < 5_076_000


def test_projection_round_trip():
    rng = np.random.default_rng(1)
    lat, lon = rng.uniform(42.4, 46.6, 50), rng.uniform(13.5, 19.4, 50)
    proj = Projector()
    x, y = proj.to_xy(lat, lon)
    assert x.shape == (50,)
    lat2, lon2 = proj.to_latlon(x, y)
    np.testing.assert_allclose(lat2, lat, atol=1e-6)
    np.testing.assert_allclose(lon2, lon, atol=1e-6)


def test_load_boundary(boundary):
    assert boundary.lonlat.geom_type == "MultiPolygon"
    west, south, east, north = boundary.lonlat.bounds
    assert (west, south, east, north) == pytest.approx((13.50, 42.42, 19.41, 46.55), abs=0.01)
    assert 54_000 < boundary.xy.area / 1e6 < 57_000  # km², Croatia's land is ~56,600
    x, y = Projector().to_xy(*ZAGREB)
    assert shapely.contains_xy(boundary.xy, x, y)
    assert shapely.contains_xy(boundary.lonlat, ZAGREB[1], ZAGREB[0])


def test_load_boundary_rejects_non_polygons(tmp_path):
    path = tmp_path / "p.geojson"
    path.write_text(json.dumps({"type": "Point", "coordinates": [16, 45]}))
    with pytest.raises(ValueError, match="no Polygon"):
        load_boundary(path)


# ------------------------------------------------------------------------------ normaliser


def test_normaliser_fitted_on_train_only():
    train_x, train_y = np.array([100.0, 300.0, 200.0]), np.array([10.0, 50.0, 30.0])
    norm = Normaliser().fit(train_x, train_y)
    u, v = norm.transform(train_x, train_y)
    np.testing.assert_allclose(u, [0.0, 1.0, 0.5])
    np.testing.assert_allclose(v, [0.0, 1.0, 0.5])
    val_u, val_v = norm.transform([0.0, 500.0], [60.0, 0.0])  # outside the training range
    np.testing.assert_allclose(val_u, [-0.5, 2.0])
    np.testing.assert_allclose(val_v, [1.25, -0.25])
    x, y = norm.inverse(val_u, val_v)
    np.testing.assert_allclose(x, [0.0, 500.0])
    np.testing.assert_allclose(y, [60.0, 0.0])


def test_normaliser_dict_round_trip():
    norm = Normaliser().fit([1.0, 5.0], [2.0, 4.0])
    data = json.loads(json.dumps(norm.to_dict()))
    assert data == {"x_min": 1.0, "x_max": 5.0, "y_min": 2.0, "y_max": 4.0}
    again = Normaliser.from_dict(data)
    np.testing.assert_allclose(again.transform(3.0, 3.0), (0.5, 0.5))


def test_normaliser_errors():
    with pytest.raises(RuntimeError, match="not fitted"):
        Normaliser().transform(1.0, 2.0)
    with pytest.raises(ValueError, match="zero range"):
        Normaliser().fit([1.0, 1.0], [2.0, 3.0])


# ------------------------------------------------------------------------------ grid


def test_grid_shape_hand_values():
    assert grid_shape((0, 0, 600, 300), 8) == (4, 2, 150.0)
    assert grid_shape((0, 0, 400, 200), 8) == (4, 2, 100.0)
    assert grid_shape((0, 0, 100, 50), 1) == (1, 1, 100.0)
    with pytest.raises(ValueError, match="cells"):
        grid_shape((0, 0, 1, 1), 0)


def test_toy_grid_by_hand():
    land, pts, shift = _toy()
    g = make_grid(land, pts, cells=8)
    assert list(g.columns) == list(COLUMNS)
    assert g.crs.to_epsg() == 3765
    # Squares 1, 2 (sea; 2 holds a training point) and the empty land-less rest are dropped.
    assert g["cell_id"].tolist() == [0, 1]
    assert g["n_train"].tolist() == [2, 1]
    np.testing.assert_allclose(centroids(g, "centroid") - shift, [[50, 50], [350, 150]])
    # Cell 0's centre is on land; cell 1's is in the sea: nearest land point in its square is the
    # foot of the perpendicular on the triangle's hypotenuse x + y = 570.
    np.testing.assert_allclose(centroids(g, "clipped") - shift, [[50, 50], [385, 185]], atol=1e-6)
    np.testing.assert_allclose(centroids(g, "weighted") - shift, [[40, 40], [395, 195]])
    np.testing.assert_allclose(g.geometry.iloc[1].bounds, (OX + 300, OY + 100, OX + 400, OY + 200))


def test_toy_lat_lon_columns_match_projector():
    land, pts, _ = _toy()
    g = make_grid(land, pts, cells=8)
    for kind in CENTROID_KINDS:
        lat, lon = Projector().to_latlon(g[f"{kind}_x"], g[f"{kind}_y"])
        np.testing.assert_allclose(g[f"{kind}_lat"], lat)
        np.testing.assert_allclose(g[f"{kind}_lon"], lon)


def test_toy_assign_cells():
    land, pts, shift = _toy()
    g = make_grid(land, pts, cells=8)
    query = np.array(
        [
            [20, 30],  # inside kept square 0
            [395, 195],  # inside kept square 1
            [400, 200],  # the grid's outer NE corner: closed edge, square 1
            [250, 50],  # dropped square: centres at 200 vs 141 m -> cell 1
            [100, 50],  # edge of dropped square (1, 0): nearest centre is cell 0's
            [-500, 0],  # outside the grid -> nearest centre, cell 0
        ]
    )
    q = query + shift
    assert assign_cells(g, q[:, 0], q[:, 1]).tolist() == [0, 1, 1, 1, 0, 0]
    assert assign_cells(g, q[:2, 0].reshape(2, 1), q[:2, 1].reshape(2, 1)).shape == (2, 1)


def test_real_grid_cells(grid, boundary, train_xy):
    nx, ny, _ = grid_shape(boundary.xy.bounds, 30)
    assert nx * ny == 30
    assert 5 < len(grid) < 30  # squares off Croatia (the Adriatic, Bosnia) are gone
    assert grid["cell_id"].tolist() == list(range(len(grid)))
    assert (grid["n_train"] >= 1).all()
    assert grid["n_train"].sum() == len(train_xy)  # every point is on land, so in a kept square
    assert shapely.intersects(grid.geometry.values, boundary.xy).all()


def test_real_grid_clipped_on_land(grid, boundary):
    clipped = shapely.points(centroids(grid, "clipped"))
    assert (shapely.distance(clipped, boundary.xy) <= 1.0).all()
    assert (shapely.distance(clipped, grid.geometry.values) <= 1.0).all()  # in its own square
    centre = shapely.points(centroids(grid, "centroid"))
    on_land = shapely.covers(boundary.xy, centre)
    assert (~on_land).any()  # some centres are in the sea: snapping matters
    moved = shapely.distance(centre, clipped) > 0
    assert (moved == ~on_land).all()


def test_real_grid_weighted_is_mean(grid, train_xy):
    ids = assign_cells(grid, train_xy[:, 0], train_xy[:, 1])
    np.testing.assert_array_equal(np.bincount(ids, minlength=len(grid)), grid["n_train"])
    for cid in (0, len(grid) - 1):
        np.testing.assert_allclose(centroids(grid, "weighted")[cid], train_xy[ids == cid].mean(0))


def test_assign_cells_square_centres(grid):
    centre = centroids(grid, "centroid")
    assert assign_cells(grid, centre[:, 0], centre[:, 1]).tolist() == grid["cell_id"].tolist()


def test_make_grid_errors(boundary):
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        make_grid(boundary.xy, np.zeros(3), 30)
    with pytest.raises(ValueError, match="no grid square"):
        make_grid(boundary.xy, np.array([[0.0, 0.0]]), 30)


def test_centroids_unknown_kind(grid):
    with pytest.raises(ValueError, match="valid: centroid, clipped, weighted"):
        centroids(grid, "median")


# ------------------------------------------------------------------------------ files


@pytest.mark.parametrize("name", ["grid.gpkg", "grid.geojson"])
def test_save_load_round_trip(grid, tmp_path, name):
    path = tmp_path / "sub" / name
    save_grid(grid, path)
    save_grid(grid, path)  # overwriting works
    assert sorted(p.name for p in path.parent.iterdir()) == [name]  # no temporary left
    back = load_grid(path)
    assert list(back.columns) == list(COLUMNS)
    assert back.crs.to_epsg() == 3765
    assert back.dtypes.to_dict() == grid.dtypes.to_dict()
    data = grid.drop(columns="geometry")
    np.testing.assert_allclose(back.drop(columns="geometry").to_numpy(), data.to_numpy())
    a = shapely.get_coordinates(back.geometry.values)
    np.testing.assert_allclose(a, shapely.get_coordinates(grid.geometry.values), atol=1e-3)


def test_gpkg_bytes_do_not_depend_on_the_time(grid, tmp_path):
    import time

    import pyogrio

    save_grid(grid, tmp_path / "a.gpkg")
    time.sleep(1.1)  # GDAL's own timestamp has a resolution of a second or finer
    save_grid(grid, tmp_path / "b.gpkg")
    assert (tmp_path / "a.gpkg").read_bytes() == (tmp_path / "b.gpkg").read_bytes()
    assert pyogrio.get_gdal_config_option("OGR_CURRENT_DATE") is None  # restored


def test_geojson_is_wgs84(grid, tmp_path):
    path = tmp_path / "grid.geojson"
    save_grid(grid, path)
    feature = json.loads(path.read_text())["features"][0]
    lon, lat = np.array(feature["geometry"]["coordinates"][0]).T
    assert (12 < lon).all() and (lon < 21).all() and (41 < lat).all() and (lat < 48).all()


def test_save_grid_unknown_extension(grid, tmp_path):
    with pytest.raises(ValueError, match="unknown grid format"):
        save_grid(grid, tmp_path / "grid.shp")
    assert not list(tmp_path.iterdir())


# ------------------------------------------------------------------------------ figure, params


def test_grid_figure_legend(grid, boundary, train_xy):
    fig = grid_figure(grid, boundary.xy, train_xy)
    assert isinstance(fig, Figure)
    texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    for kind in CENTROID_KINDS:
        assert any(t.startswith(kind) for t in texts), texts


def test_grid_params():
    p = from_dict(GridParams, {"cells": 50, "centroid": "clipped"}, "params.yaml: geoloc.grid")
    assert (p.cells, p.centroid) == (50, "clipped")
    assert GridParams() == GridParams(cells=30, centroid="weighted")
    with pytest.raises(ParamsError, match="geoloc.grid.centroid"):
        from_dict(GridParams, {"centroid": "median"}, "params.yaml: geoloc.grid")
    with pytest.raises(ParamsError, match="cells"):
        from_dict(GridParams, {"cells": 0}, "params.yaml: geoloc.grid")
