"""Street-level photos of random places in Croatia from the Google Street View Static API.

This is the *real* data path of study ``geoloc``: it needs ``GOOGLE_MAPS_API_KEY`` and the
network, and is never part of the default pipeline. Points are drawn uniformly (by area) inside
the country's boundary; the free metadata endpoint says whether a panorama lies within
``radius`` metres, and where; each panorama found gives four photos (headings 0, 90, 180, 270)
in the competition layout::

    <out>/images/<uuid>/0.jpg, 90.jpg, 180.jpg, 270.jpg
    <out>/data.csv            uuid,latitude,longitude,pano_id  (the panorama's position)
    <out>/metadata.json       the metadata answers, so a rerun asks nothing again

``uuid`` is ``uuid5(UUID_NAMESPACE, pano_id)``, so one panorama always has the same folder.

Sampling is deterministic: point slot ``i`` draws its candidates from
``numpy.random.default_rng([seed, i])``, so a larger ``count`` keeps the earlier panoramas. A
candidate is replaced by the slot's next one (at most ``max_attempts`` per slot) when there is
no panorama (``ZERO_RESULTS``), the panorama lies outside the boundary, is not Google's own
(``official_only``), or another slot already has it.

Resumable and idempotent: a photo already on disk is not asked for again, photos are written
atomically, ``data.csv`` (rewritten atomically at the end, also after an error) lists every
uuid whose four photos are on disk, earlier runs' included. The key is read only from the
environment and never logged, written or put into an error message.
"""

from __future__ import annotations

import asyncio
import collections
import csv
import dataclasses
import functools
import io
import logging
import math
import os
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from PIL import Image, UnidentifiedImageError

from geolab.common.http import (
    HTTPError,
    Response,
    gather_limited,
    make_session,
    request_with_retry,
    retry_delay,
    scrub,
)
from geolab.common.io import atomic_open, read_json, write_json
from geolab.geoloc.config import StreetViewParams
from geolab.geoloc.geo import read_polygons

log = logging.getLogger(__name__)

KEY_ENV = "GOOGLE_MAPS_API_KEY"
HEADINGS = (0, 90, 180, 270)
UUID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://maps.googleapis.com/maps/api/streetview")
DATA_CSV = "data.csv"
METADATA = "metadata.json"
CSV_COLUMNS = ("uuid", "latitude", "longitude", "pano_id")

_NO_PANO = ("ZERO_RESULTS", "NOT_FOUND")
_TRANSIENT = ("OVER_QUERY_LIMIT", "UNKNOWN_ERROR")
_COUNTERS = (
    "metadata_requests",
    "metadata_cached",
    "retries",
    "zero_results",
    "outside_boundary",
    "unofficial",
    "duplicates",
    "panos",
    "unfilled",
    "image_requests",
    "images_downloaded",
    "skipped",
    "failures",
    "complete",
    "rows",
)


class StreetViewError(RuntimeError):
    """The Street View API refused or failed in a way that asking again will not fix."""


class StreetViewConfigError(StreetViewError):
    """No API key, or the API denied the key (not enabled, restricted, billing)."""


@dataclasses.dataclass(frozen=True)
class Pano:
    """A panorama found by the metadata endpoint."""

    pano_id: str
    lat: float
    lng: float

    @property
    def uuid(self) -> str:
        """The folder name: ``uuid5(UUID_NAMESPACE, pano_id)``."""
        return str(uuid.uuid5(UUID_NAMESPACE, self.pano_id))


def api_key() -> str:
    """The key from ``GOOGLE_MAPS_API_KEY``.

    Raises:
        StreetViewConfigError: the variable is unset or empty.
    """
    key = os.environ.get(KEY_ENV, "").strip()
    if not key:
        raise StreetViewConfigError(
            f"{KEY_ENV} is not set; export it (a Google Maps Platform key with the Street View "
            "Static API enabled) to fetch photos"
        )
    return key


# ---------------------------------------------------------------------------------- sampling


def load_boundary(path: str | Path) -> shapely.Geometry:
    """The union of the (multi)polygons of a GeoJSON file (geometry, Feature or collection).

    Raises:
        ValueError: the file is not GeoJSON or holds no polygon (names the file).
    """
    geom = read_polygons(path)
    shapely.prepare(geom)
    return geom


