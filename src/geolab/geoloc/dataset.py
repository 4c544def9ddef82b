"""The competition data format of study ``geoloc``: four photos (N/E/S/W) per place.

A dataset is a folder::

    <root>/data.csv                        uuid,latitude,longitude[,anything else]
    <root>/images/<uuid>/0.jpg, 90.jpg, 180.jpg, 270.jpg     (heading: N, E, S, W)

``data.csv`` is UTF-8 (a byte-order mark is allowed). It may start with an unnamed index column
(as ``DataFrame.to_csv`` writes it) and may have extra columns; both are ignored. A test set has
no ``latitude``/``longitude`` columns: read it with ``require_coords=False``, which ignores them
even where they are present. The Street View fetcher (:mod:`geolab.geoloc.fetch`) and the
offline renderer (:mod:`geolab.geoloc.render`) both write this layout.

:func:`read_dataset` separates two kinds of problem. A broken *file* raises an error that names
it (no ``data.csv``, a file that is not UTF-8, a missing column, a duplicate uuid, a coordinate
that is not a number): these need a person. A broken *record* is skipped, counted and listed in
the report (coordinates outside Croatia's bounding box, a missing or undecodable photo, a photo
that is not 8 bits per channel): a few of those are expected in any real download.
"""

from __future__ import annotations

import codecs
import csv
import dataclasses
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

log = logging.getLogger(__name__)

#: Heading of each view in degrees, in the order of :attr:`Record.paths` (N, E, S, W).
HEADINGS = (0, 90, 180, 270)
DATA_CSV = "data.csv"
IMAGES = "images"
#: Croatia's bounding box with a margin: ``(lon_min, lat_min, lon_max, lat_max)``.
CROATIA_BBOX = (13.3, 42.3, 19.5, 46.6)

_COORDS = ("latitude", "longitude")
_IMAGE_ERRORS = (
    UnidentifiedImageError,
    OSError,
    SyntaxError,
    ValueError,
    Image.DecompressionBombError,
)
#: Pillow modes with more than 8 bits per channel: ``convert("RGB")`` clips them (16-bit photos
#: come out nearly white), so such a photo is unusable rather than silently wrong.
_DEEP_MODES = ("I", "F")


@dataclasses.dataclass(frozen=True)
class Record:
    """One place: its id, its position (``None`` in a test set) and its four photos.

    Attributes:
        uuid: the folder name under ``images/``.
        lat: latitude in degrees, or ``None`` when the dataset has no coordinates.
        lon: longitude in degrees, or ``None``.
        paths: the photos at headings 0, 90, 180, 270 (N, E, S, W).
    """

    uuid: str
    lat: float | None
    lon: float | None
    paths: tuple[Path, Path, Path, Path]


def image_paths(root: str | Path, uuid: str) -> tuple[Path, Path, Path, Path]:
    """``<root>/images/<uuid>/{0,90,180,270}.jpg``."""
    folder = Path(root) / IMAGES / uuid
    return tuple(folder / f"{h}.jpg" for h in HEADINGS)  # type: ignore[return-value]


def read_dataset(
    root: str | Path, require_coords: bool = True, check_images: bool = True
) -> tuple[list[Record], dict[str, Any]]:
    """Read and validate a dataset folder.

    Args:
        root: the folder holding ``data.csv`` and ``images/``.
        require_coords: whether ``latitude`` and ``longitude`` must be there and are read (a
            training or validation set); with ``False`` they are not read even when present
            (not parsed, not checked against the bounding box) and every record has ``None``.
        check_images: decode every photo (a corrupt or truncated file is skipped); with
            ``False`` only their existence is checked.

    Returns:
        ``(records, report)``: the usable records in file order, and a report with ``root``,
        ``rows`` (data rows in the file), ``records`` (kept), ``has_coords`` (whether the
        coordinates were read), ``extra_columns`` (the named columns not read),
        ``skipped`` (``{reason: count}``) and one list per reason: ``outside_bbox``
        (``uuid``, ``line``, ``latitude``, ``longitude``), ``missing_images`` and
        ``corrupt_images`` (``uuid``, ``line``, ``file``; corrupt ones also ``error``, which
        is the decoding error or why the photo's pixel format is unusable).

    Raises:
        FileNotFoundError: no ``data.csv`` (names the path).
        ValueError: a ``data.csv`` that is not UTF-8 text or not CSV (names the file and the
            line), a missing column (names the file and the columns), an empty or unsafe
            uuid, a duplicate uuid (names the uuids and their line numbers), or a coordinate
            that is not a finite number (names the line).
    """
    root = Path(root)
    path = root / DATA_CSV
    header, rows = _read_csv(path)
    has_coords = _check_columns(path, header, require_coords)
    _check_duplicates(path, rows)
    report: dict[str, Any] = {
        "root": str(root),
        "rows": len(rows),
        "records": 0,
        "has_coords": has_coords,
        "extra_columns": [c for c in header if c and c not in _read_columns(has_coords)],
        "skipped": {"outside_bbox": 0, "missing_images": 0, "corrupt_images": 0},
        "outside_bbox": [],
        "missing_images": [],
        "corrupt_images": [],
    }
    records = []
    for line, row in rows:
        record = _record(root, path, line, row, has_coords)
        if _usable(record, line, report, check_images):
            records.append(record)
    report["records"] = len(records)
    _log_report(path, report)
    return records, report


