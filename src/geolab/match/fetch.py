"""Sentinel-2 L2A chips of one area on many dates, from a STAC API and cloud-optimised GeoTIFFs.

This is the *real* data path of study ``match`` (``match.source: stac``); it needs the network.
A STAC ``POST /search`` (bbox, date range, ``eo:cloud_cover < max_cloud``, sorted by date,
paged through ``next`` links) lists the items; for each one only the window that covers the
bbox is read from the requested COG asset(s) with HTTP range requests (rasterio / GDAL
``/vsicurl``), in a thread pool, at most ``concurrency`` at once.

Output folder::

    <out>/<item id>.tif      the chip: (bands, H, W) in the raster's CRS, with its transform
    <out>/<item id>.png      a preview (uint8 RGB or grey) that the matchers read
    <out>/manifest.json      what is there (below), in date order

``manifest.json`` has the request (``source: "stac"``, ``stac_url``, ``collection``, ``bbox``,
``assets``, ``size_px``) and ``scenes``, one entry a chip::

    {"id": "S2B_36UYA_20230607_0_L2A", "place": "36UYA", "date": "2023-06-07T08:46:13Z",
     "file": "S2B_36UYA_20230607_0_L2A.png", "tif": "S2B_36UYA_20230607_0_L2A.tif",
     "tile": "36UYA", "cloud_cover": 3.1, "crs": "EPSG:32636",
     "bounds": [745000.0, 5545000.0, 755000.0, 5555000.0], "shape": [3, 512, 512],
     "valid_fraction": 1.0, "assets": ["visual"]}

``place`` is the MGRS tile (chips of one tile share a pixel grid), ``bounds`` are in ``crs``.

Resumable: every file is written to a temporary name and moved into place, and the manifest is
rewritten (atomically) after each chip. A rerun skips an item whose entry is in the manifest and
whose two files exist under their final names; a changed bbox, asset list, chip size or
collection makes every chip stale. Temporary files left by a killed run are removed.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import datetime as dt
import functools
import io
import logging
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.errors
from rasterio.enums import Resampling
from rasterio.io import MemoryFile
from rasterio.transform import array_bounds
from rasterio.transform import from_bounds as transform_from_bounds
from rasterio.warp import transform_bounds
from rasterio.windows import Window, from_bounds

from geolab.common.http import HTTPError, gather_limited, make_session, request_with_retry
from geolab.common.io import atomic_open, read_json, write_json

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
STAC_PAGE_LIMIT = 100  # items per search page (STAC APIs cap it, often at 100 to 1000)
MAX_PAGES = 1000  # a guard against an API that keeps sending the same `next` link

# GDAL settings for range reads of COGs over HTTP(S); GDAL retries 429/502/503/504 by itself
_GDAL_ENV = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif,.tiff,.TIF,.TIFF",
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
    "VSI_CACHE": "TRUE",
}
_REQUEST_KEYS = ("collection", "bbox", "assets", "size_px")  # what a chip depends on
_COUNTERS = ("pages", "found", "missing_asset", "skipped", "fetched", "failed", "stale_tmp")


class FetchError(RuntimeError):
    """The STAC search failed or found nothing usable."""


@dataclasses.dataclass
class FetchParams:
    """The ``match.fetch`` keys: what to search for and how the chips are cut.

    Attributes:
        stac_url: the STAC API root (``/search`` is appended).
        collection: the STAC collection.
        bbox: area of interest ``[west, south, east, north]`` in degrees (WGS 84). The default is
            a 10 km square in tile 36UYA, the tile of the embedded sample.
        start: first day (``YYYY-MM-DD`` or an RFC 3339 date-time).
        end: last day, inclusive (same forms).
        max_cloud: keep items with ``eo:cloud_cover`` below this (percent).
        max_items: the most items to fetch (the earliest ones).
        assets: the asset(s) to read: ``["visual"]`` (true-colour uint8 RGB) or band assets
            such as ``["red", "green", "blue"]``, stacked in this order.
        size_px: chips are resampled to ``size_px x size_px``; None keeps the native grid.
        concurrency: chips read at once.
        retries: further attempts after a failed request (STAC and GDAL).
        backoff: base of the exponential back-off between attempts, seconds.
        timeout_s: timeout of one HTTP attempt, seconds.
    """

    stac_url: str = "https://earth-search.aws.element84.com/v1"
    collection: str = "sentinel-2-l2a"
    bbox: list[float] = dataclasses.field(default_factory=lambda: [36.42, 50.0, 36.56, 50.09])
    start: str = "2023-01-01"
    end: str = "2023-12-31"
    max_cloud: float = 20.0
    max_items: int = 12
    assets: list[str] = dataclasses.field(default_factory=lambda: ["visual"])
    size_px: int | None = 512
    concurrency: int = 4
    retries: int = 5
    backoff: float = 1.0
    timeout_s: float = 60.0

    def validate(self) -> None:
        """Check the values; a ``ValueError`` names the key."""
        if len(self.bbox) != 4:
            raise ValueError(f"bbox: expected [west, south, east, north], got {self.bbox}")
        w, s, e, n = self.bbox
        if not (-180 <= w < e <= 180 and -90 <= s < n <= 90):
            raise ValueError(f"bbox: need -180 <= west < east <= 180, -90 <= south < north <= 90,"
                             f" got {self.bbox}")  # fmt: skip
        if datetime_range(self.start, self.end) is None:
            raise ValueError(f"start/end: {self.start} is after {self.end}")
        if not self.assets or not all(isinstance(a, str) and a for a in self.assets):
            raise ValueError(f"assets: expected a non-empty list of names, got {self.assets}")
        for key in ("max_items", "concurrency"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key}: must be >= 1, got {getattr(self, key)}")
        if self.size_px is not None and self.size_px < 1:
            raise ValueError(f"size_px: must be >= 1 or null, got {self.size_px}")
        if self.retries < 0 or self.backoff < 0 or self.timeout_s <= 0:
            raise ValueError("retries and backoff must be >= 0, timeout_s > 0")


@dataclasses.dataclass(frozen=True)
class Item:
    """One STAC item with the requested assets (hrefs in the order of ``FetchParams.assets``)."""

    id: str
    date: str
    tile: str | None
    cloud_cover: float | None
    hrefs: tuple[str, ...]


@dataclasses.dataclass
class Chip:
    """A window read from an item: ``data`` is ``(bands, H, W)`` in ``crs`` with ``transform``."""

    data: np.ndarray
    crs: rasterio.crs.CRS
    transform: rasterio.Affine
    nodata: float


# ------------------------------------------------------------------------------------ search


def _parse_time(value: str, end: bool) -> dt.datetime:
    """A date (``YYYY-MM-DD``: start or end of the day) or RFC 3339 date-time, in UTC."""
    if len(value) == 10:
        day = dt.date.fromisoformat(value)
        t = dt.time(23, 59, 59) if end else dt.time(0, 0, 0)
        return dt.datetime.combine(day, t, tzinfo=dt.UTC)
    moment = dt.datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def datetime_range(start: str, end: str) -> str | None:
    """The STAC ``datetime`` interval ``<start>/<end>`` in UTC, or None if start > end.

    Raises:
        ValueError: a value is not a date or RFC 3339 date-time (names it).
    """
    try:
        t0, t1 = _parse_time(start, end=False), _parse_time(end, end=True)
    except ValueError as err:
        raise ValueError(f"start/end: {start!r}, {end!r}: not YYYY-MM-DD ({err})") from None
    if t0 > t1:
        return None
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    return f"{t0.astimezone(dt.UTC):{fmt}}/{t1.astimezone(dt.UTC):{fmt}}"


def search_body(p: FetchParams) -> dict[str, Any]:
    """The JSON body of the first ``POST /search``."""
    return {
        "collections": [p.collection],
        "bbox": list(p.bbox),
        "datetime": datetime_range(p.start, p.end),
        "query": {"eo:cloud_cover": {"lt": p.max_cloud}},
        "sortby": [{"field": "properties.datetime", "direction": "asc"}],
        "limit": min(p.max_items, STAC_PAGE_LIMIT),
    }


def _next_request(
    page: dict[str, Any], body: dict[str, Any]
) -> tuple[str, str, dict[str, Any] | None] | None:
    """``(method, href, body)`` of the page's ``next`` link, or None on the last page."""
    for link in page.get("links") or []:
        if link.get("rel") != "next" or not link.get("href"):
            continue
        method = str(link.get("method", "GET")).upper()
        if method != "POST":
            return "GET", link["href"], None
        new = link.get("body")
        if new is None:
            return "POST", link["href"], body
        return "POST", link["href"], {**body, **new} if link.get("merge") else new
    return None