def sample_points(geom: shapely.Geometry, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` points uniform by area on the sphere inside ``geom``, by rejection.

    Args:
        geom: a (multi)polygon in lon/lat degrees.
        n: how many points.
        rng: the random source.

    Returns:
        ``(n, 2)`` float array of ``(lon, lat)``.
    """
    west, south, east, north = geom.bounds
    s0, s1 = math.sin(math.radians(south)), math.sin(math.radians(north))
    out = np.empty((0, 2))
    while len(out) < n:
        k = max(16, 2 * (n - len(out)))
        lon = rng.uniform(west, east, k)
        lat = np.degrees(np.arcsin(rng.uniform(s0, s1, k)))  # uniform in sin(lat): equal area
        inside = shapely.contains_xy(geom, lon, lat)
        out = np.concatenate([out, np.stack([lon[inside], lat[inside]], axis=1)])
    return out[:n]


def slot_points(geom: shapely.Geometry, seed: int, slot: int, n: int) -> np.ndarray:
    """The ``n`` candidate points of one slot, from ``default_rng([seed, slot])``."""
    return sample_points(geom, n, np.random.default_rng([seed, slot]))


# ---------------------------------------------------------------------------------- metadata


class _MetadataCache:
    """The metadata answers by request location, valid while radius and filters are the same."""

    def __init__(self, out: Path, p: StreetViewParams) -> None:
        self.path = out / METADATA
        self.header = {"radius": p.radius, "source": p.source}
        self.answers: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            try:
                old = read_json(self.path)
                if all(old.get(k) == v for k, v in self.header.items()):
                    self.answers = dict(old["answers"])
            except (ValueError, KeyError, TypeError, AttributeError) as err:
                log.warning("%s: unreadable (%s); asking again", self.path, err)

    def save(self) -> None:
        """Write the answers atomically."""
        write_json(self.path, {**self.header, "answers": self.answers})


class _Client:
    """The session, the key and the counters of one run."""

    def __init__(self, session: Any, p: StreetViewParams, key: str, stats: collections.Counter):
        self.session, self.p, self.key, self.stats = session, p, key, stats

    async def get(self, url: str, params: dict[str, Any]) -> Response:
        """One GET with retries; the key is added here and never shown."""
        resp = await request_with_retry(
            self.session, "GET", url, params={**params, "key": self.key},
            retries=self.p.retries, backoff=self.p.backoff,
        )  # fmt: skip
        self.stats["retries"] += resp.attempts - 1
        if resp.status in (401, 403):
            raise StreetViewConfigError(f"the API denied the key ({KEY_ENV}): {_error(resp)}")
        return resp

    async def metadata(self, lat: float, lng: float) -> dict[str, Any]:
        """The metadata answer for a point (``status`` and, if OK, pano and location).

        ``OVER_QUERY_LIMIT`` and ``UNKNOWN_ERROR`` are asked again after a back-off.

        Raises:
            StreetViewConfigError: ``REQUEST_DENIED`` or HTTP 401/403.
            StreetViewError: any other status, or the last attempt still failed.
        """
        params = {"location": f"{lat:.6f},{lng:.6f}", "radius": self.p.radius}
        if self.p.source != "default":
            params["source"] = self.p.source
        for attempt in range(self.p.retries + 1):
            self.stats["metadata_requests"] += 1
            try:
                resp = await self.get(f"{self.p.base_url.rstrip('/')}/metadata", params)
                data = resp.raise_for_status().json()
            except HTTPError as err:
                raise StreetViewError(f"street view metadata failed: {err}") from None
            status = data.get("status") if isinstance(data, dict) else None
            if status not in _TRANSIENT or attempt == self.p.retries:
                break
            self.stats["retries"] += 1
            await asyncio.sleep(retry_delay(attempt, self.p.backoff))
        if status == "OK" or status in _NO_PANO:
            return data
        msg = scrub(str(data.get("error_message", "")), [self.key]) if status else "no status"
        text = f"street view metadata {resp.url}: status {status}: {msg}"
        if status == "REQUEST_DENIED":
            raise StreetViewConfigError(f"{text} (check {KEY_ENV} and the API's settings)")
        raise StreetViewError(text)


def _error(resp: Response) -> str:
    body = resp.body[:200].decode("utf-8", "replace").strip()
    return f"GET {resp.url}: HTTP {resp.status}: {scrub(body, resp.secrets)}"


async def _lookup(client: _Client, cache: _MetadataCache, lat: float, lng: float) -> dict[str, Any]:
    where = f"{lat:.6f},{lng:.6f}"
    if where in cache.answers:
        client.stats["metadata_cached"] += 1
        return cache.answers[where]
    data = await client.metadata(lat, lng)
    answer: dict[str, Any] = {"status": data["status"]}
    if data["status"] == "OK":
        loc = data.get("location") or {}
        answer.update(pano_id=data.get("pano_id"), lat=loc.get("lat"), lng=loc.get("lng"))
        answer["copyright"] = data.get("copyright")
        answer["date"] = data.get("date")
    cache.answers[where] = answer
    return answer


def _accept(
    answer: dict[str, Any],
    geom: shapely.Geometry,
    p: StreetViewParams,
    stats: collections.Counter,
    taken: set[str],
) -> Pano | None:
    """The panorama of an answer, or None (the reason counted)."""
    if answer["status"] != "OK":
        stats["zero_results"] += 1
        return None
    if not answer.get("pano_id") or answer.get("lat") is None or answer.get("lng") is None:
        raise StreetViewError(f"metadata answer OK without pano_id or location: {answer}")
    pano = Pano(str(answer["pano_id"]), float(answer["lat"]), float(answer["lng"]))
    if not shapely.contains_xy(geom, pano.lng, pano.lat):
        stats["outside_boundary"] += 1
    elif p.official_only and "Google" not in str(answer.get("copyright") or ""):
        stats["unofficial"] += 1
    elif pano.pano_id in taken:
        stats["duplicates"] += 1
    else:
        return pano
    return None


async def find_panos(client: _Client, geom: shapely.Geometry, cache: _MetadataCache) -> list[Pano]:
    """Up to ``count`` distinct panoramas inside ``geom``, in slot order.

    Rounds: every unfilled slot asks about its next candidate; the answers are then taken in
    slot order, so the result does not depend on which request finished first.
    """
    p, stats = client.p, client.stats
    points = {s: slot_points(geom, p.seed, s, p.max_attempts) for s in range(p.count)}
    tries = dict.fromkeys(points, 0)
    found: dict[int, Pano] = {}
    taken: set[str] = set()
    pending = list(points)
    while pending:
        jobs = [(s, *points[s][tries[s]]) for s in pending]
        answers = await gather_limited(
            [functools.partial(_lookup, client, cache, lat, lng) for _, lng, lat in jobs],
            concurrency=p.concurrency, desc="street view metadata", unit="req",
        )  # fmt: skip
        for (slot, _, _), answer in zip(jobs, answers, strict=True):
            tries[slot] += 1
            pano = _accept(answer, geom, p, stats, taken)
            if pano is not None:
                found[slot] = pano
                taken.add(pano.pano_id)
        pending = [s for s in pending if s not in found and tries[s] < p.max_attempts]
    stats["panos"] = len(found)
    stats["unfilled"] = p.count - len(found)
    return [found[s] for s in sorted(found)]


# -------------------------------------------------------------------------------- download


def is_jpeg(body: bytes) -> bool:
    """Whether ``body`` is a JPEG that decodes completely."""
    try:
        with Image.open(io.BytesIO(body)) as im:
            if im.format != "JPEG":
                return False
            im.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return False
    return True


def image_path(out: Path, pano_uuid: str, heading: int) -> Path:
    """``<out>/images/<uuid>/<heading>.jpg``."""
    return out / "images" / pano_uuid / f"{heading}.jpg"


def is_complete(out: Path, pano_uuid: str) -> bool:
    """Whether all four photos of a uuid are on disk (under their final names)."""
    return all(image_path(out, pano_uuid, h).is_file() for h in HEADINGS)


async def _download(client: _Client, pano: Pano, heading: int, out: Path) -> None:
    p, stats = client.p, client.stats
    params = {"pano": pano.pano_id, "size": p.size, "heading": heading, "fov": p.fov,
              "pitch": p.pitch, "return_error_code": "true"}  # fmt: skip
    stats["image_requests"] += 1
    try:
        resp = await client.get(p.base_url, params)
    except HTTPError as err:
        stats["failures"] += 1
        log.warning("pano %s heading %d: %s", pano.pano_id, heading, err)
        return
    if resp.status != 200 or not is_jpeg(resp.body):
        stats["failures"] += 1
        why = _error(resp) if resp.status != 200 else f"GET {resp.url}: not a decodable JPEG"
        log.warning("pano %s heading %d: %s", pano.pano_id, heading, why)
        return
    with atomic_open(image_path(out, pano.uuid, heading), "wb") as fh:
        fh.write(resp.body)
    stats["images_downloaded"] += 1


async def download_all(client: _Client, panos: list[Pano], out: Path) -> None:
    """Download every photo of ``panos`` not yet on disk (failures are counted, not raised).

    Raises:
        StreetViewConfigError: the API denied the key (HTTP 401/403).
    """
    todo = [(pano, h) for pano in panos for h in HEADINGS]
    todo = [(pano, h) for pano, h in todo if not image_path(out, pano.uuid, h).is_file()]
    client.stats["skipped"] = sum(is_complete(out, pano.uuid) for pano in panos)
    await gather_limited(
        [functools.partial(_download, client, pano, h, out) for pano, h in todo],
        concurrency=client.p.concurrency, desc="street view photos", unit="img",
    )  # fmt: skip


# -------------------------------------------------------------------------------- data.csv


def read_rows(path: Path) -> list[dict[str, str]]:
    """The rows of an existing ``data.csv`` (none if it does not exist).

    Raises:
        ValueError: the file has no ``uuid``, ``latitude`` and ``longitude`` columns.
    """
    if not path.exists():
        return []
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = {"uuid", "latitude", "longitude"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path}: no column {sorted(missing)}")
        return list(reader)


def write_rows(out: Path, panos: list[Pano], stats: collections.Counter) -> None:
    """Rewrite ``data.csv`` atomically: earlier rows and ``panos`` whose 4 photos are on disk."""
    rows = {r["uuid"]: r for r in read_rows(out / DATA_CSV)}
    for pano in panos:
        rows[pano.uuid] = {"uuid": pano.uuid, "latitude": f"{pano.lat:.7f}",
                           "longitude": f"{pano.lng:.7f}", "pano_id": pano.pano_id}  # fmt: skip
    kept = [rows[u] for u in sorted(rows) if is_complete(out, u)]
    with atomic_open(out / DATA_CSV, newline="") as fh:
        writer = csv.DictWriter(fh, CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(kept)
    stats["complete"] = sum(is_complete(out, pano.uuid) for pano in panos)
    stats["rows"] = len(kept)


# ------------------------------------------------------------------------------------- main


async def fetch_streetview_async(
    params: StreetViewParams, boundary_path: str | Path, out_dir: str | Path
) -> dict[str, Any]:
    """:func:`fetch_streetview` as a coroutine."""
    params.validate()
    key = api_key()
    geom = load_boundary(boundary_path)
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    stats: collections.Counter = collections.Counter(dict.fromkeys(_COUNTERS, 0))
    cache = _MetadataCache(out, params)
    panos: list[Pano] = []
    async with make_session(timeout_s=params.timeout_s, limit=params.concurrency) as session:
        client = _Client(session, params, key, stats)
        try:
            panos = await find_panos(client, geom, cache)
            await download_all(client, panos, out)
        finally:
            cache.save()
            write_rows(out, panos, stats)
    _log_summary(stats, out)
    return dict(stats)


def _log_summary(stats: collections.Counter, out: Path) -> None:
    log.info(
        "street view: %d metadata requests (%d cached, %d retries), %d zero results, "
        "%d outside, %d unofficial, %d duplicates -> %d panoramas (%d slots unfilled); "
        "%d photos downloaded, %d panoramas already complete, %d failures; %d rows in %s",
        stats["metadata_requests"], stats["metadata_cached"], stats["retries"],
        stats["zero_results"], stats["outside_boundary"], stats["unofficial"],
        stats["duplicates"], stats["panos"], stats["unfilled"], stats["images_downloaded"],
        stats["skipped"], stats["failures"], stats["rows"], out / DATA_CSV,
    )  # fmt: skip
    if stats["failures"]:
        log.warning("%d photos failed; run again to fetch them", stats["failures"])


def fetch_streetview(
    params: StreetViewParams, boundary_path: str | Path, out_dir: str | Path
) -> dict[str, Any]:
    """Sample points in the boundary, find panoramas and download their four photos.

    Args:
        params: sampling and request options.
        boundary_path: a GeoJSON file of the country (e.g. ``ne_10m_admin0_HRV.geojson``).
        out_dir: the output folder (see the module doc); what is there already is kept.

    Returns:
        Counts: ``metadata_requests`` (metadata HTTP requests, not counting retries of one
        request), ``metadata_cached`` (answers reused from ``metadata.json``), ``retries``
        (further attempts after 429/5xx/``OVER_QUERY_LIMIT``/connection errors),
        ``zero_results``, ``outside_boundary``, ``unofficial``, ``duplicates`` (candidates
        replaced), ``panos`` (found), ``unfilled`` (slots that found none in ``max_attempts``),
        ``image_requests``, ``images_downloaded``, ``skipped`` (panoramas already complete on
        disk), ``failures`` (photos that failed or were not a JPEG; a rerun asks again),
        ``complete`` (panoramas of this run with four photos), ``rows`` (rows in data.csv).

    Raises:
        StreetViewConfigError: ``GOOGLE_MAPS_API_KEY`` is not set (before any request) or the
            API denied it.
        StreetViewError: the metadata endpoint failed for good (names the URL, key redacted).
        ValueError: bad params (names the key) or a bad boundary file.
    """
    return asyncio.run(fetch_streetview_async(params, boundary_path, out_dir))
