"""The Street View fetcher of study ``geoloc`` (and geolab.common.http) against a local server."""

from __future__ import annotations

import asyncio
import collections
import csv
import hashlib
import io
import json
import logging
import socket
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import shapely
from aiohttp import web
from local_server import BackgroundServer
from PIL import Image

from geolab.common.http import (
    HTTPError,
    make_session,
    parse_retry_after,
    redact_url,
    request_with_retry,
    retry_delay,
    scrub,
)
from geolab.geoloc.fetch import (
    HEADINGS,
    UUID_NAMESPACE,
    StreetViewConfigError,
    StreetViewError,
    StreetViewParams,
    fetch_streetview,
    is_jpeg,
    load_boundary,
    sample_points,
    slot_points,
)

KEY = "AIzaTEST-secret-key-0123456789"
ROOT = Path(__file__).resolve().parents[1]
CROATIA = ROOT / "data" / "croatia" / "ne_10m_admin0_HRV.geojson"
# an L-shaped (concave) area: points in the notch 15.5..17 x 45.5..46 are outside
L_SHAPE = [(15, 45), (17, 45), (17, 45.5), (15.5, 45.5), (15.5, 46), (15, 46), (15, 45)]


def jpeg(w: int, h: int, colour: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), colour).save(buf, format="JPEG")
    return buf.getvalue()


class FakeStreetView:
    """The metadata and image endpoints on 127.0.0.1, in a background thread.

    What a location gets is fixed by a hash of it: ``ZERO_RESULTS`` for one in ``zero_every``,
    a panorama snapped far outside the area for one in ``outside_every`` (if set), else a
    panorama 1e-5 degrees away whose id is the hash (modulo ``pano_mod`` if set). ``faults``
    lists HTTP statuses sent before normal answers, per endpoint; ``statuses`` lists metadata
    statuses (e.g. ``OVER_QUERY_LIMIT``) sent first; ``junk`` image replies are not JPEG.
    """

    def __init__(self) -> None:
        self.key = KEY
        self.hits: collections.Counter = collections.Counter()
        self.faults: dict[str, list[int]] = {"metadata": [], "image": []}
        self.statuses: list[str] = []
        self.junk = 0
        self.zero_every = 3
        self.outside_every = 0
        self.pano_mod = 0
        self.deny = False
        self.queries: list[dict[str, str]] = []
        app = web.Application()
        app.router.add_get("/maps/api/streetview/metadata", self._metadata)
        app.router.add_get("/maps/api/streetview", self._image)
        # access_log off: Google's logs are not ours to check
        self._server = BackgroundServer(app, access_log=False)
        self.port = self._server.port

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/maps/api/streetview"

    def _fault(self, kind: str) -> web.Response | None:
        if self.faults[kind]:
            status = self.faults[kind].pop(0)
            return web.Response(
                status=status, headers={"Retry-After": "0"} if status == 429 else {}
            )
        return None

    async def _metadata(self, request: web.Request) -> web.Response:
        self.hits["metadata"] += 1
        self.queries.append(dict(request.query))
        fault = self._fault("metadata")
        if fault:
            return fault
        if self.deny or request.query.get("key") != self.key:
            reply = {"status": "REQUEST_DENIED", "error_message": "The API key is invalid."}
            return web.json_response(reply)
        if self.statuses:
            return web.json_response({"status": self.statuses.pop(0)})
        loc = request.query["location"]
        h = int(hashlib.sha256(loc.encode()).hexdigest(), 16)
        if h % self.zero_every == 0:
            return web.json_response({"status": "ZERO_RESULTS"})
        lat, lng = (float(v) for v in loc.split(","))
        if self.outside_every and h % self.outside_every == 1:
            lat += 3.0
        pano = f"P{h % self.pano_mod if self.pano_mod else h % 10**12:012d}"
        return web.json_response({"status": "OK", "pano_id": pano, "copyright": "© Google",
                                  "location": {"lat": lat + 1e-5, "lng": lng + 1e-5},
                                  "date": "2021-07"})  # fmt: skip

    async def _image(self, request: web.Request) -> web.Response:
        self.hits["image"] += 1
        fault = self._fault("image")
        if fault:
            return fault
        q = request.query
        if q.get("key") != self.key:
            return web.Response(status=403, text="The provided API key is invalid.")
        if self.junk:
            self.junk -= 1
            return web.Response(body=b"<html>not a photo</html>", content_type="image/jpeg")
        w, h = (int(v) for v in q["size"].split("x"))
        heading = int(q["heading"])
        return web.Response(body=jpeg(w, h, (heading % 256, 40, 90)), content_type="image/jpeg")

    def close(self) -> None:
        self._server.close()