async def search(session: Any, p: FetchParams, stats: collections.Counter) -> list[dict]:
    """STAC features of the search (at most ``max_items``, duplicates dropped), in page order.

    Raises:
        FetchError: a request failed (names the URL and the status) or a page is not a
            FeatureCollection.
    """
    request: tuple | None = ("POST", f"{p.stac_url.rstrip('/')}/search", search_body(p))
    features: dict[str, dict] = {}
    seen: set[str] = set()
    while request and len(features) < p.max_items and stats["pages"] < MAX_PAGES:
        method, url, body = request
        page = await _search_page(session, method, url, body, p)
        stats["pages"] += 1
        batch = page["features"]
        for f in batch:
            features.setdefault(str(f.get("id")), f)
        request = _next_request(page, body or {})
        signature = repr(request)
        if not batch or signature in seen:
            break
        seen.add(signature)
    return list(features.values())[: p.max_items]


async def _search_page(
    session: Any, method: str, url: str, body: dict | None, p: FetchParams
) -> dict[str, Any]:
    try:
        resp = await request_with_retry(
            session, method, url, json_body=body, retries=p.retries, backoff=p.backoff,
            headers={"Accept": "application/geo+json, application/json"},
        )  # fmt: skip
        page = resp.raise_for_status().json()
    except HTTPError as err:
        raise FetchError(f"STAC search failed: {err}") from err
    if not isinstance(page, dict) or not isinstance(page.get("features"), list):
        raise FetchError(f"STAC search failed: {method} {url}: the reply has no 'features' list")
    return page


