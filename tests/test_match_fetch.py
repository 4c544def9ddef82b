"""The Sentinel-2 STAC fetcher of study ``match`` against a local STAC API and COG server."""

from __future__ import annotations

import collections
import json
import math
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from aiohttp import web
from local_server import BackgroundServer
from PIL import Image
from rasterio.transform import from_origin
from rasterio.warp import transform_bounds

from geolab.common.io import read_json
from geolab.match.fetch import (
    FetchError,
    FetchParams,
    _next_request,
    datetime_range,
    fetch,
    read_chip,
    search_body,
)

ORIGIN = (700000.0, 5600000.0)  # upper-left corner in EPSG:32636, 10 m pixels, 256 x 256
# a lon/lat box well inside the raster (from the UTM box 700500..701500 x 5598200..5599200)
_LL = transform_bounds("EPSG:32636", "EPSG:4326", 700500, 5598200, 701500, 5599200)
BBOX = [round(v, 4) for v in (_LL[0] + 1e-4, _LL[1] + 1e-4, _LL[2] - 1e-4, _LL[3] - 1e-4)]


def write_cog(path: Path, data: np.ndarray) -> None:
    """A tiled GeoTIFF with overviews (all GDAL needs for range reads) in EPSG:32636."""
    bands, h, w = data.shape
    profile = {
        "driver": "GTiff", "width": w, "height": h, "count": bands, "dtype": data.dtype,
        "crs": "EPSG:32636", "transform": from_origin(*ORIGIN, 10, 10),
        "tiled": True, "blockxsize": 64, "blockysize": 64,
    }  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        dst.build_overviews([2, 4])


def source(k: int, bands: int = 3, dtype: Any = np.uint8) -> np.ndarray:
    """Distinct, position-dependent contents for scene ``k`` (never 0, the nodata value)."""
    idx = np.arange(bands * 256 * 256).reshape(bands, 256, 256)
    return (1 + (idx * (7 + 2 * k) + 13 * k) % 250).astype(dtype)


def expected_window(bbox: list[float]) -> tuple[int, int, int, int]:
    """Row/col slice bounds of the bbox reprojected to the raster, widened to whole pixels."""
    left, bottom, right, top = transform_bounds("EPSG:4326", "EPSG:32636", *bbox, densify_pts=21)
    c0, c1 = math.floor((left - ORIGIN[0]) / 10), math.ceil((right - ORIGIN[0]) / 10)
    r0, r1 = math.floor((ORIGIN[1] - top) / 10), math.ceil((ORIGIN[1] - bottom) / 10)
    return r0, r1, c0, c1