@pytest.fixture
def server():
    srv = FakeStreetView()
    yield srv
    srv.close()


@pytest.fixture
def key(monkeypatch):
    monkeypatch.setenv("GOOGLE_MAPS_API_KEY", KEY)


@pytest.fixture
def area(tmp_path) -> Path:
    path = tmp_path / "area.geojson"
    geometry = {"type": "Polygon", "coordinates": [[list(p) for p in L_SHAPE]]}
    feature = {"type": "Feature", "properties": {"name": "L"}, "geometry": geometry}
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [feature]}))
    return path


def params(srv: FakeStreetView, **kw: Any) -> StreetViewParams:  # noqa: D103
    base = {"base_url": srv.base_url, "count": 6, "seed": 0, "size": "64x48", "fov": 90.0,
            "pitch": 5.0, "radius": 100, "concurrency": 4, "retries": 3, "backoff": 0.01,
            "timeout_s": 5.0}  # fmt: skip
    return StreetViewParams(**{**base, **kw})


def rows(out: Path) -> list[dict[str, str]]:
    with (out / "data.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


def files_contain(root: Path, text: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and text.encode() in p.read_bytes()]


# ------------------------------------------------------------------------------------- fetch


def test_layout_csv_retries_junk_and_resume(server, key, area, tmp_path):
    server.faults = {"metadata": [429, 500], "image": [429, 500]}
    server.junk = 1
    out = tmp_path / "out"
    stats = fetch_streetview(params(server), area, out)
    assert stats["panos"] == 6 and stats["unfilled"] == 0 and stats["zero_results"] > 0
    assert stats["retries"] == 4  # two per endpoint
    assert stats["images_downloaded"] == 23 and stats["failures"] == 1 and stats["rows"] == 5
    got = rows(out)
    assert list(got[0]) == ["uuid", "latitude", "longitude", "pano_id"]
    geom = load_boundary(area)
    for row in got:
        assert row["uuid"] == str(uuid.uuid5(UUID_NAMESPACE, row["pano_id"]))
        assert shapely.contains_xy(geom, float(row["longitude"]), float(row["latitude"]))
        for h in HEADINGS:
            with Image.open(out / "images" / row["uuid"] / f"{h}.jpg") as im:
                assert im.format == "JPEG" and im.size == (64, 48)
    assert len(list((out / "images").iterdir())) == 6  # the sixth has three photos so far
    assert not list(out.rglob(".*.tmp"))
    q = server.queries[-1]
    assert q["radius"] == "100" and q["source"] == "outdoor" and q["key"] == KEY

    server.hits.clear()  # second run: only the missing photo
    stats = fetch_streetview(params(server), area, out)
    assert server.hits == {"image": 1}
    assert stats["metadata_cached"] > 0 and stats["metadata_requests"] == 0
    assert stats["images_downloaded"] == 1 and stats["skipped"] == 5 and stats["rows"] == 6

    server.hits.clear()  # third run: nothing at all
    stats = fetch_streetview(params(server), area, out)
    assert sum(server.hits.values()) == 0
    assert stats["skipped"] == 6 and stats["images_downloaded"] == 0 and len(rows(out)) == 6


def test_earlier_rows_are_kept_and_a_larger_count_keeps_the_first_panoramas(
    server, key, area, tmp_path
):
    out = tmp_path / "out"
    fetch_streetview(params(server, count=3), area, out)
    first = {r["uuid"] for r in rows(out)}
    fetch_streetview(params(server, count=5), area, tmp_path / "fresh")
    assert first <= {r["uuid"] for r in rows(tmp_path / "fresh")}
    fetch_streetview(params(server, count=2, seed=99), area, out)  # other points, same folder
    assert len(rows(out)) == 5 and first <= {r["uuid"] for r in rows(out)}


def test_snaps_outside_the_area_and_duplicates_are_replaced(server, key, area, tmp_path):
    server.outside_every = 4
    server.pano_mod = 3  # hash % 3 == 0 is ZERO_RESULTS: only two panoramas exist
    out = tmp_path / "out"
    stats = fetch_streetview(params(server, count=4, max_attempts=20), area, out)
    assert stats["outside_boundary"] > 0 and stats["duplicates"] > 0
    assert stats["panos"] == 2 and stats["unfilled"] == 2
    got = rows(out)
    assert len({r["pano_id"] for r in got}) == len(got) == stats["panos"]
    geom = load_boundary(area)
    assert all(shapely.contains_xy(geom, float(r["longitude"]), float(r["latitude"])) for r in got)


def test_a_slot_gives_up_after_max_attempts(server, key, area, tmp_path):
    server.zero_every = 1  # no panorama anywhere
    stats = fetch_streetview(params(server, count=3, max_attempts=4), area, tmp_path / "out")
    assert stats["metadata_requests"] == 12 and stats["unfilled"] == 3 and stats["panos"] == 0
    assert rows(tmp_path / "out") == []


def test_over_query_limit_is_retried_then_an_error(server, key, area, tmp_path):
    server.statuses = ["OVER_QUERY_LIMIT"]
    stats = fetch_streetview(params(server, count=1, concurrency=1), area, tmp_path / "a")
    assert stats["retries"] == 1 and stats["panos"] == 1
    server.statuses = ["OVER_QUERY_LIMIT"] * 3
    with pytest.raises(StreetViewError, match="status OVER_QUERY_LIMIT"):
        fetch_streetview(params(server, count=1, retries=2), area, tmp_path / "b")


def test_the_key_is_never_logged_written_or_shown(server, key, area, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    server.faults = {"metadata": [429, 503], "image": [500]}
    server.junk = 1
    out = tmp_path / "out"
    fetch_streetview(params(server), area, out)
    assert "key=REDACTED" in caplog.text  # the retries were logged, without the key
    assert KEY not in caplog.text and not files_contain(out, KEY)

    server.deny = True
    with pytest.raises(StreetViewConfigError, match="REQUEST_DENIED") as denied:
        fetch_streetview(params(server, seed=8), area, tmp_path / "b")
    server.deny = False
    server.faults["metadata"] = [500] * 5
    with pytest.raises(StreetViewError, match="HTTP 500 after 2 attempts") as failed:
        fetch_streetview(params(server, seed=9, retries=1), area, tmp_path / "c")
    for err in (denied.value, failed.value):
        assert KEY not in str(err) and "key=REDACTED" in str(err)
        assert KEY not in repr(err.__cause__) and KEY not in repr(err.__context__)
    assert KEY not in caplog.text and not files_contain(tmp_path, KEY)


def test_a_missing_key_is_an_error_before_any_request(server, area, tmp_path, monkeypatch):
    monkeypatch.delenv("GOOGLE_MAPS_API_KEY", raising=False)
    with pytest.raises(StreetViewConfigError, match="GOOGLE_MAPS_API_KEY is not set"):
        fetch_streetview(params(server), area, tmp_path / "out")
    assert not server.hits


def test_a_denied_photo_request_stops_the_run(server, key, area, tmp_path):
    server.faults["image"] = [403]
    with pytest.raises(StreetViewConfigError, match="HTTP 403"):
        fetch_streetview(params(server, count=1, concurrency=1), area, tmp_path / "out")


# ---------------------------------------------------------------------------------- sampling


def test_points_are_inside_the_polygon_and_reproducible(area):
    geom = load_boundary(area)
    pts = sample_points(geom, 500, np.random.default_rng(0))
    assert pts.shape == (500, 2)
    assert shapely.contains_xy(geom, pts[:, 0], pts[:, 1]).all()
    notch = (pts[:, 0] > 15.5) & (pts[:, 1] > 45.5)
    assert not notch.any()
    assert (pts[:, 1] > 45.5).mean() == pytest.approx(0.2, abs=0.06)  # area share of the top
    np.testing.assert_array_equal(slot_points(geom, 1, 7, 5), slot_points(geom, 1, 7, 5))
    assert not np.array_equal(slot_points(geom, 1, 7, 5), slot_points(geom, 1, 8, 5))


@pytest.mark.skipif(not CROATIA.exists(), reason="needs data/croatia (dvc pull)")
def test_points_fall_inside_croatia():
    geom = load_boundary(CROATIA)
    pts = sample_points(geom, 200, np.random.default_rng(1))
    assert shapely.contains_xy(geom, pts[:, 0], pts[:, 1]).all()
    assert (pts[:, 0] > 13.4).all() and (pts[:, 0] < 19.5).all()
    assert (pts[:, 1] > 42.3).all() and (pts[:, 1] < 46.6).all()


def test_a_boundary_without_polygons_is_an_error(tmp_path):
    path = tmp_path / "p.geojson"
    path.write_text(json.dumps({"type": "Point", "coordinates": [15, 45]}))
    with pytest.raises(ValueError, match="no Polygon"):
        load_boundary(path)


def test_is_jpeg():
    assert is_jpeg(jpeg(8, 8, (1, 2, 3)))
    assert not is_jpeg(jpeg(64, 64, (1, 2, 3))[:300])  # cut short
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format="PNG")
    assert not is_jpeg(buf.getvalue()) and not is_jpeg(b"")


@pytest.mark.parametrize(
    ("change", "key_name"),
    [({"size": "641x10"}, "size"), ({"size": "big"}, "size"), ({"fov": 150}, "fov"),
     ({"pitch": 91}, "pitch"), ({"radius": 0}, "radius"), ({"source": "indoor"}, "source")],
)  # fmt: skip
def test_params_are_validated(change, key_name):
    with pytest.raises(ValueError, match=key_name):
        StreetViewParams(**change).validate()
    StreetViewParams().validate()


# ------------------------------------------------------------------------ geolab.common.http


def test_redaction():
    url = redact_url("https://h/p?location=1,2&key=abc", {"radius": 5, "signature": "s1"})
    assert url == "https://h/p?location=1,2&key=REDACTED&radius=5&signature=REDACTED"
    assert redact_url("https://h/p") == "https://h/p"
    assert "abc" not in redact_url("http://[bad?key=abc", {"key": "xyz"})
    assert scrub("x abc y abc", ["abc", ""]) == "x REDACTED y REDACTED"


def test_retry_after_and_delay():
    assert parse_retry_after("3") == 3.0 and parse_retry_after(None) is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10.0
    assert parse_retry_after("soon") is None
    import random

    rng = random.Random(0)
    for attempt in range(6):
        d = retry_delay(attempt, 0.5, max_delay=4.0, rng=rng)
        assert min(4.0, 0.5 * 2**attempt) / 2 <= d <= min(4.0, 0.5 * 2**attempt)
    assert retry_delay(0, 0.1, retry_after=2.0) == 2.0
    assert retry_delay(0, 0.1, max_delay=1.0, retry_after=30.0) == 1.0


def test_connection_errors_are_retried_and_named_without_the_key():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    async def go():
        async with make_session(timeout_s=2) as session:
            return await request_with_retry(
                session, "GET", f"http://127.0.0.1:{port}/x", params={"key": KEY, "a": 1},
                retries=2, backoff=0.01,
            )  # fmt: skip

    with pytest.raises(HTTPError, match=r"GET http://127.0.0.1:\d+/x\?key=REDACTED&a=1: ") as err:
        asyncio.run(go())
    assert "after 3 attempts" in str(err.value) and KEY not in str(err.value)