def parse_item(feature: dict[str, Any], assets: list[str]) -> Item | None:
    """The :class:`Item` of a STAC feature, or None if it lacks one of ``assets``."""
    have = feature.get("assets") or {}
    hrefs = [(have.get(a) or {}).get("href") for a in assets]
    if not all(hrefs):
        return None
    props = feature.get("properties") or {}
    tile = props.get("s2:mgrs_tile") or props.get("grid:code")
    if isinstance(tile, str) and tile.startswith("MGRS-"):
        tile = tile[5:]
    cloud = props.get("eo:cloud_cover")
    return Item(
        id=str(feature["id"]),
        date=props.get("datetime") or props.get("start_datetime") or "",
        tile=tile,
        cloud_cover=float(cloud) if cloud is not None else None,
        hrefs=tuple(hrefs),
    )


# -------------------------------------------------------------------------------------- read


def _snap(window: Window) -> Window:
    """The smallest window on whole pixels that contains ``window``."""
    eps = 1e-6
    c0, r0 = math.floor(window.col_off + eps), math.floor(window.row_off + eps)
    c1 = math.ceil(window.col_off + window.width - eps)
    r1 = math.ceil(window.row_off + window.height - eps)
    return Window(c0, r0, max(c1 - c0, 1), max(r1 - r0, 1))