# The COG file server runs in its own process: rasterio holds the GIL during some GDAL reads
# (TIFF directories), which would stall a server thread in this process until curl times out.
COG_SERVER = r"""
import asyncio, sys
from pathlib import Path
from aiohttp import web

root, log = Path(sys.argv[1]), open(sys.argv[2], "a", buffering=1)

async def cog(request):
    log.write(f"{request.method} {request.match_info['name']}\n")
    path = root / request.match_info["name"]
    if not path.is_file():
        raise web.HTTPNotFound()
    return web.FileResponse(path)  # answers Range requests with 206

async def main():
    app = web.Application()
    app.router.add_get("/cogs/{token}/{name}", cog)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    print(runner.addresses[0][1], flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


class StacServer:
    """A tiny STAC API (``POST /search`` paged by ``next`` links) plus COGs with Range support.

    ``faults`` is a list of HTTP statuses sent (in order) before /search answers normally;
    ``hits`` counts /search requests, :meth:`cog_hits` the COG requests (HEAD and GET);
    ``bodies`` keeps the search bodies.
    """

    def __init__(self, root: Path, page_size: int = 2) -> None:
        self.root = root
        self.page_size = page_size
        self.features: list[dict[str, Any]] = []
        self.faults: list[int] = []
        self.hits: collections.Counter = collections.Counter()
        self.bodies: list[dict[str, Any]] = []
        self.token = uuid.uuid4().hex  # unique paths: GDAL caches by URL across tests
        self._log = root.parent / f"cog-hits-{self.token}.log"
        self._cogs = subprocess.Popen(
            [sys.executable, "-c", COG_SERVER, str(root), str(self._log)], stdout=subprocess.PIPE
        )
        self.cog_port = int(self._cogs.stdout.readline())
        app = web.Application()
        app.router.add_post("/v1/search", self._search)
        self._server = BackgroundServer(app)
        self.port = self._server.port

    @property
    def stac_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def href(self, name: str) -> str:
        return f"http://127.0.0.1:{self.cog_port}/cogs/{self.token}/{name}"

    def cog_hits(self) -> int:
        return len(self._log.read_text().splitlines()) if self._log.exists() else 0

    def add_item(self, item_id: str, date: str, assets: dict[str, str], cloud: float = 5.0):
        self.features.append({
            "type": "Feature", "id": item_id, "collection": "sentinel-2-l2a",
            "properties": {"datetime": date, "eo:cloud_cover": cloud, "s2:mgrs_tile": "36UYA",
                           "grid:code": "MGRS-36UYA"},
            "assets": {k: {"href": self.href(v), "type": "image/tiff"} for k, v in assets.items()},
        })  # fmt: skip

    async def _search(self, request: web.Request) -> web.Response:
        self.hits["search"] += 1
        if self.faults:
            status = self.faults.pop(0)
            headers = {"Retry-After": "0"} if status == 429 else {}
            return web.Response(status=status, text="busy", headers=headers)
        body = await request.json()
        self.bodies.append(body)
        start = int(body.get("next", 0))
        size = min(self.page_size, int(body.get("limit", 10)))
        page = self.features[start : start + size]
        links = []
        if start + size < len(self.features):
            links.append({"rel": "next", "href": f"{self.stac_url}/search", "method": "POST",
                          "body": {"next": str(start + size)}, "merge": True})  # fmt: skip
        return web.json_response({"type": "FeatureCollection", "features": page, "links": links})

    def close(self) -> None:
        self._cogs.terminate()
        self._cogs.wait(5)
        self._cogs.stdout.close()
        self._server.close()


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "cogs"
    root.mkdir()
    srv = StacServer(root)
    for k, date in enumerate(["2023-03-02T08:46:13Z", "2023-06-10T08:46:11Z", "2023-09-08"]):
        write_cog(root / f"scene{k}.tif", source(k))
        srv.add_item(f"S2B_36UYA_{date[:10].replace('-', '')}_0_L2A", date,
                     {"visual": f"scene{k}.tif", "thumbnail": "none.jpg"})  # fmt: skip
    yield srv
    srv.close()


def params(srv: StacServer, **kw: Any) -> FetchParams:
    base = {"stac_url": srv.stac_url, "bbox": BBOX, "start": "2023-01-01", "end": "2023-12-31",
            "size_px": None, "concurrency": 2, "retries": 3, "backoff": 0.01,
            "timeout_s": 10.0}  # fmt: skip
    return FetchParams(**{**base, **kw})


# ------------------------------------------------------------------------------------- tests


def test_chips_equal_the_source_window_and_the_manifest_describes_them(server, tmp_path):
    server.faults = [429, 500]
    out = tmp_path / "out"
    stats = fetch(params(server, max_cloud=15), out)
    assert stats["fetched"] == 3 and stats["found"] == 3 and stats["pages"] == 2
    assert stats["failed"] == stats["skipped"] == stats["missing_asset"] == 0
    assert server.hits["search"] == 4  # 429, 500, then two pages
    body = server.bodies[0]
    assert body["bbox"] == BBOX and body["collections"] == ["sentinel-2-l2a"]
    assert body["datetime"] == "2023-01-01T00:00:00Z/2023-12-31T23:59:59Z"
    assert body["query"] == {"eo:cloud_cover": {"lt": 15}}
    r0, r1, c0, c1 = expected_window(BBOX)
    manifest = read_json(out / "manifest.json")
    assert manifest["source"] == "stac" and manifest["bbox"] == BBOX
    dates = [e["date"][:10] for e in manifest["scenes"]]
    assert dates == ["2023-03-02", "2023-06-10", "2023-09-08"]
    for k, e in enumerate(manifest["scenes"]):
        assert e["place"] == e["tile"] == "36UYA" and e["cloud_cover"] == 5.0
        assert e["crs"] == "EPSG:32636" and e["shape"] == [3, r1 - r0, c1 - c0]
        left, top = ORIGIN[0] + 10 * c0, ORIGIN[1] - 10 * r0
        right, bottom = left + 10 * (c1 - c0), top - 10 * (r1 - r0)
        assert e["bounds"] == pytest.approx([left, bottom, right, top])
        assert e["valid_fraction"] == 1.0
        with rasterio.open(out / e["tif"]) as ds:
            assert ds.crs.to_epsg() == 32636
            assert ds.transform == from_origin(left, top, 10, 10)
            np.testing.assert_array_equal(ds.read(), source(k)[:, r0:r1, c0:c1])
        png = np.asarray(Image.open(out / e["file"]))
        np.testing.assert_array_equal(png, np.moveaxis(source(k)[:, r0:r1, c0:c1], 0, -1))
    assert not list(out.glob(".*"))  # no temporary file left


def test_a_rerun_fetches_nothing_new(server, tmp_path):
    out = tmp_path / "out"
    fetch(params(server), out)
    before = (out / "manifest.json").read_text()
    assert server.cog_hits() > 0
    hits = server.cog_hits()
    stats = fetch(params(server), out)
    assert stats["skipped"] == 3 and stats["fetched"] == 0 and stats["chips"] == 3
    assert server.cog_hits() == hits
    assert json.loads((out / "manifest.json").read_text()) == json.loads(before)


def test_a_half_written_temporary_file_is_not_taken_for_a_chip(server, tmp_path):
    out = tmp_path / "out"
    fetch(params(server), out)
    scenes = read_json(out / "manifest.json")["scenes"]
    victim = scenes[1]
    (out / victim["tif"]).unlink()  # killed while writing: only the temporary file is there
    (out / f".{victim['tif']}.x1y2z3.tmp").write_bytes(b"II*\x00half")
    stats = fetch(params(server), out)
    assert stats["fetched"] == 1 and stats["skipped"] == 2 and stats["stale_tmp"] == 1
    assert not list(out.glob(".*.tmp"))
    r0, r1, c0, c1 = expected_window(BBOX)
    with rasterio.open(out / victim["tif"]) as ds:
        np.testing.assert_array_equal(ds.read(), source(1)[:, r0:r1, c0:c1])
    assert [e["id"] for e in read_json(out / "manifest.json")["scenes"]] == [
        e["id"] for e in scenes
    ]


def test_a_chip_not_in_the_manifest_is_fetched_again(server, tmp_path):
    out = tmp_path / "out"
    fetch(params(server), out)
    m = read_json(out / "manifest.json")
    m["scenes"] = m["scenes"][:1]  # killed after writing the files, before the manifest
    (out / "manifest.json").write_text(json.dumps(m))
    stats = fetch(params(server), out)
    assert stats["fetched"] == 2 and stats["skipped"] == 1


def test_another_bbox_makes_every_chip_stale(server, tmp_path):
    out = tmp_path / "out"
    fetch(params(server), out)
    w, s, e, n = BBOX
    stats = fetch(params(server, bbox=[w, s, (w + e) / 2, n]), out)
    assert stats["fetched"] == 3 and stats["skipped"] == 0


def test_an_item_without_the_asset_is_counted_and_skipped(server, tmp_path):
    server.features[1]["assets"].pop("visual")
    out = tmp_path / "out"
    stats = fetch(params(server), out)
    assert stats["missing_asset"] == 1 and stats["fetched"] == 2
    assert len(read_json(out / "manifest.json")["scenes"]) == 2
    with pytest.raises(FetchError, match=r"has the assets \['nir'\]; their assets are"):
        fetch(params(server, assets=["nir"]), tmp_path / "out2")


def test_band_assets_are_stacked_in_order(server, tmp_path):
    data = source(5, bands=3, dtype=np.uint16) * 40
    for i in range(3):
        write_cog(server.root / f"b{i}.tif", data[i : i + 1])
    server.features = server.features[:1]
    server.features[0]["assets"] = {
        b: {"href": server.href(f"b{i}.tif")} for i, b in enumerate(["red", "green", "blue"])
    }
    out = tmp_path / "out"
    fetch(params(server, assets=["red", "green", "blue"]), out)
    (e,) = read_json(out / "manifest.json")["scenes"]
    r0, r1, c0, c1 = expected_window(BBOX)
    with rasterio.open(out / e["tif"]) as ds:
        assert ds.dtypes == ("uint16",) * 3
        np.testing.assert_array_equal(ds.read(), data[:, r0:r1, c0:c1])
    png = Image.open(out / e["file"])
    assert png.mode == "RGB" and png.size == (c1 - c0, r1 - r0)


def test_size_px_resamples_like_a_local_read(server, tmp_path):
    out = tmp_path / "out"
    fetch(params(server, size_px=32), out)
    e = read_json(out / "manifest.json")["scenes"][0]
    assert e["shape"] == [3, 32, 32]
    r0, r1, c0, c1 = expected_window(BBOX)
    local = read_chip([str(server.root / "scene0.tif")], BBOX, 32)
    with rasterio.open(out / e["tif"]) as ds:
        np.testing.assert_array_equal(ds.read(), local.data)
        assert ds.res == pytest.approx((10 * (c1 - c0) / 32, 10 * (r1 - r0) / 32))
        assert ds.bounds.left == pytest.approx(ORIGIN[0] + 10 * c0)


def test_a_bbox_partly_outside_the_raster_is_filled_with_nodata(server, tmp_path):
    ll = transform_bounds("EPSG:32636", "EPSG:4326", 699000, 5598200, 700500, 5599200)
    bbox = [round(v, 4) for v in ll]
    out = tmp_path / "out"
    fetch(params(server, bbox=bbox), out)
    e = read_json(out / "manifest.json")["scenes"][0]
    r0, r1, c0, c1 = expected_window(bbox)
    assert c0 < 0 < c1 and 0 <= r0 < r1 <= 256
    expected = np.zeros((3, r1 - r0, c1 - c0), np.uint8)
    expected[:, :, -c0:] = source(0)[:, r0:r1, :c1]
    with rasterio.open(out / e["tif"]) as ds:
        np.testing.assert_array_equal(ds.read(), expected)
    assert e["valid_fraction"] == pytest.approx(c1 / (c1 - c0), abs=1e-6)


def test_an_empty_search_names_the_bbox_and_dates(server, tmp_path):
    server.features = []
    with pytest.raises(FetchError, match=r"no sentinel-2-l2a item in bbox \[.*2023-01-01 and 2023"):
        fetch(params(server), tmp_path / "out")


def test_a_failing_search_names_the_url_and_status(server, tmp_path):
    server.faults = [400]
    with pytest.raises(FetchError, match=rf"POST {server.stac_url}/search: HTTP 400"):
        fetch(params(server), tmp_path / "out")
    server.faults = [503] * 3
    with pytest.raises(FetchError, match=r"/v1/search: HTTP 503 after 2 attempts"):
        fetch(params(server, retries=1), tmp_path / "out")
    assert server.hits["search"] == 3


def test_an_unreachable_cog_is_counted_as_failed(server, tmp_path):
    server.features[0]["assets"]["visual"]["href"] = server.href("missing.tif")
    stats = fetch(params(server, retries=0), tmp_path / "out")
    assert stats["failed"] == 1 and stats["fetched"] == 2


def test_max_items_keeps_the_first_items(server, tmp_path):
    stats = fetch(params(server, max_items=1), tmp_path / "out")
    assert stats["found"] == 1 and stats["pages"] == 1 and server.bodies[0]["limit"] == 1


def test_search_body_and_paging_helpers():
    p = FetchParams(start="2023-05-01", end="2023-05-31T12:00:00+02:00", max_items=500)
    assert datetime_range(p.start, p.end) == "2023-05-01T00:00:00Z/2023-05-31T10:00:00Z"
    assert search_body(p)["limit"] == 100
    body = {"bbox": [1, 2, 3, 4], "limit": 5}
    merged = _next_request({"links": [{"rel": "next", "href": "u", "method": "POST",
                                       "body": {"next": "t"}, "merge": True}]}, body)  # fmt: skip
    assert merged == ("POST", "u", {"bbox": [1, 2, 3, 4], "limit": 5, "next": "t"})
    get = _next_request({"links": [{"rel": "self", "href": "s"}, {"rel": "next", "href": "n"}]}, {})
    assert get == ("GET", "n", None)
    assert _next_request({"links": []}, body) is None


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"bbox": [10, 40, 9, 41]}, "bbox"),
        ({"start": "2023-02-01", "end": "2023-01-01"}, "start/end"),
        ({"start": "May"}, "start/end"),
        ({"assets": []}, "assets"),
        ({"size_px": 0}, "size_px"),
        ({"concurrency": 0}, "concurrency"),
    ],
)
def test_params_are_validated(change, key):
    with pytest.raises(ValueError, match=key):
        FetchParams(**change).validate()
    FetchParams().validate()