def read_uuids(root: str | Path) -> list[str]:
    """The uuids of ``data.csv`` in file order, read as :func:`read_dataset` reads them."""
    _, rows = _read_csv(Path(root) / DATA_CSV)
    return [(row.get("uuid") or "").strip() for _, row in rows]


def _read_csv(path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """The header and ``(line number, row)`` pairs (line 1 is the header)."""
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: not found (a dataset folder holds {DATA_CSV} and "
            f"{IMAGES}/<uuid>/{{0,90,180,270}}.jpg)"
        )
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            return _parse_csv(path, csv.reader(fh))
    except UnicodeDecodeError:
        raise ValueError(_not_utf8(path)) from None


def _parse_csv(path: Path, reader: Any) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """Read all of ``reader``; a CSV syntax error names the file and the line."""
    try:
        header = [c.strip() for c in next(reader, [])]
        rows = []
        for values in reader:
            if not any(v.strip() for v in values):
                continue  # blank line
            row = dict(zip(header, values, strict=False))
            rows.append((reader.line_num, row))
    except csv.Error as err:
        raise ValueError(f"{path}: line {reader.line_num}: not valid CSV ({err})") from None
    return header, rows


def _not_utf8(path: Path) -> str:
    """The message for a ``data.csv`` that is not UTF-8: the file, the line and the byte."""
    data = path.read_bytes()
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        where = f"line {line}: byte 0x{data[err.start]:02x} is not UTF-8"
    else:  # the file changed between the two reads
        where = "not UTF-8"
    return f"{path}: {where} (save the file as UTF-8, e.g. from a spreadsheet as 'CSV UTF-8')"


def _check_columns(path: Path, header: list[str], require_coords: bool) -> bool:
    """Whether the coordinates are read (``require_coords``); raise naming missing columns."""
    missing = [c for c in _read_columns(require_coords) if c not in header]
    if missing:
        raise ValueError(
            f"{path}: missing column(s) {missing} (has {[c for c in header if c]}; "
            f"expected uuid,latitude,longitude{'' if require_coords else ' or just uuid'})"
        )
    return require_coords


def _read_columns(with_coords: bool) -> tuple[str, ...]:
    """The columns :func:`read_dataset` reads: ``uuid``, and the coordinates if asked for."""
    return ("uuid", *_COORDS) if with_coords else ("uuid",)


def _check_duplicates(path: Path, rows: list[tuple[int, dict[str, str]]]) -> None:
    lines: dict[str, list[int]] = {}
    for line, row in rows:
        uuid = (row.get("uuid") or "").strip()
        if not uuid or uuid in (".", "..") or any(c in uuid for c in "/\\\0"):
            raise ValueError(f"{path}: line {line}: uuid {uuid!r} is empty or not a folder name")
        lines.setdefault(uuid, []).append(line)
    dups = {u: ls for u, ls in lines.items() if len(ls) > 1}
    if dups:
        shown = "; ".join(f"{u!r} on lines {', '.join(map(str, ls))}" for u, ls in dups.items())
        raise ValueError(f"{path}: {len(dups)} duplicate uuid(s): {shown}")


def _record(root: Path, path: Path, line: int, row: dict[str, str], has_coords: bool) -> Record:
    uuid = row["uuid"].strip()
    lat = lon = None
    if has_coords:
        lat, lon = (_number(path, line, row, c) for c in _COORDS)
    return Record(uuid, lat, lon, image_paths(root, uuid))


def _number(path: Path, line: int, row: dict[str, str], column: str) -> float:
    text = (row.get(column) or "").strip()
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ValueError(f"{path}: line {line}: {column} {text!r} is not a number")
    return value


def _usable(record: Record, line: int, report: dict[str, Any], check_images: bool) -> bool:
    """Whether a record is kept; the reason it is not goes into ``report``."""
    if record.lat is not None and not in_bbox(record.lat, record.lon):
        report["outside_bbox"].append(
            {"uuid": record.uuid, "line": line, "latitude": record.lat, "longitude": record.lon}
        )
        report["skipped"]["outside_bbox"] += 1
        return False
    for file in record.paths:
        problem = _image_problem(file, check_images)
        if problem is None:
            continue
        entry = {"uuid": record.uuid, "line": line, "file": str(file)}
        if problem == "missing":
            report["missing_images"].append(entry)
            report["skipped"]["missing_images"] += 1
        else:
            report["corrupt_images"].append({**entry, "error": problem})
            report["skipped"]["corrupt_images"] += 1
        return False
    return True


def in_bbox(lat: float, lon: float | None) -> bool:
    """Whether a position lies in :data:`CROATIA_BBOX` (edges included)."""
    west, south, east, north = CROATIA_BBOX
    return lon is not None and south <= lat <= north and west <= lon <= east


def _image_problem(file: Path, check: bool) -> str | None:
    """``None`` if the photo is fine, ``"missing"``, or the decoding or pixel-format error."""
    if not file.is_file():
        return "missing"
    if not check:
        return None
    try:
        with Image.open(file) as im:
            im.draft("RGB", (64, 64))  # JPEG: decode at reduced scale, still reads every byte
            im.load()
            mode = im.mode
    except _IMAGE_ERRORS as err:
        return f"{type(err).__name__}: {err}"
    return _depth_problem(mode)


def _depth_problem(mode: str) -> str | None:
    """Why a photo of Pillow ``mode`` is unusable (more than 8 bits per channel), or ``None``.

    Grey, palette, RGBA and CMYK photos convert to RGB faithfully; 16-bit, 32-bit integer and
    float ones would be clipped, so they are refused instead.
    """
    if mode.split(";")[0] in _DEEP_MODES:
        return f"pixel format {mode} is not 8 bits per channel (save the photo as 8-bit RGB)"
    return None


def _log_report(path: Path, report: dict[str, Any]) -> None:
    skipped = report["skipped"]
    log.info(
        "%s: %d rows, %d records kept; skipped %d outside the bounding box, %d with a missing "
        "photo, %d with a corrupt photo",
        path, report["rows"], report["records"], skipped["outside_bbox"],
        skipped["missing_images"], skipped["corrupt_images"],
    )  # fmt: skip
    if sum(skipped.values()):
        log.warning(
            "%s: %d of %d records skipped: %d outside the bounding box, %d with a missing photo, "
            "%d with an unusable photo",
            path, sum(skipped.values()), report["rows"], skipped["outside_bbox"],
            skipped["missing_images"], skipped["corrupt_images"],
        )  # fmt: skip


def load_views(record: Record, size: int) -> np.ndarray:
    """The four photos of a record, resized to ``size`` x ``size`` RGB.

    A photo that is not square is resized to a square (Street View photos are square).

    Args:
        record: from :func:`read_dataset`.
        size: the side of each view in pixels.

    Returns:
        ``(4, size, size, 3)`` uint8, views in heading order 0, 90, 180, 270 (N, E, S, W).

    Raises:
        ValueError: ``size`` < 1, or a photo is missing, cannot be decoded or is not 8 bits per
            channel (names the file).
    """
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    out = np.empty((len(HEADINGS), size, size, 3), dtype=np.uint8)
    for i, file in enumerate(record.paths):
        out[i] = _load_view(record, file, size)
    return out


def _load_view(record: Record, file: Path, size: int) -> np.ndarray:
    """One photo of ``record`` as ``(size, size, 3)`` uint8 RGB; see :func:`load_views`."""
    try:
        with Image.open(file) as im:
            im.draft("RGB", (size, size))
            problem = _depth_problem(im.mode)
            if problem is None:
                rgb = im.convert("RGB")
                if rgb.size != (size, size):
                    rgb = rgb.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=2.0)
                return np.asarray(rgb)
    except FileNotFoundError:
        raise ValueError(f"{file}: photo not found (uuid {record.uuid})") from None
    except _IMAGE_ERRORS as err:
        raise ValueError(f"{file}: cannot decode the photo ({err})") from None
    raise ValueError(f"{file}: {problem} (uuid {record.uuid})")