def read_chip(
    hrefs: list[str] | tuple[str, ...],
    bbox: list[float],
    size_px: int | None,
    gdal_options: dict[str, str] | None = None,
) -> Chip:
    """Read the window covering ``bbox`` from each asset and stack the bands.

    The first asset fixes the grid: the bbox is reprojected into its CRS and widened to whole
    pixels; the other assets are read over the same bounds. Areas outside the raster are filled
    with its nodata value (0 when it has none). Blocking: run it in a thread.

    Args:
        hrefs: dataset paths or http(s) URLs (GDAL reads only the byte ranges it needs).
        bbox: ``[west, south, east, north]`` in degrees.
        size_px: output ``size_px x size_px``; None keeps the first asset's native pixels.
        gdal_options: extra GDAL configuration options (retries, timeouts).

    Returns:
        The chip; ``data`` is ``(total bands, H, W)`` of the assets' common dtype.
    """
    with rasterio.Env(**{**_GDAL_ENV, **(gdal_options or {})}):
        parts, grid = [], None
        for href in hrefs:
            with rasterio.open(href) as ds:
                if grid is None:
                    grid = _grid(ds, bbox, size_px)
                elif ds.crs != grid["crs"]:
                    raise FetchError(f"{href}: CRS {ds.crs} differs from {grid['crs']}")
                parts.append(_read(ds, grid))
    data = np.concatenate(parts).astype(np.result_type(*parts), copy=False)
    left, bottom, right, top = grid["bounds"]
    h, w = grid["shape"]
    transform = transform_from_bounds(left, bottom, right, top, w, h)
    return Chip(data, grid["crs"], transform, grid["nodata"])


def _grid(ds: Any, bbox: list[float], size_px: int | None) -> dict[str, Any]:
    bounds = transform_bounds("EPSG:4326", ds.crs, *bbox, densify_pts=21)
    window = _snap(from_bounds(*bounds, transform=ds.transform))
    shape = (size_px, size_px) if size_px else (int(window.height), int(window.width))
    return {
        "crs": ds.crs,
        "bounds": rasterio.windows.bounds(window, ds.transform),
        "shape": shape,
        "nodata": ds.nodata if ds.nodata is not None else 0,
    }


def _read(ds: Any, grid: dict[str, Any]) -> np.ndarray:
    window = from_bounds(*grid["bounds"], transform=ds.transform)
    native = (round(window.height), round(window.width)) == tuple(grid["shape"])
    return ds.read(
        window=window,
        out_shape=(ds.count, *grid["shape"]),
        boundless=True,
        fill_value=grid["nodata"],
        resampling=Resampling.nearest if native else Resampling.average,
    )


def preview(data: np.ndarray, nodata: float = 0) -> np.ndarray:
    """A uint8 picture of a chip: RGB ``(H, W, 3)`` from 3+ bands, else grey ``(H, W)``.

    uint8 data is kept as it is; other types are stretched between the 2nd and 98th percentile
    of the valid pixels of each band.
    """
    bands = data[:3] if data.shape[0] >= 3 else data[:1]
    if bands.dtype != np.uint8:
        out = np.zeros(bands.shape, np.uint8)
        for i, band in enumerate(bands):
            valid = band[band != nodata]
            if valid.size:
                lo, hi = np.percentile(valid, [2, 98])
                scaled = (band.astype(np.float64) - lo) / max(hi - lo, 1e-9)
                out[i] = (np.clip(scaled, 0, 1) * 255).round().astype(np.uint8)
        bands = out
    return np.moveaxis(bands, 0, -1) if bands.shape[0] == 3 else bands[0]


# ------------------------------------------------------------------------------------ write


