"""The synthetic offline sample of study ``geoloc``: geography, rendering, the written layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import shapely

from geolab.geoloc import render
from geolab.geoloc.dataset import load_views, read_dataset

ROOT = Path(__file__).resolve().parents[1]
CROATIA = ROOT / "data" / "croatia" / "ne_10m_admin0_HRV.geojson"
NEIGHBOURS = ROOT / "data" / "croatia" / "neighbours_10m"

SPLIT = (43.508, 16.440)
MAKARSKA = (43.297, 17.017)
OSIJEK = (45.55, 18.69)
GOSPIC = (44.546, 15.375)
DELNICE = (45.40, 14.80)
N, E, S, W = range(4)


@pytest.fixture(scope="module")
def geo():
    return render.load_geography(CROATIA, NEIGHBOURS)


def views(geo, place, seeds=range(6), size=64):
    return np.stack([render.render_views(*place, np.random.default_rng(s), size, geo=geo)
                     for s in seeds])  # fmt: skip


def blue_share(v, cols=slice(None), top=0.5):
    """Share of sea-blue pixels below row ``top * S`` of each view, ``v``: (..., 4, S, S, 3)."""
    low = v[..., int(v.shape[-3] * top) :, cols, :].astype(int)
    r, g, b = low[..., 0], low[..., 1], low[..., 2]
    return ((b > r + 30) & (b > g + 10)).mean(axis=(-1, -2))


def test_geography_classes_and_distance_to_sea(geo):
    cls, coast = geo.lookup(np.array([43.0, OSIJEK[0], 46.3]), np.array([15.5, OSIJEK[1], 14.1]))
    assert cls.tolist() == [render.SEA, render.CROATIA, render.OTHER_LAND]  # Adriatic, -, Slovenia
    assert coast[0] == 0 and 200 < coast[1] < 350
    # Austria, at the raster's northern edge, is nobody's land in the files but not the sea
    assert geo.lookup(46.75, 14.5)[0] == render.OTHER_LAND
    # Split falls in the sea on Natural Earth's generalised coast; it is moved ashore
    assert geo.lookup(*SPLIT)[0] == render.SEA
    lat, lon = geo.snap_to_land(*SPLIT)
    assert geo.lookup(lat, lon)[0] == render.CROATIA and abs(lat - SPLIT[0]) < 0.03
    assert geo.snap_to_land(*OSIJEK) == OSIJEK


def test_sample_points_inside_the_boundary_and_deterministic(geo):
    lat, lon = render.sample_points(geo.boundary, 300, seed=3)
    assert lat.shape == lon.shape == (300,)
    assert shapely.contains_xy(geo.boundary, lon, lat).all()
    again = render.sample_points(geo.boundary, 300, seed=3)
    np.testing.assert_array_equal(lat, again[0])
    np.testing.assert_array_equal(lon, again[1])
    more = render.sample_points(geo.boundary, 2000, seed=3)  # a larger sample extends it
    np.testing.assert_array_equal(more[0][:300], lat)
    assert not np.array_equal(render.sample_points(geo.boundary, 300, seed=4)[0], lat)
    # spread over the whole country, not one corner
    assert lon.min() < 14.5 and lon.max() > 18.5 and lat.min() < 43.5 and lat.max() > 46.0


def test_render_views_shape_and_determinism(geo):
    a = render.render_views(*GOSPIC, np.random.default_rng(7), 48, geo=geo)
    b = render.render_views(*GOSPIC, np.random.default_rng(7), 48, geo=geo)
    c = render.render_views(*GOSPIC, np.random.default_rng(8), 48, geo=geo)
    assert a.shape == (4, 48, 48, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert not np.array_equal(a[N], a[S])  # the views differ by heading
    with pytest.raises(ValueError, match="size must be >= 8"):
        render.render_views(*GOSPIC, np.random.default_rng(0), 4, geo=geo)


def test_coast_facing_the_sea_shows_sea(geo):
    split_views = views(geo, SPLIT)
    split = blue_share(split_views).mean(0)
    assert split[S] > 0.5 and split[W] > 0.5
    # the east view looks north-east (inland, Mosor) on its left half, south-east on its right
    assert blue_share(split_views[:, E], slice(0, 28)).mean() < 0.05
    assert blue_share(split_views[:, E], slice(40, 64)).mean() > 0.3
    # Makarska: the sea to the south and west, Biokovo to the north-east
    makarska = blue_share(views(geo, MAKARSKA)).mean(0)
    assert makarska[S] > 0.5 and makarska[W] > 0.5 and makarska[E] < 0.1


def test_inland_shows_no_sea(geo):
    for place in (OSIJEK, GOSPIC, DELNICE):
        sc = render.scene(*place, geo)
        assert (sc["sea_share"] < 0.01).all(), place
        # below 60 % of the height: the horizon is at 50 % +- 4 % (camera pitch), so no sky
        assert blue_share(views(geo, place, seeds=range(3)), top=0.6).max() < 0.02, place


def test_sea_share_grows_as_the_coast_gets_closer(geo):
    # walking inland from the coast at Makarska towards the north-east, looking south-west
    shares = [render.scene(43.297 + d, 17.017 + d, geo)["sea_share"][W].mean()
              for d in (0.0, 0.03, 0.06, 0.1, 0.2)]  # fmt: skip
    assert shares[0] > 0.5 and shares[-1] == 0
    assert all(a >= b for a, b in zip(shares, shares[1:], strict=False))


def test_slavonia_is_flatter_and_greener_than_lika(geo):
    osijek, gospic = views(geo, OSIJEK), views(geo, GOSPIC)

    def greenness(v):  # of the ground near the camera
        low = v[..., 48:, :, :].astype(float)
        return (low[..., 1] - (low[..., 0] + low[..., 2]) / 2).mean()

    def skyline_spread(v):  # row of the strongest vertical change in the upper part, per column
        grey = v[..., :40, :, :].astype(float).mean(-1)
        return np.abs(np.diff(grey, axis=-2)).argmax(-2).std(-1).mean()

    assert greenness(osijek) > greenness(gospic) + 10
    assert skyline_spread(osijek) < skyline_spread(gospic)
    flat = render.scene(*OSIJEK, geo)
    karst = render.scene(*GOSPIC, geo)
    assert (flat["far"] + flat["near"]).std() * 3 < (karst["far"] + karst["near"]).std()
    assert (flat["far"] + flat["near"]).max() < 0.03  # about a tree line, nothing more


def test_region_weights_vary_smoothly_and_sum_to_one(geo):
    def weights(place):
        return render.scene(*place, geo)["weights"]

    assert weights(OSIJEK)[2] > 0.9  # plains
    assert weights(GOSPIC)[0] > 0.6  # karst
    assert weights(DELNICE)[1] > 0.6  # forest
    assert weights(SPLIT)[0] > 0.9
    # a line from Gospic to Osijek: weights change gradually, no region boundary jumps
    t = np.linspace(0, 1, 200)
    lat, lon = GOSPIC[0] + t * (OSIJEK[0] - GOSPIC[0]), GOSPIC[1] + t * (OSIJEK[1] - GOSPIC[1])
    w = render.region_weights(lat, geo.lookup(lat, lon)[1])
    np.testing.assert_allclose(w.sum(0), 1, atol=1e-5)
    assert np.abs(np.diff(w, axis=1)).max() < 0.1


def test_nearby_places_see_similar_skylines(geo):
    base = render.scene(*GOSPIC, geo)["far"]
    near = render.scene(GOSPIC[0] + 0.003, GOSPIC[1], geo)["far"]  # ~330 m
    far = render.scene(GOSPIC[0] - 0.3, GOSPIC[1] + 0.3, geo)["far"]  # ~40 km
    assert np.abs(base - near).mean() * 3 < np.abs(base - far).mean()


def test_write_sample_layout_determinism_and_replacement(tmp_path):
    out = tmp_path / "sample"
    out.mkdir()
    (out / "stale.txt").write_text("from an earlier run")
    stats = render.write_sample(out, 5, 11, 32, CROATIA, NEIGHBOURS)
    assert stats["locations"] == 5 and stats["images"] == 20 and stats["size"] == 32
    assert set(stats["mean_weights"]) == {"karst", "forest", "plains"}
    assert not (out / "stale.txt").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no leftovers
    records, report = read_dataset(out)
    assert report["records"] == 5 and sum(report["skipped"].values()) == 0
    assert (out / "data.csv").read_text().splitlines()[0] == "uuid,latitude,longitude"
    lat, lon = render.sample_points(render.load_geography(CROATIA, NEIGHBOURS).boundary, 5, 11)
    np.testing.assert_allclose([r.lat for r in records], lat, atol=1e-6)
    np.testing.assert_allclose([r.lon for r in records], lon, atol=1e-6)
    assert load_views(records[0], 32).shape == (4, 32, 32, 3)

    files = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    render.write_sample(tmp_path / "again", 5, 11, 32, CROATIA, NEIGHBOURS)
    again = tmp_path / "again"
    assert files == {p.relative_to(again): p.read_bytes() for p in again.rglob("*") if p.is_file()}
    # a larger sample keeps the first places
    render.write_sample(tmp_path / "more", 7, 11, 32, CROATIA, NEIGHBOURS)
    more = (tmp_path / "more" / "data.csv").read_text().splitlines()
    assert more[:6] == (out / "data.csv").read_text().splitlines()


def test_write_sample_failure_leaves_the_old_sample(tmp_path, monkeypatch):
    out = tmp_path / "sample"
    render.write_sample(out, 2, 0, 16, CROATIA, NEIGHBOURS)
    before = (out / "data.csv").read_text()

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(render, "_save_views", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        render.write_sample(out, 3, 1, 16, CROATIA, NEIGHBOURS)
    assert (out / "data.csv").read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["sample"]