def file_stem(item_id: str) -> str:
    """A file name stem for an item id (characters other than ``A-Za-z0-9._-`` become ``_``)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", item_id).lstrip(".") or "item"


def write_chip(chip: Chip, out_dir: Path, stem: str) -> tuple[str, str]:
    """Write ``<stem>.tif`` (GeoTIFF) and ``<stem>.png`` (preview) atomically; their names."""
    from PIL import Image

    bands, h, w = chip.data.shape
    profile = {
        "driver": "GTiff", "width": w, "height": h, "count": bands, "dtype": chip.data.dtype,
        "crs": chip.crs, "transform": chip.transform, "nodata": chip.nodata,
        "compress": "deflate",
    }  # fmt: skip
    with MemoryFile() as mem:
        with mem.open(**profile) as dst:
            dst.write(chip.data)
        tif_bytes = mem.read()
    tif, png = f"{stem}.tif", f"{stem}.png"
    with atomic_open(out_dir / tif, "wb") as fh:
        fh.write(tif_bytes)
    buf = io.BytesIO()
    Image.fromarray(preview(chip.data, chip.nodata)).save(buf, format="PNG")
    with atomic_open(out_dir / png, "wb") as fh:
        fh.write(buf.getvalue())
    return tif, png


def _entry(item: Item, chip: Chip, files: tuple[str, str], assets: list[str]) -> dict[str, Any]:
    b, h, w = chip.data.shape
    left, bottom, right, top = array_bounds(h, w, chip.transform)
    valid = np.any(chip.data != chip.nodata, axis=0).mean()
    return {
        "id": item.id,
        "place": item.tile or "unknown",
        "date": item.date,
        "file": files[1],
        "tif": files[0],
        "tile": item.tile,
        "cloud_cover": item.cloud_cover,
        "crs": chip.crs.to_string(),
        "bounds": [float(left), float(bottom), float(right), float(top)],
        "shape": [int(b), int(h), int(w)],
        "valid_fraction": round(float(valid), 6),
        "assets": list(assets),
    }


class _Manifest:
    """The manifest of an output folder: its request header and its entries by item id."""

    def __init__(self, out: Path, p: FetchParams) -> None:
        self.path = out / MANIFEST
        self.header = {
            "source": "stac",
            "stac_url": p.stac_url,
            "collection": p.collection,
            "bbox": list(p.bbox),
            "assets": list(p.assets),
            "size_px": p.size_px,
        }
        self.entries: dict[str, dict[str, Any]] = self._previous()
        self.keep: set[str] = set()

    def _previous(self) -> dict[str, dict[str, Any]]:
        if not self.path.exists():
            return {}
        try:
            old = read_json(self.path)
            if any(old.get(k) != self.header[k] for k in _REQUEST_KEYS):
                log.warning("%s: made for another request; every chip is fetched again", self.path)
                return {}
            return {e["id"]: e for e in old["scenes"]}
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            log.warning("%s: unreadable (%s); every chip is fetched again", self.path, err)
            return {}

    def complete(self, item_id: str) -> bool:
        """Whether the item's entry exists and both its files are on disk (final names)."""
        e = self.entries.get(item_id)
        root = self.path.parent
        return bool(e) and (root / e["tif"]).is_file() and (root / e["file"]).is_file()

    def add(self, entry: dict[str, Any]) -> None:
        """Record a finished chip and rewrite the manifest."""
        self.entries[entry["id"]] = entry
        self.save()

    def save(self) -> None:
        """Write the entries of the items in ``keep`` that are complete, in date order."""
        scenes = [e for i, e in self.entries.items() if i in self.keep and self.complete(i)]
        scenes.sort(key=lambda e: (e["date"], e["id"]))
        write_json(self.path, {**self.header, "scenes": scenes})


# -------------------------------------------------------------------------------------- main


def _remove_stale_tmp(out: Path, stats: collections.Counter) -> None:
    """Delete temporary files a killed run left (``atomic_open``'s ``.<name>.*.tmp``)."""
    for tmp in out.glob(".*.tmp"):
        if tmp.is_file():
            tmp.unlink()
            stats["stale_tmp"] += 1


def _items(features: list[dict], p: FetchParams, stats: collections.Counter) -> list[Item]:
    items = []
    for feature in features:
        item = parse_item(feature, p.assets)
        if item is None:
            stats["missing_asset"] += 1
            log.warning("item %s has no asset %s; skipped", feature.get("id"), p.assets)
        else:
            items.append(item)
    if features and not items:
        names = sorted({n for f in features for n in (f.get("assets") or {})})
        raise FetchError(f"none of the {len(features)} items has the assets {p.assets}; "
                         f"their assets are {names}")  # fmt: skip
    return items


def _gdal_options(p: FetchParams) -> dict[str, str]:
    return {
        "GDAL_HTTP_MAX_RETRY": str(p.retries),
        "GDAL_HTTP_RETRY_DELAY": str(p.backoff),
        "GDAL_HTTP_TIMEOUT": str(math.ceil(p.timeout_s)),
    }


async def _fetch_one(
    item: Item, p: FetchParams, out: Path, manifest: _Manifest, stats: collections.Counter
) -> None:
    try:
        chip = await asyncio.to_thread(read_chip, item.hrefs, p.bbox, p.size_px, _gdal_options(p))
        files = await asyncio.to_thread(write_chip, chip, out, file_stem(item.id))
    except (rasterio.errors.RasterioError, FetchError, OSError) as err:
        stats["failed"] += 1
        log.warning("item %s failed: %s: %s", item.id, type(err).__name__, err)
        return
    manifest.add(_entry(item, chip, files, p.assets))
    stats["fetched"] += 1


async def fetch_async(p: FetchParams, out_dir: str | Path) -> dict[str, Any]:
    """:func:`fetch` as a coroutine."""
    p.validate()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stats: collections.Counter = collections.Counter(dict.fromkeys(_COUNTERS, 0))
    _remove_stale_tmp(out, stats)
    async with make_session(timeout_s=p.timeout_s) as session:
        features = await search(session, p, stats)
    if not features:
        raise FetchError(
            f"the STAC search found no {p.collection} item in bbox {list(p.bbox)} between "
            f"{p.start} and {p.end} with cloud cover below {p.max_cloud}% ({p.stac_url})"
        )
    stats["found"] = len(features)
    items = _items(features, p, stats)
    manifest = _Manifest(out, p)
    manifest.keep = {i.id for i in items}
    todo = [i for i in items if not manifest.complete(i.id)]
    stats["skipped"] = len(items) - len(todo)
    await gather_limited(
        [functools.partial(_fetch_one, i, p, out, manifest, stats) for i in todo],
        concurrency=p.concurrency, desc="sentinel-2 chips", unit="chip",
    )  # fmt: skip
    manifest.save()
    return _summary(stats, len(items), out)


def _summary(stats: collections.Counter, usable: int, out: Path) -> dict[str, Any]:
    result: dict[str, Any] = {**stats, "chips": stats["fetched"] + stats["skipped"]}
    log.info(
        "sentinel-2: %d items found (%d pages), %d without the assets; %d chips fetched, "
        "%d already on disk, %d failed -> %s",
        stats["found"], stats["pages"], stats["missing_asset"], stats["fetched"],
        stats["skipped"], stats["failed"], out,
    )  # fmt: skip
    if stats["failed"] and not result["chips"]:
        raise FetchError(f"all {usable} chips failed (see the log); nothing was written to {out}")
    if stats["failed"]:
        log.warning("%d of %d chips failed; run again to fetch them", stats["failed"], usable)
    return result


def fetch(params: FetchParams, out_dir: str | Path) -> dict[str, Any]:
    """Search the STAC API and write one chip per item into ``out_dir`` (see the module doc).

    Args:
        params: what to search for and how to cut the chips.
        out_dir: the output folder (created); chips already complete there are kept.

    Returns:
        Counts: ``pages`` (search requests that succeeded), ``found`` (items returned),
        ``missing_asset`` (items without a requested asset, skipped), ``skipped`` (chips already
        on disk), ``fetched`` (chips written now), ``failed`` (reads that failed; a rerun tries
        them again), ``stale_tmp`` (temporary files of a killed run removed), ``chips``
        (chips listed in the manifest).

    Raises:
        FetchError: the search failed (names the URL and the status), found nothing (names the
            bbox and the dates), no item has the assets, or every chip read failed.
        ValueError: bad params (names the key).
    """
    return asyncio.run(fetch_async(params, out_dir))
